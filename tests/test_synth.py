"""Synthetic networks: structurally valid, well-scaled, and byte-stable through the Lc0 writer."""
from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from lcconvert import io, shapes, versions
from lcconvert.codecs import Encoding
from lcconvert.constants import Family
from lcconvert.synth import make_network, write_pb

VARIANTS = [
    dict(),
    dict(se_ratio=None, policy="classical", value="classical", gammas=False, betas=False, biases=True),
    dict(moves_left=True, activation="mish", gammas="all", biases=True),
    dict(blocks=0, filters=8, se_ratio=2, value="classical"),
    dict(encoding=Encoding.FLOAT16),
    dict(encoding=Encoding.BFLOAT16, policy="classical"),
    dict(encoding=Encoding.FLOAT32, moves_left=True),
    dict(family="go"),
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_structure_passes_check_and_matches_the_request(kw):
    net = make_network(**kw)
    assert shapes.structure_problems(net) == []
    assert net.blocks == kw.get("blocks", 2)
    assert net.filters == kw.get("filters", 16)
    enc = kw.get("encoding", Encoding.LINEAR16)
    assert net.encodings == [enc.name]
    if kw.get("family") == "go":
        assert net.family is Family.GO and net.input_planes == 18
        assert net.se_channels == 0
        assert net.ip_pol_w.size == 362 * 2 * 361 and net.ip_pol_b.size == 362
        assert net.value.weights.size == 16 and net.ip1_val_w.size == 256 * 361 and net.ip2_val_b.size == 1
        for name, block in net.conv_blocks():
            assert block.present == ("weights", "biases", "means", "variances"), name
        return
    se_ratio = kw.get("se_ratio", 4) if net.blocks else None  # no tower, no SE unit
    assert net.se_channels == (net.filters // se_ratio if se_ratio else 0)
    assert net.format.network == (4 if se_ratio else 3)
    assert net.format.policy == (2 if kw.get("policy", "convolution") == "convolution" else 1)
    assert net.format.value == net.format.output == (2 if kw.get("value", "wdl") == "wdl" else 1)
    assert net.has_moves_left == kw.get("moves_left", False)
    assert net.format.default_activation == (1 if kw.get("activation") == "mish" else None)
    assert net.weights_encoding == 1
    assert net.min_version == versions.required(net)
    if enc is not Encoding.LINEAR16:
        assert net.min_version >= versions.LAYER_ENCODINGS
    for name, block in net.bn_blocks():
        assert (block.gammas is not None) == bool(kw.get("gammas", True)), name
        assert (block.betas is not None) == kw.get("betas", True), name
        assert (block.biases is not None) == kw.get("biases", False), name


def test_value_distributions_are_as_documented():
    net = make_network(blocks=4, filters=64, se_ratio=8, seed=3)
    learned = [net.input] + [r.conv2 for r in net.residual]
    g = np.concatenate([b.gammas.values for b in learned])
    # LINEAR16 rounding moves the ends by at most (2 − 0.2)/131070.
    assert g.min() >= 0.2 - 1e-4 and g.max() <= 2.0 + 1e-4 and g.std() > 0.2
    fixed = [r.conv1 for r in net.residual] + [net.policy1, net.value]
    assert all(np.all(b.gammas.values == 1.0) for b in fixed)
    betas = np.concatenate([b.betas.values for _, b in net.bn_blocks()])
    # 64·10 + 32 betas drawn from N(−0.3, 0.5): the sample mean is within 0.1 of −0.3 at > 5σ.
    assert abs(betas.mean() + 0.3) < 0.1 and 0.4 < betas.std() < 0.6
    for name, block in net.bn_blocks():
        var = block.variances.values
        assert var.min() > 0, name
        # Realistic spread: real layers span more than a factor of 5 between channels.
        assert var.max() / var.min() > 5, name


def test_seed_determines_the_network():
    a, b, c = make_network(seed=1), make_network(seed=1), make_network(seed=2)
    ta, tb, tc = dict(a.tensors()), dict(b.tensors()), dict(c.tensors())
    assert all(ta[k].raw == tb[k].raw for k in ta)
    assert ta["input.weights"].raw != tc["input.weights"].raw


def _conv(x, w):
    """Zero-padded cross-correlation: x [N, C, 8, 8], w [O, C, k, k] -> [N, O, 8, 8]."""
    k = w.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = 0
    for i in range(k):
        for j in range(k):
            out = out + np.einsum("nchw,oc->nohw", xp[:, :, i:i + 8, j:j + 8], w[:, :, i, j], optimize=True)
    return out


def _bn(y, block):
    c = y.shape[1]
    s = np.sqrt(block.variances.values + 1e-5).reshape(1, c, 1, 1)
    g = block.gammas.values.reshape(1, c, 1, 1) if block.gammas is not None else 1.0
    b = block.betas.values.reshape(1, c, 1, 1) if block.betas is not None else 0.0
    bias = block.biases.values.reshape(1, c, 1, 1) if block.biases is not None else 0.0
    return g * (y + bias - block.means.values.reshape(1, c, 1, 1)) / s + b


def test_activations_stay_of_order_one_through_a_deep_tower():
    """An independent 8×8 forward pass of the tower (lc0 semantics, FORMATS.md §2) on
    chess-like input planes: the residual stream's RMS stays within [0.1, 10] at every
    block of a 20-block network — the calibration is what prevents growth like 20×."""
    net = make_network(blocks=20, filters=32, se_ratio=4, seed=5)
    rng = np.random.default_rng(0)
    n = 8
    x = np.zeros((n, 112, 8, 8), np.float32)
    x[:, :104] = rng.random((n, 104, 8, 8)) < 0.03
    x[:, 104:109] = (rng.random((n, 5, 1, 1)) < 0.5)
    x[:, 109] = rng.integers(0, 100, (n, 1, 1))
    x[:, 111] = 1.0
    c = net.filters

    def conv_block(x, block, cin):
        weights = block.weights.values.reshape(-1, cin, 3, 3)
        return _bn(_conv(x, weights), block)

    h = np.maximum(conv_block(x, net.input, 112), 0)
    rms = []
    for r in net.residual:
        y = np.maximum(conv_block(h, r.conv1, c), 0)
        y = conv_block(y, r.conv2, c)
        pooled = y.mean(axis=(2, 3))
        s1 = np.maximum(pooled @ r.se.w1.values.reshape(-1, c).T + r.se.b1.values, 0)
        z = s1 @ r.se.w2.values.reshape(2 * c, -1).T + r.se.b2.values
        gate = 1 / (1 + np.exp(-z[:, :c]))
        h = np.maximum(gate[:, :, None, None] * y + z[:, c:, None, None] + h, 0)
        rms.append(float(np.sqrt((h ** 2).mean())))
    assert all(0.1 < v < 10 for v in rms), rms


@pytest.mark.parametrize("kw", [dict(), dict(family="go"), dict(encoding=Encoding.BFLOAT16, moves_left=True)],
                         ids=["chess", "go", "bf16-ml"])
@pytest.mark.parametrize("name", ["net.pb.gz", "net.pb"])
def test_pb_write_read_round_trip_is_byte_identical(tmp_path, kw, name):
    net = make_network(**kw)
    first = tmp_path / name
    write_pb(net, first)
    back = io.load(str(first))
    for (n1, t1), (n2, t2) in zip(net.tensors(), back.tensors(), strict=True):
        assert n1 == n2 and t1.encoding is t2.encoding
        # Synthetic tensors are stored encoded, so the file decodes to exactly them.
        np.testing.assert_array_equal(t1.values, t2.values, err_msg=n1)
    assert back.format == net.format or kw.get("family") == "go"
    second = tmp_path / ("again-" + name)
    write_pb(back, second)
    a, b = first.read_bytes(), second.read_bytes()
    if name.endswith(".gz"):
        assert a[:2] == b"\x1f\x8b"
        a, b = gzip.decompress(a), gzip.decompress(b)
    assert a[:5] == b"\x0d\xc0\x01\x00\x00"
    assert a == b


def test_large_network_is_fast():
    start = time.perf_counter()
    net = make_network(blocks=20, filters=256, se_ratio=8)
    elapsed = time.perf_counter() - start
    assert net.parameters > 24_000_000
    # ~1 s measured on this 2-core machine; 15 s leaves room for a loaded CI box.
    assert elapsed < 15, elapsed
