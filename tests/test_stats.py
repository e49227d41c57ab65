"""`inspect --betas/--gammas/--layers/--csv/--plot` on real data and on networks with known answers."""
from __future__ import annotations

import csv
import io as _io
import json
import math
import sys

import numpy as np
import pytest
from conftest import MAIA

from lcconvert import codecs, io, pipeline, shapes, stats
from lcconvert.codecs import Encoding
from lcconvert.constants import Family
from lcconvert.network import ConvBlock, Network, Residual
from lcconvert.tensor import Tensor

EPS = 1e-5


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


def f32(x):
    return Tensor.from_values(np.asarray(x, dtype=np.float32), Encoding.FLOAT32)


# -- maia-1100: explicit gammas and betas --------------------------------------

def test_maia_has_15_bn_layers_in_network_order(maia):
    table = stats.beta_stats(maia)
    names = [r.name for r in table.layers]
    assert len(names) == 15
    assert names[:3] == ["input", "residual.0.conv1", "residual.0.conv2"]
    assert names[-3:] == ["residual.5.conv2", "policy1", "value"]
    assert {r.source for r in table.layers} == {stats.SOURCE_BETAS}
    assert [r.channels for r in table.layers] == [64] * 14 + [32]


def test_maia_global_beta_range(maia):
    s = stats.beta_stats(maia).summary
    # The figures, from the stored LINEAR16 betas (±1e-4 as stated there).
    assert s["min"] == pytest.approx(-2.7227, abs=1e-4)
    assert s["max"] == pytest.approx(1.5817, abs=1e-4)
    assert s["layers"] == s["recoverable_layers"] == 15
    # Maia has no conv biases, so the effective betas are the stored betas, bit for bit.
    for row, (_, block) in zip(stats.beta_stats(maia).layers, maia.bn_blocks()):
        assert np.array_equal(row.values, block.betas.values.astype(np.float64))
    means = [r.mean for r in stats.beta_stats(maia).layers]
    assert s["negative_layers"] == sum(m < 0 for m in means)
    assert s["median_layer_mean"] == pytest.approx(float(np.median(means)))
    assert s["text"].startswith(f"betas negative in {s['negative_layers']} of 15 layers; median layer mean ")


def test_maia_gammas_exactly_one_on_conv1_policy1_value(maia):
    table = stats.gamma_stats(maia)
    for r in table.layers:
        assert r.source == stats.SOURCE_GAMMAS
        if r.name.endswith("conv1") or r.name in ("policy1", "value"):
            assert np.all(r.values == 1.0), r.name
        else:  # input and conv2 gammas are learned (FORMATS.md §2: 0.13..2.89)
            assert not np.all(r.values == 1.0), r.name
    s = table.summary
    assert s["learned_layers"] == 7 and s["negative"] == 0 and s["near_zero"] == 0
    assert 0.13 < s["min"] < 0.14 and 2.88 < s["max"] < 2.89


def test_relu_clip_known_values():
    # Φ(1) = 0.8413447460685429, Φ(−0.5) = 0.3085375387259869 (standard normal table values).
    clip = stats.relu_clip(np.array([0.0, -1.0, 1.0, -0.3, 0.3, 0.0]), np.array([1.0, 1.0, -2.0, 0.0, 0.0, 0.0]))
    assert clip == pytest.approx([0.5, 0.8413447460685429, 0.3085375387259869, 1.0, 0.0, 0.5], abs=1e-12)


def test_maia_clip_fraction_is_mean_of_channels(maia):
    row = stats.beta_stats(maia).layers[0]
    _, block = next(maia.bn_blocks())
    beta, gamma = block.betas.values.astype(float), block.gammas.values.astype(float)
    expected = np.mean([0.5 * math.erfc(b / abs(g) / math.sqrt(2)) for b, g in zip(beta, gamma)])
    assert row.relu_clip_fraction == pytest.approx(expected, abs=1e-12)


def test_near_zero_and_negative_gammas_counted(maia):
    net = maia.copy()
    g = net.residual[1].conv2.gammas.values.copy()
    g[:3] = [-0.5, 0.0, 0.004]
    net.residual[1].conv2 = net.residual[1].conv2.replace(gammas=f32(g))
    row = [r for r in stats.gamma_stats(net).layers if r.name == "residual.1.conv2"][0]
    assert row.negative == 1 and row.near_zero == 2
    assert stats.gamma_stats(net).summary["negative"] == 1


# -- betas stored in the biases (Leela Zero, 2018 convention) ------------------

def lz_net(rng, filters=8, blocks=2):
    """A Leela Zero Go net whose biases carry known betas: b = β·√(σ²+ε). Returns (net, {layer: β})."""
    known = {}

    def block(name, cin, cout, k):
        beta = rng.normal(-0.4, 0.8, cout).astype(np.float32)
        var = rng.uniform(0.01, 3.0, cout).astype(np.float32)
        known[name] = beta.astype(np.float64)
        b = beta.astype(np.float64) * np.sqrt(var.astype(np.float64) + EPS)
        return ConvBlock(weights=f32(rng.normal(0, 0.1, cout * cin * k * k)), biases=f32(b),
                         means=f32(rng.normal(0, 0.5, cout)), variances=f32(var))

    net = Network(family=Family.GO)
    net.input = block("input", 18, filters, 3)
    for i in range(blocks):
        net.residual.append(Residual(block(f"residual.{i}.conv1", filters, filters, 3),
                                     block(f"residual.{i}.conv2", filters, filters, 3)))
    net.policy = block("policy", filters, 2, 1)
    net.ip_pol_w, net.ip_pol_b = f32(rng.normal(0, 0.01, 2 * 361 * 362)), f32(rng.normal(0, 0.01, 362))
    net.value = block("value", filters, 1, 1)
    net.ip1_val_w, net.ip1_val_b = f32(rng.normal(0, 0.01, 361 * 256)), f32(rng.normal(0, 0.01, 256))
    net.ip2_val_w, net.ip2_val_b = f32(rng.normal(0, 0.1, 256)), f32([0.1])
    return shapes.check(net), known


def check_recovered(table, known):
    assert [r.name for r in table.layers] == list(known)
    for r in table.layers:
        assert r.source == stats.SOURCE_BIASES
        # b and σ² are float32: each carries relative error ≤ 2^-24, so the recovered
        # β = b/√(σ²+ε) is within ~1.5·2^-24·|β| ≈ 3e-7 for |β| < 3 — inside 1e-6.
        np.testing.assert_allclose(r.values, known[r.name], rtol=0, atol=1e-6)


def test_betas_recovered_from_biases_in_memory():
    net, known = lz_net(np.random.default_rng(1))
    check_recovered(stats.beta_stats(net), known)


def test_betas_recovered_from_lz_text_file(tmp_path, run_cli):
    text = pytest.importorskip("lcconvert.formats.text")
    net, known = lz_net(np.random.default_rng(2))
    path = tmp_path / "lz.txt"
    path.write_bytes(text.write(net))
    check_recovered(stats.beta_stats(io.load(str(path))), known)
    result = run_cli("inspect", path, "--betas", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["betas"]["layers"]
    assert {r["source"] for r in rows} == {"biases"}
    for r in rows:
        assert r["mean"] == pytest.approx(float(np.mean(known[r["name"]])), abs=1e-6)


# -- folds done by hand (the algebra of FORMATS.md §3) --------------------------

def fold_by_hand(net, beta_into):
    """γ into the variances, β into the means or the biases; biases present, no γ/β (all maia γ > 0)."""
    new = net.copy()

    def fold(block):
        g, beta = block.gammas.values.astype(float), block.betas.values.astype(float)
        mu, var = block.means.values.astype(float), block.variances.values.astype(float)
        s = np.sqrt(var + EPS)
        var2 = s * s / (g * g) - EPS
        if beta_into == "means":
            return block.replace(gammas=None, betas=None, biases=f32(np.zeros_like(g)),
                                 means=f32(mu - beta * s / g), variances=f32(var2))
        return block.replace(gammas=None, betas=None, biases=f32(beta * s / g), variances=f32(var2))

    new.input = fold(new.input)
    for r in new.residual:
        r.conv1, r.conv2 = fold(r.conv1), fold(r.conv2)
    new.policy1, new.value = fold(new.policy1), fold(new.value)
    return new


def test_fold_into_biases_by_hand_keeps_effective_betas(maia):
    before = stats.beta_stats(maia)
    after = stats.beta_stats(fold_by_hand(maia, "biases"))
    for a, b in zip(before.layers, after.layers):
        assert b.source == stats.SOURCE_BIASES
        # b' and σ'² are rounded to float32 (relative 2^-24 each); β = b'/√(σ'²+ε) then
        # carries ≲ 2·2^-24·|β| ≈ 3.3e-7 for maia's |β| < 2.8 (measured: 9.6e-8).
        np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-6)


def test_fold_into_means_by_hand_is_not_recoverable(maia, tmp_path, run_cli):
    folded = fold_by_hand(maia, "means")
    table = stats.beta_stats(folded)
    assert {r.source for r in table.layers} == {stats.NOT_RECOVERABLE}
    assert all(r.mean is None and r.values is None for r in table.layers)
    assert table.summary["recoverable_layers"] == 0
    assert "not recoverable" in table.summary["text"]
    assert "not recoverable" in stats.render_table(table)
    # Through a real file and the CLI.
    path = tmp_path / "folded.pb.gz"
    pipeline.save(folded, str(path))
    result = run_cli("inspect", path, "--betas")
    assert result.exit_code == 0
    assert result.stdout.count("not recoverable") >= 15
    rows = json.loads(run_cli("inspect", path, "--betas", "--json").stdout)["betas"]["layers"]
    assert all(r["source"] == "not recoverable" and r["mean"] is None for r in rows)


def test_zero_biases_and_zero_means_mean_zero_shift():
    block = ConvBlock(weights=f32(np.ones(4)), biases=f32(np.zeros(4)), means=f32(np.zeros(4)),
                      variances=f32(np.ones(4)))
    values, source = stats.effective_betas(block, EPS)
    assert source == stats.SOURCE_NONE and np.all(values == 0)


def test_betas_and_biases_add():
    beta, b, g, var = np.array([0.5, -1.0]), np.array([0.3, 0.2]), np.array([2.0, -1.0]), np.array([0.99999, 3.99999])
    block = ConvBlock(biases=f32(b), means=f32([0.1, 0.1]), variances=f32(var), gammas=f32(g), betas=f32(beta))
    values, source = stats.effective_betas(block, EPS)
    assert source == stats.SOURCE_BETAS_AND_BIASES
    # √(σ²+ε) = 1 and 2 here; float32 storage of var limits agreement to ~1e-7.
    np.testing.assert_allclose(values, [0.5 + 2.0 * 0.3 / 1.0, -1.0 - 0.2 / 2.0], atol=1e-6)


# -- the tensor table ---------------------------------------------------------

def test_layers_table(maia):
    rows, summary = stats.tensor_stats(maia)
    tensors = dict(maia.tensors())
    assert [r.name for r in rows] == list(tensors)
    assert summary["encodings"] == {"LINEAR16": len(rows)}
    assert summary["parameters"] == maia.parameters
    for r in rows:
        t = tensors[r.name]
        v = t.values.astype(np.float64)
        assert r.encoding == "LINEAR16" and r.size == t.size
        assert (r.linear16_min, r.linear16_max) == (t.min_val, t.max_val)
        assert r.l2 == pytest.approx(np.linalg.norm(v), rel=1e-12)
        assert r.min == v.min() and r.max == v.max()
        assert r.std == pytest.approx(v.std(), rel=1e-12)
    # A float tensor reports the range the LINEAR16 encoder would choose.
    net = maia.copy()
    net.ip2_val_b = f32([-0.25, 0.5, 1.0])
    row = [r for r in stats.tensor_stats(net)[0] if r.name == "ip2_val_b"][0]
    assert row.encoding == "FLOAT32" and (row.linear16_min, row.linear16_max) == (-0.25, 1.0)
    assert row.linear16_step == pytest.approx(1.25 / 65535)


# -- CLI ------------------------------------------------------------------------

def test_cli_json_keys(run_cli):
    result = run_cli("inspect", MAIA, "--betas", "--gammas", "--layers", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for kind in ("betas", "gammas"):
        layers = doc[kind]["layers"]
        assert len(layers) == 15
        for row in layers:
            assert set(stats.LAYER_KEYS) <= set(row)
        assert "text" in doc[kind]["summary"]
    assert {"negative", "near_zero"} <= set(doc["gammas"]["layers"][0])
    assert doc["betas"]["summary"]["min"] == pytest.approx(-2.7227, abs=1e-4)
    assert len(doc["tensors"]["tensors"]) == len(list(io.load(str(MAIA)).tensors()))


def test_cli_text_and_plain_inspect_unchanged(run_cli):
    result = run_cli("inspect", MAIA, "--betas")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("residual.3.conv2 ") for line in lines)
    assert lines[-1].startswith("summary: betas negative in ")
    plain = run_cli("inspect", MAIA)
    assert plain.exit_code == 0 and "6 blocks x 64 filters" in plain.stdout and "summary:" not in plain.stdout


def test_cli_csv(run_cli, tmp_path):
    out = tmp_path / "stats.csv"
    result = run_cli("inspect", MAIA, "--betas", "--gammas", "--csv", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(_io.StringIO(out.read_text())))
    assert [r["table"] for r in rows] == ["betas"] * 15 + ["gammas"] * 15
    assert float(rows[-1]["min"]) == 1.0 and rows[-1]["name"] == "value"
    assert min(float(r["min"]) for r in rows[:15]) == pytest.approx(-2.7227, abs=1e-4)
    # An existing file needs --force and is left alone without it.
    again = run_cli("inspect", MAIA, "--betas", "--csv", out)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_cli_plot_png(run_cli, tmp_path):
    import matplotlib.image

    out = tmp_path / "betas.png"
    result = run_cli("inspect", MAIA, "--plot", out, "--gammas")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    assert float(image[..., :3].std()) > 0.01  # something is drawn, not a blank canvas


def test_cli_plot_without_matplotlib(run_cli, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    out = tmp_path / "betas.png"
    result = run_cli("inspect", MAIA, "--plot", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"lcconvert: {out}: --plot needs matplotlib, which is not installed: "
                                     "pip install 'lcconvert[plot]'")
    assert not out.exists()


def test_cli_bad_input(run_cli, tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"not a network")
    result = run_cli("inspect", bad, "--betas")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"lcconvert: {bad}: ") and len(result.stderr.splitlines()) == 1


# -- after a real fold (lcconvert/fold.py) -------------------------------------

def test_fold_bias_into_biases_keeps_effective_betas(maia):
    fold = pytest.importorskip("lcconvert.fold")
    folded, _ = fold.fold(maia, beta_into="biases", gamma_into="auto")
    before, after = stats.beta_stats(maia), stats.beta_stats(folded)
    blocks = dict(folded.bn_blocks())
    for a, b in zip(before.layers, after.layers):
        assert a.name == b.name and b.source == stats.SOURCE_BIASES
        # The fold stores b' and σ'² in LINEAR16 (maia's encoding), each off by at most
        # its layer's rounding bound db, dv. β = b'/√(σ'²+ε) then moves by at most
        # db/s + |b'|·dv/(2s³) to first order, s = √(σ'²+ε−dv) the smallest it can be.
        block = blocks[a.name]
        bias, var = block.biases.values.astype(float), block.variances.values.astype(float)
        db = codecs.rounding_bound(block.biases.values, Encoding.LINEAR16)
        dv = codecs.rounding_bound(block.variances.values, Encoding.LINEAR16)
        s = np.sqrt(var + EPS - dv)
        bound = db / s + np.abs(bias) * dv / (2 * s**3)
        assert np.all(np.abs(b.values - a.values) <= 1.01 * bound + 1e-7), a.name


def test_fold_bias_into_means_not_recoverable(maia):
    fold = pytest.importorskip("lcconvert.fold")
    folded, _ = fold.fold(maia, beta_into="means", gamma_into="auto")
    table = stats.beta_stats(folded)
    assert {r.source for r in table.layers} == {stats.NOT_RECOVERABLE}


def test_plot_needs_a_png_name(tmp_path, run_cli):
    out = tmp_path / "plot.pdf"
    r = run_cli("inspect", MAIA, "--plot", out)
    assert r.exit_code == 2 and ".png" in r.stderr and not out.exists()
