"""`verify`: structure/numerics checks, backwards compatibility and comparisons with a derived tolerance."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LZ_0K, MAIA

from lcconvert import io, synth, verify
from lcconvert.codecs import Encoding
from lcconvert.constants import VALUE_CLASSICAL
from lcconvert.formats import lc0_proto
from lcconvert.tensor import Tensor


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


def _linear16(values) -> Tensor:
    return Tensor.from_values(np.asarray(values, np.float32)).reencoded(Encoding.LINEAR16)


def _fold(net, into: str):
    """FORMATS.md §3 folds of every batch-norm block (all γ > 0 in maia-1100), LINEAR16 re-encoded.

    into="variances": σ'² = s²/γ² − ε, b' = b + β·s/γ — only batch-norm layers re-quantized.
    into="weights": W' = γ·W, b' = γ·b + β·s, μ' = γ·μ — the conv weight layers re-quantized.
    """
    new = net.copy()
    owners = [(new, "input")] + [(r, a) for r in new.residual for a in ("conv1", "conv2")] \
        + [(new, s) for s in ("policy1", "value", "moves_left")]
    for owner, attr in owners:
        b = getattr(owner, attr)
        if b is None or not b.has_bn:
            continue
        c = b.means.size
        g = b.gammas.values.astype(np.float64) if b.gammas is not None else np.ones(c)
        beta = b.betas.values.astype(np.float64) if b.betas is not None else np.zeros(c)
        bias = b.biases.values.astype(np.float64) if b.biases is not None else np.zeros(c)
        s = np.sqrt(b.variances.values.astype(np.float64) + 1e-5)
        if into == "variances":
            b = b.replace(biases=_linear16(bias + beta * s / g), variances=_linear16(s ** 2 / g ** 2 - 1e-5),
                          gammas=None, betas=None)
        else:
            w = b.weights.values.reshape(c, -1).astype(np.float64) * g[:, None]
            b = b.replace(weights=_linear16(w.ravel()), biases=_linear16(g * bias + beta * s),
                          means=_linear16(g * b.means.values), gammas=None, betas=None)
        setattr(owner, attr, b)
    return new


# -- structure and numerics -------------------------------------------------------------

def test_check_passes_real_networks(maia):
    assert verify.check(maia) == []
    assert verify.check(io.load(str(LZ_0K))) == []


def _write(net, tmp_path, name):
    path = tmp_path / f"{name}.pb"
    path.write_bytes(lc0_proto.write(net))
    return path


def _broken(maia, how):
    net = maia.copy()
    r = net.residual
    if how == "half_params":
        w = r[0].conv1.weights.values
        r[0].conv1 = r[0].conv1.replace(weights=_linear16(w[: w.size // 2]))
        return net, "residual.0.conv1.weights"
    if how == "means_short":
        r[1].conv2 = r[1].conv2.replace(means=_linear16(r[1].conv2.means.values[:-1]))
        return net, "residual.1.conv2.means"
    if how == "nan":
        w = r[2].conv1.weights.values.copy()
        w[7] = np.nan
        r[2].conv1 = r[2].conv1.replace(weights=Tensor.from_values(w, Encoding.FLOAT32))
        return net, "residual.2.conv1.weights"
    if how == "negative_variance":
        var = net.value.variances.values.copy()
        var[3] = -1e-3  # below −ε = −1e-5
        net.value = net.value.replace(variances=_linear16(var))
        return net, "value.variances"
    if how == "wdl_declared_classical":
        net.format.value = VALUE_CLASSICAL
        return net, "ip2_val_b"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["half_params", "means_short", "nan", "negative_variance", "wdl_declared_classical"])
def test_broken_copies_fail_naming_the_block(maia, tmp_path, run_cli, how):
    net, block = _broken(maia, how)
    path = _write(net, tmp_path, how)
    problems = verify.check(io.load(str(path), strict=False))
    assert problems and any(p.startswith(block) for p in problems), problems
    result = run_cli("verify", path)
    assert result.exit_code == 1
    assert f"  - {block}" in result.stdout
    assert result.stderr.startswith(f"lcconvert: {path}: structure: ")
    data = json.loads(run_cli("verify", path, "--json").stdout)
    assert data["passed"] is False and data["structure"]["passed"] is False
    assert any(p.startswith(block) for p in data["structure"]["problems"])


def test_format_enum_problems(maia):
    net = maia.copy()
    for r in net.residual:
        r.se = None
    assert any(p.startswith("format.network: declared SE") for p in verify.check(net))
    net = maia.copy()
    net.moves_left = net.value
    assert any(p.startswith("moves_left: weights present") for p in verify.check(net))


# -- backwards compatibility ------------------------------------------------------------

def test_maia_is_not_backwards_compatible(maia, run_cli):
    report = verify.backwards_compatible(maia, positions=16, seed=1)
    assert not report.passed
    assert report.head("policy").max_abs > 0.1 and report.head("wdl").max_abs > 0.1
    assert any("γ and β ignored" in r for r in report.reasons)
    assert any(r.startswith("input: no conv biases") for r in report.reasons)
    json.dumps(report.to_dict())

    plain = run_cli("verify", MAIA, "--positions", "8")
    assert plain.exit_code == 0, plain.stderr
    assert "structure and numerics: ok" in plain.stdout
    assert "backwards compatible (legacy engines, γ/β ignored): no" in plain.stdout
    strict = run_cli("verify", MAIA, "--legacy", "--positions", "8")
    assert strict.exit_code == 1
    assert strict.stderr.startswith(f"lcconvert: {MAIA}: not backwards compatible: legacy semantics (γ and β ignored)")


def test_folded_network_is_backwards_compatible(maia):
    folded = _fold(maia, "variances")
    report = verify.backwards_compatible(folded, positions=8)
    assert report.passed, report.reasons
    assert all(h.max_abs == 0 for h in report.heads)  # no γ/β left: the two semantics are the same math


def test_leela_zero_is_backwards_compatible(run_cli):
    result = run_cli("verify", LZ_0K, "--legacy", "--positions", "4")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "backwards compatible (legacy engines, γ/β ignored): yes" in result.stdout


# -- comparisons ----------------------------------------------------------------------------

def test_compare_identical_is_exact(maia):
    report = verify.compare(maia, maia, positions=8)
    assert report.passed and all(h.max_abs == 0 for h in report.heads)
    assert {h.head for h in report.heads} == {"policy", "value", "wdl"}
    # LINEAR16 → LINEAR16 re-encoding is lossless, so the floor comes from the rounding bound.
    assert all(h.floor_reencode == 0 and h.floor_rounding > 0 for h in report.heads)


def test_compare_folds(maia):
    """Known answers (FORMATS.md §3): γ into the variances keeps maia-1100's outputs within the
    encoding noise; γ into the LINEAR16 weights does not; legacy maia is far off."""
    good = verify.compare(_fold(maia, "variances"), maia, legacy=True, positions=16, seed=0)
    assert good.passed, good.reasons
    assert all(h.max_abs < 0.5 * h.floor for h in good.heads)
    bad = verify.compare(_fold(maia, "weights"), maia, legacy=True, positions=16, seed=0)
    assert not bad.passed and bad.head("policy").max_abs > verify.K * bad.head("policy").floor
    legacy = verify.compare(maia, maia, legacy=True, positions=8)
    assert not legacy.passed and legacy.head("wdl").max_abs > 0.1


def test_compare_reencoded_float16_passes_and_shifted_mean_fails():
    ref = synth.make_network(family="chess", blocks=2, filters=16, moves_left=True, encoding=Encoding.FLOAT32,
                             seed=4)
    from lcconvert.transforms import reencode

    half, _ = reencode(ref, Encoding.FLOAT16)
    report = verify.compare(half, ref, positions=8)
    assert report.passed, report.reasons
    assert report.encoding == "FLOAT16" and report.head("moves_left") is not None
    assert all(h.floor_reencode == h.max_abs for h in report.heads)  # NET *is* REF re-encoded

    broken = ref.copy()
    means = broken.residual[1].conv1.means.values.copy()
    means[0] += 0.5
    broken.residual[1].conv1 = broken.residual[1].conv1.replace(means=Tensor.from_values(means))
    report = verify.compare(broken, ref, positions=8)
    assert not report.passed and report.reasons
    text = report.render()
    assert "FAIL" in text and "policy (probabilities)" in text and "moves left" in text


def test_compare_missing_head_fails(maia):
    no_wdl = synth.make_network(family="chess", blocks=1, filters=8, value="classical", seed=0)
    wdl = synth.make_network(family="chess", blocks=1, filters=8, value="wdl", seed=0)
    report = verify.compare(no_wdl, wdl, positions=4)
    assert not report.passed and "REF has a WDL value, NET has none" in report.reasons


def test_cli_against(run_cli, tmp_path, maia):
    folded = _write(_fold(maia, "variances"), tmp_path, "folded")
    result = run_cli("verify", folded, "--against", MAIA, "--legacy", "--positions", "8", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] and data["backwards_compatible"]["passed"]
    assert data["against"]["net_semantics"] == "legacy" and data["against"]["k"] == verify.K
    heads = {h["head"]: h for h in data["against"]["heads"]}
    assert heads["policy"]["max_abs"] <= heads["policy"]["limit"]

    weights = _write(_fold(maia, "weights"), tmp_path, "weights")
    result = run_cli("verify", weights, "--against", MAIA, "--legacy", "--positions", "16")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"lcconvert: {weights}: against {MAIA}: ")
    assert "exceeds 2 × noise floor" in result.stderr


def test_cli_unreadable(run_cli, tmp_path):
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00\x01junk")
    result = run_cli("verify", junk)
    assert result.exit_code == 2 and result.stderr.startswith(f"lcconvert: {junk}: ")
    result = run_cli("verify", MAIA, "--against", junk)
    assert result.exit_code == 2 and result.stderr.startswith(f"lcconvert: {junk}: ")


def test_rounded_reference_is_drawn_when_read_and_is_the_one_seeded_stream():
    """The rounding floor's REF (every parameter moved within its rounding bound) is made tensor by tensor
    as a forward pass reads it, never as a whole copy: and it is the very noise of one seeded stream over
    the tensors in network order, as drawn all at once (so floors do not depend on the order of reading)."""
    from lcconvert.codecs import rounding_bound
    from lcconvert.transforms import map_tensors

    net = io.load(str(MAIA))
    rng = np.random.default_rng(3 + 0x5EED)

    def at_once(_name, t):
        v = t.values.astype(np.float64)
        bound = np.maximum(np.asarray(rounding_bound(t.values, Encoding.LINEAR16), dtype=np.float64),
                           np.abs(v) * verify.FLOAT32_HALF_ULP)
        return Tensor.from_values(v + rng.uniform(-1.0, 1.0, v.shape) * bound, Encoding.FLOAT32)

    expect = map_tensors(net, at_once)
    lazy = verify._rounded(net, Encoding.LINEAR16, 3)
    pairs = list(zip(expect.tensors(), lazy.tensors()))
    for (_, a), (_, b) in reversed(pairs):  # read in the other order: same numbers
        assert np.array_equal(a.values, b.peek())
        assert not b.decoded  # peek keeps nothing
    assert not np.array_equal(net.input.weights.values, lazy.input.weights.values)
