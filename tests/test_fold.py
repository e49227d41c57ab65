"""fold-bias: exact batch-norm folding (issue 4), on maia-1100, variants of it, and Leela Zero text."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LZ_RANDOM, MAIA, REFERENCE

from lcconvert import fold, forward, io, pipeline, verify
from lcconvert.codecs import Encoding
from lcconvert.errors import NetworkError, UnsupportedError
from lcconvert.formats import gz, lc0_proto
from lcconvert.tensor import Tensor

EPS = 1e-5
POSITIONS = 16  # seeded positions per verify.compare call; enough to see a wrong fold (errors ≥ 1e-2)


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


def _rng_stats(n=64, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.2, 2.0, n) * rng.choice([-1, 1], n)
    g[0], g[1], g[2] = 0.0, 1e-4, 1.0
    return fold.BlockStats(gamma=g, beta=rng.normal(0, 1, n), bias=rng.normal(0, 0.5, n),
                           mean=rng.normal(0, 2, n), var=rng.uniform(0.01, 5, n))


# -- the float64 math ------------------------------------------------------------

@pytest.mark.parametrize("gamma_into", ["variances", "weights"])
@pytest.mark.parametrize("beta_into", ["means", "biases"])
@pytest.mark.parametrize("eps_t", [1e-5, 1e-3])
def test_solution_reproduces_scale_and_offset_exactly(gamma_into, beta_into, eps_t):
    """Per channel, legacy k·z/t + (b'−μ')/t equals modern γ(z+b−μ)/s + β as an affine map of z."""
    st = _rng_stats()
    scale, offset = st.modern(eps_t)
    sol = fold.solve(st, gamma_into, beta_into, eps_t, EPS)
    t = np.sqrt(sol.var + EPS)
    # float64 rounding of a handful of operations on values of order 1e4 at most (1/γ² for γ = 1e-4 is 1e8,
    # whose square root brings it back to 1e4): 1e-10 relative is ~1e6 ulps of slack and still tight.
    np.testing.assert_allclose(sol.k / t, scale, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose((sol.bias - sol.mean) / t, offset, rtol=1e-10, atol=1e-12)
    if gamma_into == "variances":
        assert set(np.unique(sol.k)) <= {-1.0, 0.0, 1.0}
        assert sol.k[0] == 0 and np.all(sol.k[st.gamma < 0] == -1)
        assert sol.var[1] > 1e7  # γ = 1e-4: σ'² ≈ s²/γ²
    else:
        np.testing.assert_array_equal(sol.k, st.gamma)
    if beta_into == "means":
        assert not sol.bias.any()
    errors = fold.measure(st, sol.k, sol.bias, sol.mean, sol.var, eps_t, EPS)
    assert errors.worst < 1e-9


def test_measure_sees_a_lost_gamma_sign():
    """The error figure can fail: v0.20's fold (|γ| into the variance, sign lost) is measured as wrong."""
    st = _rng_stats()
    sol = fold.solve(st, "variances", "means", EPS, EPS)
    lost = np.abs(sol.k)
    errors = fold.measure(st, lost, sol.bias, sol.mean, sol.var, EPS, EPS)
    negative = st.gamma < 0
    assert np.all(errors.scale[negative] > 0.1) and np.all(errors.scale[~negative & (st.gamma != 0)] < 1e-9)


def test_huge_gamma_has_no_variance_form():
    st = _rng_stats()
    st.gamma[5] = 3 * np.sqrt((st.var[5] + EPS) / EPS)
    assert fold.solve(st, "variances", "means", EPS, EPS).var[5] < 0
    assert fold.solve(st, "weights", "means", EPS, EPS).var[5] > 0


# -- maia-1100 ---------------------------------------------------------------------

def test_maia_variances_fold_touches_only_batch_norm_layers():
    net = io.load(str(MAIA))  # fresh: nothing decoded yet
    folded, report = fold.fold(net, gamma_into="variances")
    for (name, block), (_, new) in zip(net.conv_blocks(), folded.conv_blocks()):
        assert new.gammas is None and new.betas is None, name
        assert new.weights is block.weights, name  # the very same Tensor: byte-copied
        assert not block.weights.decoded, f"{name}: weights were decoded"
        if new.has_bn:
            assert new.biases.size == block.out_channels and not new.biases.values.any(), name
    untouched = dict(folded.tensors())
    for name, t in net.tensors():
        if ".se." in name or name.startswith(("ip", "policy.")):
            assert untouched[name] is t, name  # SE units, FC layers, the conv policy's last conv
    assert folded.min_version == (0, 21, 0) and folded.weights_encoding == 1
    assert folded.encodings == ["LINEAR16"]
    assert report.folded and all(b.strategy == "variances" for b in report.blocks)
    assert max(b.exact_error for b in report.blocks) < 1e-12

    # The written file carries the input's weight bytes verbatim.
    data, _ = io.serialize(folded, io.PB)
    src = lc0_proto.net_pb2.Net.FromString(gz.gunzip(MAIA.read_bytes(), str(MAIA)))
    out = lc0_proto.net_pb2.Net.FromString(data)
    assert out.weights.input.weights.params == src.weights.input.weights.params
    for a, b in zip(out.weights.residual, src.weights.residual):
        assert a.conv1.weights.params == b.conv1.weights.params
        assert a.conv2.weights.params == b.conv2.weights.params
        assert a.se.w1.params == b.se.w1.params
    for name in ("bn_gammas", "bn_betas"):
        assert not out.weights.input.HasField(name)


def test_maia_cli_fold_matches_real_lc0(tmp_path, run_cli, maia):
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", MAIA, out)
    assert r.exit_code == 0, r.output
    assert "folded 15 of 15" in r.output and "pass" in r.output
    folded = io.load(str(out))
    for name, block in folded.bn_blocks():
        assert block.gammas is None and block.betas is None and block.biases.size == block.out_channels
    report = verify.compare(folded, maia, legacy=True, positions=POSITIONS)
    assert report.passed, report.render()

    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    legacy = forward.evaluate(folded, ref["planes"], "legacy", np.float64).policy_logits
    # The noise floor: what moving every parameter of maia within LINEAR16's rounding bound does to the
    # logits (the noise any LINEAR16 file carries). Measured: 6.0e-3; the fold moves them by 2.7e-3.
    original = forward.evaluate(maia, ref["planes"], "modern", np.float64).policy_logits
    rounded = forward.evaluate(verify._rounded(maia, Encoding.LINEAR16, 0), ref["planes"], "modern",
                               np.float64).policy_logits
    floor = float(np.abs(rounded - original).max())
    # 1e-4: the forward pass's own agreement with lc0 on these logits (1.2e-5 measured in float32).
    assert np.abs(legacy - ref["logits"]).max() <= 1e-4 + floor
    assert np.abs(original - ref["logits"]).max() <= 1e-4
    # Without the fold an old engine is off by ~16 in the logits: the check above can fail.
    unfolded = forward.evaluate(maia, ref["planes"], "legacy", np.float64).policy_logits
    assert np.abs(unfolded - ref["logits"]).max() > 1.0


def test_beta_into_biases_keeps_the_running_means(maia):
    folded, report = fold.fold(maia, beta_into="biases", gamma_into="variances")
    for (name, block), (_, new) in zip(maia.bn_blocks(), folded.bn_blocks()):
        assert new.means is block.means, name  # γ > 0 everywhere in maia: μ' = μ, byte-copied
        # b' = β·t̂ with t̂ = √(σ̂'² + ε) from the stored variances (≈ β·s/γ; see fold.offsets)
        t_hat = np.sqrt(new.variances.values.astype(np.float64) + EPS)
        expect = block.betas.values * t_hat
        s = np.sqrt(block.variances.values.astype(np.float64) + EPS)
        np.testing.assert_allclose(t_hat, s / block.gammas.values, rtol=1e-3)
        step = (expect.max() - expect.min()) / 65535  # one LINEAR16 step of the new biases layer
        np.testing.assert_allclose(new.biases.values, expect, atol=step)
    assert verify.compare(folded, maia, legacy=True, positions=POSITIONS).passed


def test_min_version_is_what_the_architecture_needs(maia):
    net = maia.copy()
    net.min_version = (0, 26, 0)
    folded, report = fold.fold(net)
    assert folded.min_version == (0, 21, 0)  # convolution policy + WDL head
    assert report.min_version_before == (0, 26, 0) and report.min_version_after == (0, 21, 0)


# -- variants with awkward gammas ------------------------------------------------------

def _set(net, name, **fields):
    parts = name.split(".")
    holder = net.residual[int(parts[1])] if parts[0] == "residual" else net
    attr = parts[-1]
    setattr(holder, attr, getattr(holder, attr).replace(**fields))


def _f32(values):
    return Tensor.from_values(np.asarray(values, np.float32), Encoding.FLOAT32)


def _variant(maia, negative=True, zero=True, tiny=True, huge=False):
    """maia-1100 with awkward gammas on the learned-γ conv2 blocks (FORMATS.md §3 pitfalls)."""
    net = maia.copy()
    blocks = dict(net.bn_blocks())
    if negative:
        g = blocks["residual.0.conv2"].gammas.values.copy()
        g[::2] *= -1  # half the channels negative
        _set(net, "residual.0.conv2", gammas=_f32(g))
    if zero:
        g = blocks["residual.1.conv2"].gammas.values.copy()
        g[3] = 0.0
        _set(net, "residual.1.conv2", gammas=_f32(g))
    if tiny:
        g = blocks["residual.2.conv2"].gammas.values.copy()
        g[5] = 1e-4
        _set(net, "residual.2.conv2", gammas=_f32(g))
    if huge:
        # Rescale channel 7's convolution so its normalizer s = √(σ²+ε) is √(2ε) while the block computes
        # the same function, then give it γ = 3 > √(s²/ε) = √2: σ'² = s²/γ² − ε < 0.
        b = blocks["residual.3.conv2"]
        c, cin = 7, b.weights.size // b.out_channels // 9
        var, mean = b.variances.values.astype(np.float64), b.means.values.astype(np.float64)
        a = np.sqrt(2 * EPS) / np.sqrt(var[c] + EPS)
        w = b.weights.values.reshape(b.out_channels, cin * 9).astype(np.float64)
        w[c] *= a
        mean[c] *= a
        var[c] = EPS  # a²(σ²+ε) − ε = 2ε − ε
        g = b.gammas.values.copy()
        g[c] = 3.0
        _set(net, "residual.3.conv2", weights=_f32(w.ravel()), means=_f32(mean), variances=_f32(var),
             gammas=_f32(g))
    return net


def test_negative_zero_and_tiny_gamma_fold_exactly_with_every_option(maia):
    net = _variant(maia)
    # The variant is a different network: an old engine reading it unfolded is far off.
    assert not verify.compare(net, maia, legacy=False, positions=POSITIONS).passed
    for gamma_into in ("variances", "weights", "auto"):
        # float32 output: the exact math shows; float32 storage rounding is the whole floor.
        folded, report = fold.fold(net, gamma_into=gamma_into, encoding=Encoding.FLOAT32)
        r = verify.compare(folded, net, legacy=True, positions=POSITIONS)
        assert r.passed, (gamma_into, r.render())
        by = {b.name: b for b in report.blocks}
        if gamma_into == "variances":
            assert by["residual.0.conv2"].negated_channels == 32
            assert "weights" in by["residual.0.conv2"].changed
            assert by["residual.1.conv2"].zeroed_channels == 1
            w = folded.residual[1].conv2.weights.values.reshape(64, -1)
            assert not w[3].any()
            assert "weights" not in by["residual.2.conv2"].changed  # tiny γ: variances only
            np.testing.assert_array_equal(folded.residual[2].conv2.weights.values,
                                          net.residual[2].conv2.weights.values)
            assert folded.residual[2].conv2.variances.values[5] > 1e6


def test_tiny_gamma_in_linear16_variances_is_measured_and_avoided_by_auto(maia):
    net = _variant(maia, negative=False, zero=False, tiny=True)
    _, rep_v = fold.fold(net, gamma_into="variances")
    _, rep_w = fold.fold(net, gamma_into="weights")
    folded, rep_a = fold.fold(net, gamma_into="auto")
    name = "residual.2.conv2"
    err_v = {b.name: b for b in rep_v.blocks}[name].error
    err_w = {b.name: b for b in rep_w.blocks}[name].error
    # σ'² ≈ 1e8 stretches the LINEAR16 variance layer: every other channel's scale is off by up to 100%.
    assert err_v > 100 * err_w
    chosen = {b.name: b for b in rep_a.blocks}[name]
    assert chosen.strategy != "variances" and chosen.error <= err_w
    assert verify.compare(folded, net, legacy=True, positions=POSITIONS).passed


def test_tiny_gamma_overflows_float16_variances(maia, tmp_path, run_cli):
    net = _variant(maia, negative=False, zero=False, tiny=True)
    with pytest.raises(NetworkError, match=r"residual\.2\.conv2\.variances: cannot encode as FLOAT16.*overflows"):
        fold.fold(net, gamma_into="variances", encoding=Encoding.FLOAT16)
    folded, report = fold.fold(net, gamma_into="auto", encoding=Encoding.FLOAT16)
    chosen = {b.name: b for b in report.blocks}["residual.2.conv2"]
    assert chosen.strategy != "variances" and "overflows" in chosen.candidates["variances"]
    assert folded.min_version == (0, 33, 0)  # float16 layers need lc0 ≥ 0.33
    assert verify.compare(folded, net, legacy=True, positions=POSITIONS).passed


def test_huge_gamma_is_refused_by_variances_and_exact_otherwise(maia, tmp_path, run_cli):
    net = _variant(maia, negative=False, zero=False, tiny=False, huge=True)
    with pytest.raises(NetworkError, match=r"residual\.3\.conv2: gamma 3 in channel 7 is too large.*"
                                           r"--gamma-into weights or auto"):
        fold.fold(net, gamma_into="variances")
    for gamma_into, encoding in (("weights", Encoding.FLOAT32), ("auto", None)):
        folded, report = fold.fold(net, gamma_into=gamma_into, encoding=encoding)
        block = {b.name: b for b in report.blocks}["residual.3.conv2"]
        assert block.strategy == gamma_into if gamma_into != "auto" else block.strategy != "variances"
        if gamma_into == "auto":
            assert "too large" in block.candidates["variances"]
        assert np.all(folded.residual[3].conv2.variances.values >= 0)
        assert verify.compare(folded, net, legacy=True, positions=POSITIONS).passed

    src = tmp_path / "huge.pb.gz"
    pipeline.save(net, str(src))
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", src, out, "--gamma-into", "variances")
    assert r.exit_code == 2 and "too large to fold into the variances" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


def test_training_epsilon_is_folded_in(maia, tmp_path, run_cli):
    net = _variant(maia, negative=True, zero=False, tiny=False)
    net.epsilon = 1e-3  # statistics trained with Keras's default ε
    for gamma_into, encoding in (("variances", Encoding.FLOAT32), ("weights", Encoding.FLOAT32),
                                 ("auto", None)):
        # Forced strategies in float32 show the math is exact; auto in the file's own LINEAR16 shows the
        # file an old engine would get is right. (γ forced into LINEAR16 weights re-quantizes layers whose
        # range it stretches: 4–64× the floor on maia, FORMATS.md §3 — which is why auto measures.)
        folded, report = fold.fold(net, gamma_into=gamma_into, encoding=encoding)
        assert folded.epsilon == EPS and report.train_epsilon == 1e-3
        assert verify.compare(folded, net, legacy=True, positions=POSITIONS).passed, gamma_into
    # Folding as if ε were the engine's leaves a visible error: the check above can fail.
    wrong, _ = fold.fold(net, train_epsilon=EPS)
    assert not verify.compare(wrong, net, legacy=True, positions=POSITIONS).passed

    # Through the CLI: a file has no ε field, so --train-epsilon says it.
    src = tmp_path / "eps.pb.gz"
    pipeline.save(_variant(maia, negative=True, zero=False, tiny=False), str(src))
    r = run_cli("fold-bias", src, tmp_path / "out.pb.gz", "--train-epsilon", "1e-3", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["fold"]["train_epsilon"] == 1e-3
    assert info["verification"]["passed"]  # checked against IN evaluated with the same training ε


# -- idempotence and no-ops -----------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "example-4x32-se.pb.gz"


@pytest.mark.parametrize("src, name", [(MAIA, "out.pb.gz"), (MAIA, "out.pb"),
                                       (EXAMPLE, "out.pb.gz")])  # the example's fold splits γ (weights move)
def test_folding_twice_is_byte_identical(tmp_path, run_cli, src, name):
    first, second = tmp_path / name, tmp_path / ("again-" + name)
    assert run_cli("fold-bias", src, first, "--no-verify").exit_code == 0
    r = run_cli("fold-bias", first, second, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["fold"]["changed"] is False and info["fold"]["blocks_folded"] == 0
    assert info["verification"]["passed"]
    assert first.read_bytes() == second.read_bytes()
    # In memory too: every tensor is the same object.
    net = io.load(str(first))
    again, report = fold.fold(net)
    assert all(t is u for (_, t), (_, u) in zip(net.tensors(), again.tensors()))
    assert not report.changed and all(b.strategy == "unchanged" for b in report.blocks)


def test_nothing_to_fold_in_another_container_rewrites_the_same_network(tmp_path, run_cli):
    folded = tmp_path / "folded.pb.gz"
    assert run_cli("fold-bias", MAIA, folded, "--no-verify").exit_code == 0
    plain = tmp_path / "plain.pb"
    r = run_cli("fold-bias", folded, plain, "--no-verify")
    assert r.exit_code == 0
    assert plain.read_bytes() == gz.gunzip(folded.read_bytes(), str(folded))


# -- Leela Zero text ----------------------------------------------------------------------------

def test_leela_zero_text_fold_matches_leelaz(tmp_path, run_cli):
    out = tmp_path / "lz.txt.gz"
    r = run_cli("fold-bias", LZ_RANDOM, out)
    assert r.exit_code == 0, r.output
    assert gz.is_gzip(out.read_bytes())
    src, folded = io.load(str(LZ_RANDOM)), io.load(str(out))
    assert folded.source.kind == "text"
    for (name, a), (_, b) in zip(src.bn_blocks(), folded.bn_blocks()):
        assert a.biases.values.any(), name  # the input has real biases...
        assert not b.biases.values.any(), name  # ...and they are now in the means
        np.testing.assert_array_equal(b.means.values, (a.means.values.astype(np.float64)
                                                        - a.biases.values).astype(np.float32))
        assert b.variances is a.variances or np.array_equal(b.variances.values, a.variances.values)
    ref = np.load(REFERENCE / "lz-random-2x16.leelaz.npz")
    out_legacy = forward.evaluate(folded, ref["planes"], "legacy", np.float64)
    # leelaz computes in float32 with -ffast-math: within about 1e-5 relative of float64 (data README);
    # measured here 1.1e-5 relative on the policy, 1.4e-6 on the winrate.
    np.testing.assert_allclose(out_legacy.policy, ref["policy"], rtol=5e-5, atol=1e-7)
    np.testing.assert_allclose(out_legacy.winrate, ref["winrate"], rtol=5e-5)


# -- refusals and failures --------------------------------------------------------------------

def test_attention_network_is_refused(tmp_path, run_cli, maia):
    net = maia.copy()
    net.attention_body = True
    with pytest.raises(UnsupportedError, match="attention network: not a batch-norm network"):
        fold.fold(net)
    net = maia.copy()
    net.format.network = 6  # ATTENTIONBODY_WITH_HEADFORMAT over a residual tower, no attention layer
    src = tmp_path / "attention.pb.gz"
    pipeline.save(net, str(src))
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", src, out)
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.strip() == f"lcconvert: {src}: attention body after a residual tower: not evaluated"


@pytest.mark.parametrize("field,value,message", [
    ("variances", -1.0, r"residual\.1\.conv1\.variances: σ²\+ε ≤ 0 in channel 4"),
    ("means", np.nan, r"residual\.1\.conv1\.means: non-finite value at index 4"),
])
def test_invalid_batch_norm_is_refused(tmp_path, run_cli, maia, field, value, message):
    net = maia.copy()
    v = getattr(net.residual[1].conv1, field).values.copy()
    v[4] = value
    _set(net, "residual.1.conv1", **{field: _f32(v)})
    src = tmp_path / "bad.pb.gz"
    pipeline.save(net, str(src))
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", src, out)
    assert r.exit_code == 2 and not out.exists(), r.output
    import re

    assert re.search(message, r.stderr) and len(r.stderr.strip().splitlines()) == 1


def test_failed_verification_writes_nothing(tmp_path, run_cli, monkeypatch):
    real = fold.fold

    def sign_lost(net, **kw):  # lc0 v0.20's bug: |γ| into the variances
        net = net.copy()
        for name, block in list(net.bn_blocks()):
            if block.gammas is not None:
                _set(net, name, gammas=_f32(np.abs(block.gammas.values)))
        return real(net, **kw)

    monkeypatch.setattr(fold, "fold", sign_lost)
    src = tmp_path / "neg.pb.gz"
    pipeline.save(_variant(io.load(str(MAIA)), zero=False, tiny=False), str(src))
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", src, out)
    assert r.exit_code == 1 and not out.exists()
    assert "FAIL" in r.stderr and "nothing written" in r.stderr
    assert not list(tmp_path.glob(".lcconvert-*"))


def test_existing_output_needs_force(tmp_path, run_cli):
    out = tmp_path / "out.pb.gz"
    out.write_bytes(b"keep")
    r = run_cli("fold-bias", MAIA, out, "--no-verify")
    assert r.exit_code == 2 and out.read_bytes() == b"keep"
    assert run_cli("fold-bias", MAIA, out, "--no-verify", "--force").exit_code == 0


def test_moves_left_and_classical_heads_fold(tmp_path):
    from lcconvert.synth import make_network

    net = make_network(blocks=2, filters=16, policy="classical", value="classical", moves_left=True,
                       gammas="all", biases=True, seed=3)
    folded, report = fold.fold(net)
    names = {b.name for b in report.folded}
    assert {"policy", "value", "moves_left"} <= names
    assert folded.min_version == net.min_version
    assert verify.compare(folded, net, legacy=True, positions=POSITIONS).passed


def test_auto_splits_gamma_and_beats_both_simple_folds(tmp_path):
    """The bundled example (4×32, γ log-uniform in [0.2, 2] on input and conv2) in LINEAR16.

    Folding γ wholly into the variances stretches each conv2 variance layer's range
    (σ'² = s²/γ²) so its small channels lose precision; folding it wholly into the
    weights stretches the weights layer. Measured on the outputs: γ in the weights
    fails the legacy-vs-modern check, and auto — which also tries splitting γ
    between the two layers — passes with a smaller worst head error (relative to
    its limit) than either simple fold.
    """
    from lcconvert import synth

    net = synth.make_network("chess", blocks=4, filters=32, se_ratio=4, policy="convolution", value="wdl",
                             moves_left=True, seed=2018)
    results = {}
    for gamma_into in ("variances", "weights", "auto"):
        folded, report = fold.fold(net, gamma_into=gamma_into)
        results[gamma_into] = (verify.compare(folded, net, legacy=True, positions=POSITIONS), report)

    def worst_share(check):  # the largest head difference as a fraction of its limit
        return max(h.max_abs / h.limit for h in check.heads)

    assert not results["weights"][0].passed
    check_auto, report_auto = results["auto"]
    assert check_auto.passed, check_auto.reasons
    assert any(b.strategy == "per-channel" for b in report_auto.blocks)  # γ split per channel
    assert worst_share(check_auto) < worst_share(results["variances"][0])
    assert worst_share(check_auto) < worst_share(results["weights"][0])
    # auto's measured worst block error is below both simple folds' (it picks the minimum per block).
    assert report_auto.worst_error < min(results["variances"][1].worst_error, results["weights"][1].worst_error)


def test_fold_output_forms(tmp_path, run_cli):
    """Text output takes no --encoding; a Go network in protobuf keeps its layers exact, as convert writes it
    (one default-encoding rule: no engine runs Go-in-protobuf, so LINEAR16 would only lose precision)."""
    r = run_cli("fold-bias", LZ_RANDOM, tmp_path / "x.txt", "--encoding", "float16")
    assert r.exit_code == 2 and "applies to protobuf output" in r.stderr
    assert not (tmp_path / "x.txt").exists()
    out = tmp_path / "go.pb.gz"
    r = run_cli("fold-bias", LZ_RANDOM, out)
    assert r.exit_code == 0, r.output
    written = io.load(str(out))
    converted = tmp_path / "converted.pb.gz"
    assert run_cli("convert", LZ_RANDOM, converted).exit_code == 0
    assert written.encodings == io.load(str(converted)).encodings == ["FLOAT32"]
    assert "no engine runs it" in r.stdout
    assert r.stdout.splitlines()[0] == run_cli("fold-bias", LZ_RANDOM, tmp_path / "x.txt").stdout.splitlines()[0]
    # the summary's min_version line is the written file's
    assert f"min_version none -> {'.'.join(map(str, written.min_version))}" in r.stdout


def test_auto_passes_where_gamma_into_variances_fails_on_a_deeper_net():
    """8 blocks × 128 filters: the LINEAR16 variance layers of γ/s spread too far for
    `variances` (measured: 1.66× its limit), while auto keeps well within it (0.10×)."""
    from lcconvert import synth

    net = synth.make_network("chess", blocks=8, filters=128, se_ratio=8, seed=1)
    checks = {g: verify.compare(fold.fold(net, gamma_into=g)[0], net, legacy=True, positions=POSITIONS)
              for g in ("variances", "weights", "auto")}
    share = {g: max(h.max_abs / h.limit for h in c.heads) for g, c in checks.items()}
    assert not checks["variances"].passed
    assert checks["auto"].passed, checks["auto"].reasons
    assert share["auto"] < share["weights"] < share["variances"]
