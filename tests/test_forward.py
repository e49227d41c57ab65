"""The NumPy forward pass against real engines' outputs, the policy map, input planes and `eval`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import LZ_0K, LZ_RANDOM, MAIA, REFERENCE
from lcconvert import forward, io, policy_map, positions, synth
from lcconvert.errors import FormatError, UnsupportedError


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


@pytest.fixture(scope="module")
def maia_ref():
    return np.load(REFERENCE / "maia-1100.lc0.npz")


# -- real engines ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maia_matches_lc0(maia, maia_ref, dtype):
    out = forward.evaluate(maia, maia_ref["planes"], dtype=dtype)
    assert out.policy_logits.shape == (8, 1858) and out.policy_logits.dtype == dtype
    # Tolerances from the issue; lc0's own CPU backends differ by ~1e-5 in the logits.
    assert np.abs(out.policy_logits - maia_ref["logits"]).max() < 1e-4
    assert np.abs(out.wdl - maia_ref["wdl"]).max() < 1e-5
    assert np.abs(out.value - maia_ref["q"]).max() < 2e-5
    assert (out.policy_logits.argmax(axis=1) == maia_ref["logits"].argmax(axis=1)).all()
    assert np.allclose(out.policy.sum(axis=1), 1, atol=1e-5)
    assert out.moves_left is None and out.winrate is None


def test_maia_layouts_agree(maia, maia_ref):
    a = forward.evaluate(maia, maia_ref["planes"])
    b = forward.evaluate(maia, maia_ref["planes"].reshape(8, 112, 64))
    assert np.array_equal(a.policy_logits, b.policy_logits)


def test_maia_legacy_semantics_differ(maia, maia_ref):
    """maia-1100 has learned γ/β: an engine ignoring them computes something else entirely."""
    legacy = forward.evaluate(maia, maia_ref["planes"], semantics="legacy")
    assert np.abs(legacy.wdl - maia_ref["wdl"]).max() > 0.1


@pytest.mark.parametrize("path,ref", [(LZ_0K, "lz-0k.leelaz.npz"), (LZ_RANDOM, "lz-random-2x16.leelaz.npz")])
def test_leela_zero_matches_leelaz(path, ref):
    pytest.importorskip("lcconvert.formats.text")
    net = io.load(str(path))
    data = np.load(REFERENCE / ref)
    for semantics in ("modern", "legacy"):  # no γ/β in Leela Zero files: both are the same
        out = forward.evaluate(net, data["planes"], semantics=semantics)
        assert out.policy.shape == (4, 362)
        assert np.abs(out.policy - data["policy"]).max() < 1e-5
        assert np.abs(out.winrate - data["winrate"]).max() < 1e-5
        assert np.allclose(out.winrate, (1 + out.value) / 2)
    grid = forward.evaluate(net, data["planes"].reshape(4, 18, 19, 19))
    assert np.array_equal(grid.policy, out.policy)


def test_go_value_from_black_turns_to_side_to_move():
    """Text v2 (ELF) nets give black's value; the output is for the side to move (FORMATS.md §4)."""
    pytest.importorskip("lcconvert.formats.text")
    net = io.load(str(LZ_RANDOM))
    data = np.load(REFERENCE / "lz-random-2x16.leelaz.npz")
    black = data["planes"][:, 16].mean(axis=1) > 0.5
    assert black.any() and (~black).any()
    v1 = forward.evaluate(net, data["planes"]).value
    v2_net = net.copy()
    v2_net.go_value_from_black = True
    v2 = forward.evaluate(v2_net, data["planes"]).value
    assert np.array_equal(v2[black], v1[black]) and np.array_equal(v2[~black], -v1[~black])


# -- known answers: a direct, loop-based evaluation of the same formulas -----------

def _direct(net, planes):
    """FORMATS.md §2 written the slow, obvious way in float64 NCHW (independent of forward.py's layout)."""
    b = net.board_size
    act = (lambda z: z * np.tanh(np.logaddexp(0, z))) if net.format.activation == 1 else (lambda z: np.maximum(z, 0))

    def conv(x, block, k, bn=True):
        cout = block.weights.size // (x.shape[1] * k * k)
        w = block.weights.values.astype(np.float64).reshape(cout, x.shape[1], k, k)
        p = k // 2
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        y = np.zeros((x.shape[0], cout, b, b))
        for ky in range(k):
            for kx in range(k):
                y += np.einsum("nchw,oc->nohw", xp[:, :, ky:ky + b, kx:kx + b], w[:, :, ky, kx])
        vec = lambda t, d: (t.values.astype(np.float64) if t is not None else np.full(cout, d))[None, :, None, None]  # noqa: E731
        y = y + vec(block.biases, 0.0)
        if bn:
            y = vec(block.gammas, 1.0) * (y - vec(block.means, 0.0)) / np.sqrt(vec(block.variances, 0.0) + 1e-5) \
                + vec(block.betas, 0.0)
        return y

    def fc(x, w, bias):
        return x @ w.values.astype(np.float64).reshape(bias.size, -1).T + bias.values

    x = act(conv(planes.reshape(-1, net.input_planes, b, b).astype(np.float64), net.input, 3))
    for r in net.residual:
        y = conv(act(conv(x, r.conv1, 3)), r.conv2, 3)
        if r.se is not None:
            c = y.shape[1]
            z = fc(act(fc(y.mean(axis=(2, 3)), r.se.w1, r.se.b1)), r.se.w2, r.se.b2)
            y = 1 / (1 + np.exp(-z[:, :c, None, None])) * y + z[:, c:, None, None]
        x = act(y + x)
    n = x.shape[0]
    if net.policy1 is not None:
        p = conv(act(conv(x, net.policy1, 3)), net.policy, 3, bn=False).reshape(n, -1)
        logits = np.zeros((n, 1858))
        table = policy_map.conv_policy_map()
        for flat in np.flatnonzero(table >= 0):
            logits[:, table[flat]] = p[:, flat]
    else:
        logits = fc(act(conv(x, net.policy, 1)).reshape(n, -1), net.ip_pol_w, net.ip_pol_b)
    v = fc(act(fc(act(conv(x, net.value, 1)).reshape(n, -1), net.ip1_val_w, net.ip1_val_b)),
           net.ip2_val_w, net.ip2_val_b)
    ml = None
    if net.has_moves_left:
        m = fc(act(fc(act(conv(x, net.moves_left, 1)).reshape(n, -1), net.ip1_mov_w, net.ip1_mov_b)),
               net.ip2_mov_w, net.ip2_mov_b)
        ml = np.maximum(m[:, 0], 0)
    return logits, v, ml


@pytest.mark.parametrize("kw", [
    dict(policy="convolution", value="wdl", moves_left=True, se_ratio=4, biases=True, gammas="all"),
    dict(policy="classical", value="classical", moves_left=True, se_ratio=None, activation="mish"),
    dict(policy="classical", value="wdl", moves_left=False, se_ratio=2, gammas=False, betas=False, biases=True),
])
def test_matches_direct_evaluation(kw):
    net = synth.make_network(family="chess", blocks=2, filters=8, seed=3, **kw)
    planes = positions.random_planes(net, 5, seed=1)
    logits, v, ml = _direct(net, planes)
    out = forward.evaluate(net, planes, dtype=np.float64)
    # float64 throughout; the two differ only in the order of operations.
    assert np.abs(out.policy_logits - logits).max() < 1e-9
    if kw["value"] == "wdl":
        e = np.exp(v - v.max(axis=1, keepdims=True))
        wdl = e / e.sum(axis=1, keepdims=True)
        assert np.abs(out.wdl - wdl).max() < 1e-12
        assert np.allclose(out.value, wdl[:, 0] - wdl[:, 2], atol=1e-12)
    else:
        assert out.wdl is None and np.abs(out.value - np.tanh(v[:, 0])).max() < 1e-12
    if kw["moves_left"]:
        assert np.abs(out.moves_left - ml).max() < 1e-9
    else:
        assert out.moves_left is None and ml is None
    out32 = forward.evaluate(net, planes, dtype=np.float32)
    assert out32.policy.dtype == np.float32 and np.abs(out32.policy - out.policy).max() < 1e-5


def test_legacy_ignores_gamma_and_beta_exactly():
    net = synth.make_network(family="chess", blocks=1, filters=8, seed=2, biases=True)
    planes = positions.random_planes(net, 4, seed=0)
    stripped = net.copy()
    stripped.input = stripped.input.replace(gammas=None, betas=None)
    for r in stripped.residual:
        r.conv1, r.conv2 = r.conv1.replace(gammas=None, betas=None), r.conv2.replace(gammas=None, betas=None)
    for slot in ("policy1", "value"):
        setattr(stripped, slot, getattr(stripped, slot).replace(gammas=None, betas=None))
    legacy = forward.evaluate(net, planes, semantics="legacy", dtype=np.float64)
    modern_stripped = forward.evaluate(stripped, planes, semantics="modern", dtype=np.float64)
    assert np.array_equal(legacy.policy_logits, modern_stripped.policy_logits)
    assert not np.allclose(forward.evaluate(net, planes, dtype=np.float64).policy_logits, legacy.policy_logits)


# -- refusals ------------------------------------------------------------------------------

def test_attention_network_is_not_evaluated(maia):
    net = maia.copy()
    net.attention_body = True
    with pytest.raises(UnsupportedError, match="attention network: not evaluated"):
        forward.evaluate(net, np.zeros((1, 112, 64), np.float32))


def test_bad_planes_name_the_source(maia):
    with pytest.raises(FormatError, match=r"^in\.npy: input planes have shape \[2, 18, 361\]"):
        forward.evaluate(maia, np.zeros((2, 18, 361), np.float32), source="in.npy")
    with pytest.raises(FormatError, match="non-finite"):
        forward.evaluate(maia, np.full((1, 112, 64), np.nan, np.float32), source="in.npy")


def test_inconsistent_network_is_refused(maia):
    net = maia.copy()
    net.residual[0].conv1 = net.residual[0].conv1.replace(means=None)
    with pytest.raises(Exception, match="residual.0.conv1"):
        forward.evaluate(net, np.zeros((1, 112, 64), np.float32))


# -- the policy map ---------------------------------------------------------------------

def test_policy_map_reaches_every_output_once():
    table = policy_map.conv_policy_map()
    assert table.shape == (80 * 64,)
    mapped = table[table >= 0]
    assert len(mapped) == 1858 and np.array_equal(np.sort(mapped), np.arange(1858))
    assert (table[73 * 64:] == -1).all()  # planes 73–79 unused


def test_policy_map_known_moves():
    index = policy_map.move_index()
    assert (index["e2e4"], index["d2d4"], index["g1f3"]) == (322, 293, 159)
    assert policy_map.moves()[:3] == ("a1b1", "a1c1", "a1d1") and policy_map.moves()[1792] == "a7a8q"
    assert policy_map.moves()[-1] == "h7h8b"
    assert index["a7a8n"] == index["a7a8"]  # a knight promotion is the plain move
    table = policy_map.conv_policy_map()
    sq = policy_map.parse_square
    # e2e4: queen plane N, distance 2 (plane 1); g1f3: knight step (−1, +2) (plane 63); a7a8q: plane N/q (69).
    assert table[1 * 64 + sq("e2")] == 322
    assert table[63 * 64 + sq("g1")] == 159
    assert table[69 * 64 + sq("a7")] == index["a7a8q"]
    assert table[0 * 64 + sq("a7")] == index["a7a8"]
    assert table[0 * 64 + sq("a8")] == -1  # off the board


# -- input planes ------------------------------------------------------------------------

def test_random_planes_chess(maia):
    x = positions.random_planes(maia, 16, seed=5)
    assert x.shape == (16, 112, 64) and x.dtype == np.float32
    assert np.array_equal(x, positions.random_planes(maia, 16, seed=5))
    assert not np.array_equal(x, positions.random_planes(maia, 16, seed=6))
    pieces = x[:, :104].reshape(16, 8, 13, 64)
    assert set(np.unique(pieces)) <= {0.0, 1.0}
    assert (pieces[:, 0, 5].sum(axis=1) == 1).all() and (pieces[:, 0, 11].sum(axis=1) == 1).all()  # kings
    assert (pieces[:, 0, :12].sum(axis=1) <= 1).all()  # one piece per square
    assert (x[:, 111] == 1).all() and (x[:, 110] == 0).all()
    for plane in range(104, 109):  # input format 1: whole-plane flags
        assert all(np.unique(x[i, plane]).size == 1 for i in range(16))
    rule50 = x[:, 109, 0]
    assert (rule50 == np.round(rule50)).all() and rule50.max() > 1  # raw plies for format 1
    hecto = maia.copy()
    hecto.format.input = 4
    assert positions.random_planes(hecto, 16, seed=5)[:, 109].max() < 1  # plies / 100


def test_random_planes_go():
    net = synth.make_network(family="go", blocks=1, filters=8, seed=0)
    x = positions.random_planes(net, 12, seed=0)
    assert x.shape == (12, 18, 361)
    assert ((x[:, 16] + x[:, 17]) == 1).all()
    assert ((x[:, :8] + x[:, 8:16]) <= 1).all()  # a point holds one stone
    assert (x[:, 0].sum(axis=1) >= x[:, 7].sum(axis=1)).all()  # stones only accumulate (no captures)
    assert x[:, :16].sum() > 0


# -- CLI -----------------------------------------------------------------------------------

def test_cli_eval_writes_outputs(run_cli, maia_ref, tmp_path):
    out = tmp_path / "out.npz"
    result = run_cli("eval", MAIA, "--planes", REFERENCE / "maia-1100.lc0.npz", "--out", out)
    assert result.exit_code == 0, result.output
    data = np.load(out)
    assert set(data.files) == {"policy_logits", "policy", "value", "wdl"}
    assert np.abs(data["policy_logits"] - maia_ref["logits"]).max() < 1e-4
    again = run_cli("eval", MAIA, "--planes", REFERENCE / "maia-1100.lc0.npz", "--out", out)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_cli_eval_table_and_json(run_cli, tmp_path, maia_ref):
    npy = tmp_path / "in.npy"
    np.save(npy, maia_ref["planes"][:2])
    table = run_cli("eval", MAIA, "--planes", npy)
    assert table.exit_code == 0 and "e2e4" in table.stdout
    js = run_cli("eval", MAIA, "--planes", npy, "--json", "--semantics", "legacy")
    data = json.loads(js.stdout)
    assert data["semantics"] == "legacy" and len(data["policy"]) == 2 and len(data["wdl"][0]) == 3


def test_cli_eval_bad_planes(run_cli, tmp_path):
    bad = tmp_path / "go.npy"
    np.save(bad, np.zeros((1, 18, 361), np.float32))
    out = tmp_path / "out.npz"
    result = run_cli("eval", MAIA, "--planes", bad, "--out", out)
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip().startswith(f"lcconvert: {bad}: input planes have shape [1, 18, 361]")
    nplanes = tmp_path / "x.npz"
    np.savez(nplanes, other=np.zeros(3))
    result = run_cli("eval", MAIA, "--planes", nplanes)
    assert result.exit_code == 2 and "no 'planes' array" in result.stderr
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    result = run_cli("eval", MAIA, "--planes", junk)
    assert result.exit_code == 2 and f"{junk}: not a NumPy" in result.stderr
