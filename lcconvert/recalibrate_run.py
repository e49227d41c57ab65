"""Recalibration over real data, in one process or on a Dask cluster: files → partitions → stages → network.

Why Dask: the work is a map over data partitions and a merge of small per-channel
accumulators, repeated layer by layer, and real training sets hold millions of
positions — more than one machine should have to evaluate alone. Each partition
(up to `batch` positions) lives on a worker as the state of its forward pass:
stage k turns it into stage k+1's state plus the moments of one layer; only those
moments (a few KB) travel to the driver, which merges them in partition order
(so the result does not depend on which worker finished first), and only the
merged statistics travel back. The whole forward pass is therefore computed once
per position, not once per layer.

Executors: `InProcess` (--workers 1: no cluster at all), or `DaskExecutor` on an
embedded `LocalCluster` (one single-threaded worker process per core, the
default) or an existing scheduler (`--scheduler tcp://host:port`; its workers must
have lcconvert installed and see the data paths).

Sampling (`--positions N`, `--seed S`): N positions drawn uniformly without
replacement from all records of all files (seeded), kept in file and record
order; without N every record is used and the seed does not matter.
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import time

import numpy as np

from lcconvert import io, recalibrate
from lcconvert.errors import (
    DependencyError,
    FormatError,
    LcconvertError,
    UnsupportedError,
)
from lcconvert.network import Network

DEFAULT_BATCH = 256


# -- data files -----------------------------------------------------------------------

def expand(paths) -> list[str]:
    """Each PATH is a directory (its files, sorted), a glob (sorted matches) or a file; duplicates dropped."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p) if os.path.isfile(os.path.join(p, f)))
            if not found:
                raise FormatError(p, "no training data files (empty directory)")
        elif any(ch in p for ch in "*?["):
            found = sorted(f for f in glob.glob(p) if os.path.isfile(f))
            if not found:
                raise FormatError(p, "no training data files match this pattern")
        else:
            found = [p]
        out += [f for f in found if f not in out]
    return out


def net_input_format(net: Network) -> int:
    return net.format.input or 1  # an absent input format is lc0's classical 112-plane format


def _read(path: str, input_format: int):
    chunk = io.read_training_chunk(path)
    bad = np.flatnonzero(chunk.input_format != input_format)
    if bad.size:
        i = int(bad[0])
        raise FormatError(path, f"record {i}: input format {int(chunk.input_format[i])}, "
                                f"but the network expects input format {input_format}")
    return chunk


def count_records(path: str, input_format: int) -> int:
    """Task: validate a whole file and count its records."""
    return len(_read(path, input_format))


def load_planes(spec, input_format: int) -> dict:
    """Task: a partition's input planes, the first stage's state. spec = [(path, rows), ...]."""
    return {"planes": np.concatenate([_read(path, input_format).planes(rows) for path, rows in spec])}


def fit_pair(models, spec, input_format: int):
    """Task: loss sums of the networks before and after on one held-out partition."""
    parts = [_read(path, input_format).take(rows) for path, rows in spec]
    planes = np.concatenate([c.planes() for c in parts])
    probs = np.concatenate([c.probabilities for c in parts])
    q = np.concatenate([c.result_q for c in parts])
    d = np.concatenate([c.result_d for c in parts])
    return tuple(recalibrate.fit_sums(m, planes, probs, q, d) for m in models)


def partitions(files: list[str], counts: list[int], batch: int, positions: int | None = None,
               seed: int = 0) -> list[list[tuple[str, np.ndarray]]]:
    """Split the selected records (all, or `positions` sampled with `seed`) into runs of `batch`."""
    total = int(sum(counts))
    if positions is not None and positions < total:
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=positions, replace=False))
    else:
        chosen = np.arange(total)
    starts = np.concatenate([[0], np.cumsum(counts)])
    file_of = np.searchsorted(starts, chosen, side="right") - 1
    out = []
    for lo in range(0, chosen.size, batch):
        sel, owner = chosen[lo:lo + batch], file_of[lo:lo + batch]
        spec = []
        for f in np.unique(owner):
            rows = sel[owner == f] - starts[f]
            spec.append((files[int(f)], rows.astype(np.int64)))
        out.append(spec)
    return out


# -- executors ---------------------------------------------------------------------------

class InProcess:
    """Runs every task here, now; handles are the results themselves."""

    workers = 1

    def share(self, obj):
        return obj

    def submit(self, fn, *args):
        return fn(*args)

    def result(self, handle):
        return handle

    def item(self, handle, i):
        return handle[i]


class DaskExecutor:
    """Tasks on a dask.distributed cluster; handles are futures, results gathered in submission order."""

    def __init__(self, client):
        self.client = client
        self.workers = len(client.scheduler_info().get("workers", {})) or None

    def share(self, obj):
        return self.client.scatter(obj, broadcast=True)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def result(self, handle):
        return handle.result()

    def item(self, handle, i):
        import operator

        return self.client.submit(operator.getitem, handle, i, pure=False)


@contextlib.contextmanager
def executor(workers: int | None = None, scheduler: str | None = None):
    """InProcess for workers == 1 without a scheduler; else a Dask client (embedded cluster by default)."""
    if scheduler is None and workers == 1:
        yield InProcess()
        return
    # Worker processes inherit this. The cluster's own log lines (connections closing at shutdown, a
    # transfer retried under load) are not the user's business on stderr: an error inside a task still
    # reaches the driver as its exception. DASK_LOGGING__DISTRIBUTED=info shows them.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError:
        raise DependencyError(None, "recalibrate on a cluster needs dask.distributed: "
                                    "pip install 'lcconvert[distributed]' (or use --workers 1)") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError) as e:
            raise LcconvertError(scheduler, f"cannot connect to the Dask scheduler ({e})") from None
        with client:
            yield DaskExecutor(client)
        return
    import dask

    n = workers or os.cpu_count() or 1
    # No work stealing: a stage's task belongs where its partition's state already is; moving it
    # would ship the state (megabytes of activations) to save a few milliseconds of queueing.
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        try:
            yield DaskExecutor(client)
        finally:
            # Workers first, gracefully: closing the scheduler under running workers makes them
            # log failed heartbeats to stderr.
            with contextlib.suppress(Exception):
                client.retire_workers(close_workers=True)


class _Progress:
    """A tqdm bar on stderr when stderr is a terminal; nothing otherwise (logs, pipes, tests)."""

    def __init__(self, total: int, unit: str, show: bool | None = None):
        self.bar = None
        if show is None:
            show = sys.stderr.isatty()
        if show:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def step(self, n: int = 1, what: str | None = None):
        if self.bar is not None:
            if what:
                self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- the run ----------------------------------------------------------------------------------

def measure(net: Network, data, *, positions: int | None = None, batch: int = DEFAULT_BATCH, seed: int = 0,
            ex=None, show_progress: bool | None = None):
    """The recalibrated statistics of `net` on the files `data`: ({layer: Moments}, files, positions)."""
    why = recalibrate.refusal(net)
    if why:
        raise UnsupportedError(net.source.path, why)
    fmt = net_input_format(net)
    files = expand(data)
    ex = ex or InProcess()
    bar = _Progress(len(files), "chunk", show_progress)
    handles = [ex.submit(count_records, f, fmt) for f in files]
    counts = []
    for h in handles:
        counts.append(ex.result(h))
        bar.step()
    bar.close()
    parts = partitions(files, counts, batch, positions, seed)
    used = sum(len(rows) for spec in parts for _, rows in spec)

    plan = recalibrate.Plan(net)
    stages = plan.stages()
    shared = ex.share(plan)
    states = [ex.submit(load_planes, spec, fmt) for spec in parts]
    merged: dict[str, recalibrate.Moments] = {}
    bar = _Progress(len(stages), "layer", show_progress)
    for stage in stages:
        stats = recalibrate.stats_of(merged)
        outs = [ex.submit(_advance, shared, s, stage, stats) for s in states]
        states = [ex.item(o, 0) for o in outs]
        moments = [ex.result(ex.item(o, 1)) for o in outs]
        merged.update(recalibrate.merge_all(moments))  # in partition order: reproducible
        bar.step(what=stage)
    bar.close()
    del states
    return merged, files, used


def _advance(plan, state, stage, stats):
    return plan.advance(state, stage, stats)


def evaluate_fit(before: Network, after: Network, data, *, batch: int = DEFAULT_BATCH, ex=None,
                 show_progress: bool | None = None):
    """(Fit before, Fit after) on every record of the files `data`."""
    from lcconvert import forward

    fmt = net_input_format(before)
    files = expand(data)
    ex = ex or InProcess()
    counts = [ex.result(h) for h in [ex.submit(count_records, f, fmt) for f in files]]
    parts = partitions(files, counts, batch)
    models = (forward.Model(before), forward.Model(after))
    for m in models:
        m.net = None  # evaluation needs only the prepared matrices; the network may hold a protobuf message
    models = ex.share(models)
    bar = _Progress(len(parts), "eval batch", show_progress)
    sums_b = sums_a = recalibrate.FitSums()
    for h in [ex.submit(fit_pair, models, spec, fmt) for spec in parts]:
        b, a = ex.result(h)
        sums_b, sums_a = sums_b.merge(b), sums_a.merge(a)
        bar.step()
    bar.close()
    return sums_b.fit(), sums_a.fit(), files


def recalibrated(net: Network, encoding=None, *, data, eval_data=(), positions: int | None = None,
                 batch: int = DEFAULT_BATCH, workers: int | None = None, scheduler: str | None = None,
                 seed: int = 0, show_progress: bool | None = None):
    """The pipeline transform: `net` with recalibrated means/variances, and its `recalibrate.Report`."""
    why = recalibrate.refusal(net)
    if why:
        raise UnsupportedError(net.source.path, why)
    expand(data)  # refuse missing data before a cluster starts
    if eval_data:
        expand(eval_data)
    start = time.perf_counter()
    try:
        return _recalibrated(net, encoding, data, eval_data, positions, batch, workers, scheduler, seed,
                             show_progress, start)
    except LcconvertError:
        raise
    except Exception as e:  # the cluster's own failures: one line, like every other error
        if type(e).__module__.startswith("distributed"):
            raise LcconvertError(scheduler or "dask", f"the cluster failed: {type(e).__name__}: {e} "
                                                      "(a worker out of memory? try a smaller --batch)") from None
        raise


def _recalibrated(net, encoding, data, eval_data, positions, batch, workers, scheduler, seed, show_progress, start):
    with executor(workers, scheduler) as ex:
        moments, files, used = measure(net, data, positions=positions, batch=batch, seed=seed, ex=ex,
                                       show_progress=show_progress)
        stats = recalibrate.stats_of(moments)
        new = recalibrate.apply(net, stats, encoding)
        seconds = time.perf_counter() - start
        report = recalibrate.Report(used, len(files), recalibrate.layer_changes(net, stats), workers=ex.workers,
                                    seconds=seconds)
        if eval_data:
            report.fit_before, report.fit_after, eval_files = evaluate_fit(net, new, eval_data, batch=batch, ex=ex,
                                                                           show_progress=show_progress)
            overlap = {os.path.realpath(f) for f in eval_files} & {os.path.realpath(f) for f in files}
            if overlap:
                report.notes.append(f"{len(overlap)} --eval-data file(s) are also in --data: "
                                    "the fit is not measured on held-out positions")
    return new, report
