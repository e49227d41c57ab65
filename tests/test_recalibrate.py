"""`recalibrate`: exact statistics (naive two-pass reference), invariances, a real Dask cluster, the CLI."""
from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
from conftest import DATA, MAIA

from lcconvert import io, recalibrate, recalibrate_run, synth
from lcconvert.recalibrate import Moments

TRAINING = DATA / "training"
FILES = [str(p) for p in sorted(TRAINING.glob("game_*.gz"))]


# -- the accumulator ------------------------------------------------------------------

def test_chan_merge_equals_two_pass_on_badly_conditioned_data():
    """|mean| = 1000·std: E[x²] − E[x]² in float32 is off by ~50 %; the merged moments agree with
    two passes to ~1e-14. (Any float64 method loses ~|mean|/std × 1e-16, so the test keeps the
    ratio at 1e3, well beyond the |mean|/std of a network's pre-BN activations.)"""
    rng = np.random.default_rng(1)
    x = 1e3 + rng.standard_normal((5000, 7)) * np.arange(1, 8)
    want_mean, want_var = x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).mean(axis=0)
    for cuts in ([2500], [1, 2, 3, 4999], list(range(100, 5000, 333))):
        parts = np.split(x, cuts)
        m = Moments.of(parts[0])
        for p in parts[1:]:
            m = m.merge(Moments.of(p))
        assert m.count == 5000
        np.testing.assert_allclose(m.mean, want_mean, rtol=1e-14)
        # Measured: 1.4e-14 relative.
        np.testing.assert_allclose(m.variance, want_var, rtol=1e-12)
    naive32 = (x.astype(np.float32) ** 2).mean(axis=0) - x.astype(np.float32).mean(axis=0) ** 2
    assert (np.abs(naive32 - want_var) / want_var).max() > 0.1  # the formula the accumulator must not use


# -- an independent, naive reference: direct convolutions, whole data set, two passes -------------

def _act(x, mish):
    return x * np.tanh(np.logaddexp(0, x)) if mish else np.maximum(x, 0)


def _conv(x, block, cin, k):
    """[N, cin, 8, 8] → [N, cout, 8, 8] + bias, by summing shifted products (no im2col, no BN)."""
    w = block.weights.values.astype(np.float64)
    cout = w.size // (cin * k * k)
    w = w.reshape(cout, cin, k, k)
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], cout, 8, 8))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("nchw,oc->nohw", xp[:, :, dy:dy + 8, dx:dx + 8], w[:, :, dy, dx])
    if block.biases is not None:
        out += block.biases.values.astype(np.float64)[None, :, None, None]
    return out


def _bn(z, block, stat, eps):
    mean, var = stat
    g = block.gammas.values.astype(np.float64) if block.gammas is not None else 1.0
    b = block.betas.values.astype(np.float64) if block.betas is not None else 0.0
    sh = (None, slice(None), None, None)
    return (z - mean[sh]) / np.sqrt(var[sh] + eps) * (np.asarray(g)[sh] if np.ndim(g) else g) + \
        (np.asarray(b)[sh] if np.ndim(b) else b)


def naive_stats(net, planes):
    """Each layer in turn: the whole forward pass again with every earlier layer's new statistics,
    then mean and mean squared deviation of its pre-BN activation over all positions."""
    mish, eps, c = net.format.activation == 1, net.epsilon, net.filters
    stats = {}

    def measure(name, z):
        zc = z.transpose(1, 0, 2, 3).reshape(z.shape[1], -1)
        mean = zc.mean(axis=1)
        stats[name] = (mean, ((zc - mean[:, None]) ** 2).mean(axis=1))

    def tower(until):
        """Pre-BN activation of layer `until`, or the tower's output for until=None."""
        z = _conv(planes.reshape(-1, 112, 8, 8).astype(np.float64), net.input, 112, 3)
        if until == "input":
            return z
        x = _act(_bn(z, net.input, stats["input"], eps), mish)
        for i, r in enumerate(net.residual):
            z1 = _conv(x, r.conv1, c, 3)
            if until == f"residual.{i}.conv1":
                return z1
            z2 = _conv(_act(_bn(z1, r.conv1, stats[f"residual.{i}.conv1"], eps), mish), r.conv2, c, 3)
            if until == f"residual.{i}.conv2":
                return z2
            y = _bn(z2, r.conv2, stats[f"residual.{i}.conv2"], eps)
            if r.se is not None:
                s = r.se.channels
                pooled = y.mean(axis=(2, 3))
                w1 = r.se.w1.values.astype(np.float64).reshape(s, c)
                w2 = r.se.w2.values.astype(np.float64).reshape(2 * c, s)
                h = _act(pooled @ w1.T + r.se.b1.values, mish) @ w2.T + r.se.b2.values
                y = y / (1 + np.exp(-h[:, :c, None, None])) + h[:, c:, None, None]
            x = _act(y + x, mish)
        return x

    measure("input", tower("input"))
    for i in range(net.blocks):
        measure(f"residual.{i}.conv1", tower(f"residual.{i}.conv1"))
        measure(f"residual.{i}.conv2", tower(f"residual.{i}.conv2"))
    x = tower(None)
    for slot, k in (("policy1", 3), ("policy", 1), ("value", 1), ("moves_left", 1)):
        block = getattr(net, slot)
        if block is not None and block.has_bn and not (slot == "moves_left" and not net.has_moves_left):
            measure(slot, _conv(x, block, c, k))
    return stats


NETS = {
    "se-convpolicy-wdl-relu": dict(blocks=2, filters=16, biases=True, gammas="all"),
    "classical-movesleft-mish": dict(blocks=1, filters=8, se_ratio=None, policy="classical", value="classical",
                                     moves_left=True, activation="mish"),
}


def _planes(files, rows=None):
    out = [io.read_training_chunk(f).planes() for f in files]
    p = np.concatenate(out)
    return p if rows is None else p[rows]


@pytest.mark.parametrize("kind", list(NETS))
def test_equals_naive_two_pass_float64(kind):
    net = synth.make_network(**NETS[kind], seed=3)
    files = FILES[:2]
    moments, _, used = recalibrate_run.measure(net, files, batch=37, show_progress=False)
    want = naive_stats(net, _planes(files))
    assert used == sum(len(io.read_training_chunk(f)) for f in files)
    assert set(moments) == set(want) == {n for n, _ in net.bn_blocks()}
    for name, (mean, var) in want.items():
        got = moments[name]
        # Measured: ≤ 3e-15 relative (float64 products summed in a different order). The absolute
        # floor covers means that are zero up to rounding (a channel centred by its bias).
        np.testing.assert_allclose(got.mean, mean, rtol=1e-12, atol=1e-12 * np.abs(mean).max(), err_msg=name)
        np.testing.assert_allclose(got.variance, var, rtol=1e-12, err_msg=name)


def _close(a, b, rtol):
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(a[name].mean, b[name].mean, rtol=rtol, atol=rtol * np.abs(b[name].mean).max())
        np.testing.assert_allclose(a[name].variance, b[name].variance, rtol=rtol)


def test_independent_of_batch_size_and_chunk_order():
    net = synth.make_network(**NETS["se-convpolicy-wdl-relu"], seed=5)
    files = FILES[:4]
    base, _, n = recalibrate_run.measure(net, files, batch=64, show_progress=False)
    shuffled = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    for batch, order in ((1, files), (13, shuffled), (10_000, shuffled[::-1])):
        other, _, m = recalibrate_run.measure(net, order, batch=batch, show_progress=False)
        assert m == n
        _close(other, base, 1e-9)  # measured: ≤ 2e-14


def test_positions_sample_is_seeded():
    net = synth.make_network(blocks=1, filters=8, seed=1)
    a, _, n = recalibrate_run.measure(net, FILES[:5], positions=100, seed=7, show_progress=False)
    b, _, _ = recalibrate_run.measure(net, FILES[:5], positions=100, seed=7, batch=9, show_progress=False)
    c, _, _ = recalibrate_run.measure(net, FILES[:5], positions=100, seed=8, show_progress=False)
    assert n == 100
    _close(a, b, 1e-9)
    assert not np.allclose(a["input"].mean, c["input"].mean, rtol=1e-6)


def test_two_worker_dask_cluster_gives_the_one_process_statistics(run_cli, tmp_path):
    """A real LocalCluster with two worker processes, used through the executor and through the CLI's
    --scheduler; the partitions are spread over both workers."""
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster, get_task_stream

    net = synth.make_network(blocks=1, filters=8, seed=2)
    src = tmp_path / "net.pb.gz"
    synth.write_pb(net, src)
    net = io.load(str(src))
    files = FILES[:3]
    one, _, n = recalibrate_run.measure(net, files, batch=50, show_progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        ex = recalibrate_run.DaskExecutor(client)
        assert ex.workers == 2
        with get_task_stream(client) as stream:
            two, _, m = recalibrate_run.measure(net, files, batch=50, ex=ex, show_progress=False)
        busy = {t["worker"] for t in stream.data if "_advance" in str(t["key"])}
        out = tmp_path / "out.pb.gz"
        r = run_cli("recalibrate", src, out, *[a for f in files for a in ("--data", f)], "--batch", "50",
                    "--eval-data", FILES[-1], "--scheduler", cluster.scheduler_address, "--encoding", "float32",
                    "--json")
        assert r.exit_code == 0, r.output
    assert m == n and len(busy) == 2
    _close(two, one, 1e-9)  # measured: identical to the last bit
    rep = json.loads(r.stdout)["recalibration"]
    assert rep["workers"] == 2 and rep["fit_after"]["positions"] == len(io.read_training_chunk(FILES[-1]))
    for name, block in io.load(str(out)).bn_blocks():
        np.testing.assert_array_equal(block.means.values, one[name].mean.astype(np.float32), err_msg=name)
        np.testing.assert_array_equal(block.variances.values, one[name].variance.astype(np.float32), err_msg=name)


# -- the command ---------------------------------------------------------------------------------

def test_cli_on_maia_writes_recalibrated_statistics_and_keeps_the_rest(run_cli, tmp_path):
    out = tmp_path / "maia-rc.pb.gz"
    data = FILES[:3]
    r = run_cli("recalibrate", MAIA, out, *[a for f in data for a in ("--data", f)],
                "--eval-data", str(TRAINING / "game_000119.gz"), "--workers", "1", "--encoding", "float32",
                "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    rep = doc["recalibration"]
    src, new = io.load(str(MAIA)), io.load(str(out))
    assert [l["name"] for l in rep["layers"]] == [n for n, _ in src.bn_blocks()]
    assert rep["positions"] == sum(len(io.read_training_chunk(f)) for f in data)
    fb, fa = rep["fit_before"], rep["fit_after"]
    assert fb["positions"] == len(io.read_training_chunk(str(TRAINING / "game_000119.gz")))
    for key in ("policy_ce", "value_mse", "wdl_ce"):
        assert np.isfinite(fb[key]) and np.isfinite(fa[key])
    # Everything but means and variances is untouched (γ, β, biases, weights, heads).
    for (name, a), (_, b) in zip(src.tensors(), new.tensors()):
        if name.endswith((".means", ".variances")):
            continue
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)
    # The written statistics are the measured ones (float32), and measuring again is a fixed point.
    moments, _, _ = recalibrate_run.measure(src, data, show_progress=False)
    for name, block in new.bn_blocks():
        np.testing.assert_allclose(block.means.values, moments[name].mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(block.variances.values, moments[name].variance, rtol=1e-6)
    again = recalibrate.layer_changes(new, recalibrate.stats_of(recalibrate_run.measure(new, data,
                                                                                         show_progress=False)[0]))
    # float32 storage of the statistics is the only difference left.
    assert max(l.shift_max for l in again) < 1e-5
    assert all(abs(l.ratio_min - 1) < 1e-5 and abs(l.ratio_max - 1) < 1e-5 for l in again)


def _corrupt(tmp_path, name, data: bytes):
    d = tmp_path / name
    d.mkdir()
    shutil.copy(TRAINING / "game_000000.gz", d / "game_a.gz")
    (d / "game_b.gz").write_bytes(gzip.compress(data))
    return d


def test_bad_data_exits_2_naming_file_and_record(run_cli, tmp_path):
    raw = gzip.decompress((TRAINING / "game_000001.gz").read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (_corrupt(tmp_path, "trunc", raw[:8356 * 3 + 17]), "game_b.gz: record 3: truncated"),
        (_corrupt(tmp_path, "version", b"\x63\x00\x00\x00" + raw[4:]), "game_b.gz: record 0: unknown training data version 99"),
        (empty, "empty: no training data files (empty directory)"),
    ]
    for path, message in cases:
        out = tmp_path / "out.pb.gz"
        r = run_cli("recalibrate", MAIA, out, "--data", path, "--workers", "1")
        assert r.exit_code == 2, r.output
        assert r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr
        assert not out.exists()


def test_wrong_input_format_and_attention_are_refused(run_cli, tmp_path):
    out = tmp_path / "o.pb.gz"
    r = run_cli("recalibrate", DATA / "reference" / "planes" / "tiny-format3.pb.gz", out,
                "--data", TRAINING / "game_000004.gz", "--workers", "1")
    assert r.exit_code == 2 and "game_000004.gz: record 0: input format 1, but the network expects input format 3" \
        in r.stderr, r.stderr
    r = run_cli("recalibrate", DATA / "attention" / "attn-body-headformat.pb.gz", out,
                "--data", TRAINING / "game_000004.gz", "--workers", "1")
    assert r.exit_code == 2 and "attention network" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()


def test_cluster_errors_reach_the_cli_as_one_line(run_cli, tmp_path):
    """A corrupt file read by a Dask worker: the same one-line error, exit 2."""
    pytest.importorskip("distributed")
    raw = gzip.decompress((TRAINING / "game_000001.gz").read_bytes())
    d = _corrupt(tmp_path, "trunc", raw[:8356 * 2 + 5])
    out = tmp_path / "out.pb.gz"
    r = run_cli("recalibrate", MAIA, out, "--data", d, "--workers", "2")
    assert r.exit_code == 2 and "game_b.gz: record 2: truncated" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not out.exists()


def test_progress_only_on_a_terminal(monkeypatch, capsys):
    """Chunks and layers are shown on stderr when it is a terminal, and nowhere otherwise."""
    pytest.importorskip("tqdm")
    net = synth.make_network(blocks=1, filters=8, seed=1)
    recalibrate_run.measure(net, FILES[:2], show_progress=None)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    recalibrate_run.measure(net, FILES[:2], show_progress=None)
    err = capsys.readouterr().err
    assert "0/2 " in err and "chunk" in err and "/4 " in err and "layer" in err  # 2 files; 4 stages


def test_overlapping_eval_data_is_said_and_cluster_failures_are_one_line(run_cli, tmp_path, monkeypatch):
    src = tmp_path / "net.pb.gz"
    synth.write_pb(synth.make_network(blocks=1, filters=8, seed=4), src)
    r = run_cli("recalibrate", src, tmp_path / "o.pb.gz", "--data", FILES[0], "--eval-data", FILES[0],
                "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["recalibration"]["notes"] == [
        "1 --eval-data file(s) are also in --data: the fit is not measured on held-out positions"]

    class KilledWorker(Exception):  # what dask raises when a worker dies (e.g. out of memory)
        pass

    KilledWorker.__module__ = "distributed.scheduler"

    def die(*args):
        raise KilledWorker("task 'x' killed 3 workers")

    monkeypatch.setattr(recalibrate_run, "_recalibrated", die)
    r = run_cli("recalibrate", src, tmp_path / "p.pb.gz", "--data", FILES[0], "--workers", "1")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "dask: the cluster failed: KilledWorker: task 'x' killed 3 workers" in r.stderr
