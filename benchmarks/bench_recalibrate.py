"""Recalibration throughput against the forward pass's own rate, and its scaling from 1 to 2 Dask workers.

On the generated 20-block × 256-filter SE network and real positions from lc0
training chunks (../shared/data/training by default), all timed in the same run:

- forward:  `forward.Model` on the decoded planes, in batches of --batch, float64
            (the precision recalibration computes in: a float32 forward gives
            batch-dependent rows) and, for reference, float32;
- in-process: `recalibrate_run.measure` without a cluster (--workers 1): reading and
            decoding the chunks, every layer's stage, the merges;
- Dask 1 and 2 workers: the same on an embedded LocalCluster of 1 and 2 single-threaded
            worker processes (cluster start-up not included; the data are read inside);
- the machine's own scaling: float64 matrix products of one 3×3 convolution's shape in 1 and
            2 single-threaded processes (what 2 workers could at best gain here).

Target: in-process positions/s ≥ 80 % of the float64 forward pass's.

    python benchmarks/bench_recalibrate.py [--positions 128] [--batch 32] [--repeat 2] [--data DIR]
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_setup import network_parser

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "training")


def main() -> None:
    ap = network_parser(__doc__.splitlines()[0], repeat=2)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data", default=DEFAULT_DATA)
    args = ap.parse_args()

    from lcconvert import forward, io, recalibrate_run, synth

    t = time.perf_counter()
    net = synth.make_network(blocks=args.blocks, filters=args.filters, se_ratio=args.se_ratio, seed=0)
    print(f"network: {args.blocks}x{args.filters} SE/{args.se_ratio}, {net.parameters / 1e6:.1f}M parameters "
          f"(built in {time.perf_counter() - t:.1f} s)")
    files = sorted(glob.glob(os.path.join(args.data, "*.gz")))
    # The first files holding --positions records: recalibration reads exactly these.
    chosen, n = [], 0
    for f in files:
        chosen.append(f)
        n += len(io.read_training_chunk(f))
        if n >= args.positions:
            break
    planes = np.concatenate([io.read_training_chunk(f).planes() for f in chosen])[:args.positions]
    n = planes.shape[0]
    print(f"data: {n} real positions from {len(chosen)} chunk files, batch {args.batch}, best of {args.repeat}")

    models = {"forward float64": forward.Model(net, "modern", np.float64),
              "forward float32": forward.Model(net, "modern", np.float32)}

    def forward_pass(model):
        for i in range(0, n, args.batch):
            model(planes[i:i + args.batch])

    def recalibration(ex):
        _, _, used = recalibrate_run.measure(net, chosen, positions=n, batch=args.batch, ex=ex, show_progress=False)
        assert used == n

    with contextlib.ExitStack() as stack:
        runs = {name: (forward_pass, model) for name, model in models.items()}
        runs["recalibrate in-process"] = (recalibration, recalibrate_run.InProcess())
        for workers in (1, 2):  # (the CLI's --workers 1 runs without a cluster; here a real 1-worker cluster)
            runs[f"recalibrate dask {workers} worker(s)"] = (recalibration, stack.enter_context(_cluster(workers)))
        # The machine is shared: every round times each run once, and each run keeps its best round.
        best = {name: float("inf") for name in runs}
        for _ in range(args.repeat):
            for name, (fn, arg) in runs.items():
                t = time.perf_counter()
                fn(arg)
                best[name] = min(best[name], time.perf_counter() - t)
    rates = {name: n / seconds for name, seconds in best.items()}

    base = rates["forward float64"]
    print(f"{'':28}{'positions/s':>12}{'vs forward f64':>16}")
    for name, rate in rates.items():
        print(f"{name:<28}{rate:>12.2f}{rate / base:>15.0%}")
    ratio = rates["recalibrate in-process"] / base
    scale = rates["recalibrate dask 2 worker(s)"] / rates["recalibrate dask 1 worker(s)"]
    machine = gemm_rate(2, args) / gemm_rate(1, args)
    print(f"in-process recalibration / float64 forward: {ratio:.0%} (target >= 80%)")
    print(f"Dask 2 workers / 1 worker: {scale:.2f}x; the machine's float64 matmul, 2 processes / 1: {machine:.2f}x")


def _gemms(filters: int, batch: int, count: int) -> float:
    a = np.random.default_rng(0).random((batch * 64, 9 * filters))
    b = np.random.default_rng(1).random((9 * filters, filters))
    t = time.perf_counter()
    for _ in range(count):
        a @ b
    return time.perf_counter() - t


def gemm_rate(processes: int, args, count: int = 15) -> float:
    """Products per second of `processes` single-threaded processes running at once (best of --repeat)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"  # read by each spawned process
    best = 0.0
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_gemms, [args.filters] * processes, [args.batch] * processes, [1] * processes))  # start-up
        for _ in range(args.repeat):
            t = time.perf_counter()
            list(pool.map(_gemms, [args.filters] * processes, [args.batch] * processes, [count] * processes))
            best = max(best, processes * count / (time.perf_counter() - t))
    return best


@contextlib.contextmanager
def _cluster(workers: int):
    """An embedded cluster exactly as `recalibrate --workers N` starts one (N ≥ 2), for N = 1 too."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    from lcconvert import recalibrate_run

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield recalibrate_run.DaskExecutor(client)
        client.retire_workers(close_workers=True)


if __name__ == "__main__":
    main()
