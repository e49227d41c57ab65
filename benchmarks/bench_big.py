"""Benchmark: whole commands on a big realistic network, side by side with a net.py-style round trip.

    python benchmarks/bench_big.py [--blocks 20] [--filters 256] [--rounds 3] [--keep DIR]

The network is `realistic.make_network` (a real network resampled per output
channel, γ/β learned, LINEAR16, gzip -9); its compression ratio is printed. Each
round runs, as separate processes and in this order, the net.py-style round trip
(netpy_style.py) and then each lcconvert command:

    convert IN OUT                (payload unchanged)
    fold-bias IN OUT              (default: verifies OUT against IN)
    fold-bias --no-verify IN OUT
    verify IN

Wall time and peak RSS (the child's own ru_maxrss from wait4) are measured per
process. Ratios are per round against that round's net.py-style run (the
machine is shared and noisy: alternating keeps both sides under the same load);
the table shows each command's best time, the median of its per-round ratios, and
its largest peak RSS over the float32 size of the network. Also printed: output
sizes against gzip -9 of the same payload. 40×512 takes minutes per round on a
2-core machine: it is not part of CI.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import realistic  # noqa: E402

# Goals of issue 14, as ratios to the net.py-style round trip (time) and to the float32 size (memory).
GOALS = {"convert": 1 / 5, "fold-bias": 1.0, "verify": 1.0}
MEMORY_GOAL = 2.0


def run(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes, exit status) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0,):
        print(f"  {' '.join(cmd)} exited {proc.returncode}: {err.strip().splitlines()[-1:]}", file=sys.stderr)
    return wall, usage.ru_maxrss * 1024, proc.returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--filters", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keep", metavar="DIR", help="keep (and reuse) the generated network in DIR")
    p.add_argument("--only", nargs="*", help="command labels to run (default: all)")
    args = p.parse_args(argv)

    work = args.keep or tempfile.mkdtemp(prefix="lcconvert-bench-big-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, f"net-{args.blocks}x{args.filters}.pb.gz")
    facts_path = src + ".facts"
    if os.path.exists(src) and os.path.exists(facts_path):
        import json

        facts = json.load(open(facts_path))
    else:
        import json

        t0 = time.perf_counter()
        facts = realistic.write_network(args.blocks, args.filters, src)
        json.dump(facts, open(facts_path, "w"))
        print(f"generated in {time.perf_counter() - t0:.0f} s")
    print(realistic.describe(facts))
    f32 = facts["float32_bytes"]

    exe = [sys.executable, "-m", "lcconvert.cli"]
    # Outputs named by size: a kept directory serves several sizes without mixing their files.
    out = lambda name: os.path.join(work, f"{args.blocks}x{args.filters}-{name}")  # noqa: E731
    commands = {
        "net.py-style round trip": [sys.executable, os.path.join(HERE, "netpy_style.py"), src, out("netpy.pb.gz")],
        "convert": exe + ["convert", src, out("convert.pb.gz"), "--force"],
        "fold-bias": exe + ["fold-bias", src, out("fold.pb.gz"), "--force"],
        "fold-bias --no-verify": exe + ["fold-bias", "--no-verify", src, out("fold-nv.pb.gz"), "--force"],
        "verify": exe + ["verify", src],
    }
    if args.only:
        commands = {k: v for k, v in commands.items() if k == "net.py-style round trip" or k in args.only}
    results = {k: [] for k in commands}
    for r in range(args.rounds):
        for label, cmd in commands.items():
            results[label].append(run(cmd))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f} s" for k, v in results.items()), flush=True)

    base = results["net.py-style round trip"]
    ok = True
    print(f"\n| command ({args.blocks}×{args.filters}) | wall (best) | vs net.py-style (median of rounds) "
          f"| peak RSS / float32 size |")
    print("|---|---|---|---|")
    for label, runs in results.items():
        ratios = [w / b[0] for (w, _, _), b in zip(runs, base)]
        ratio = statistics.median(ratios)
        mem = max(m for _, m, _ in runs) / f32
        print(f"| {'`' + label + '`' if label != 'net.py-style round trip' else label} | "
              f"{min(w for w, _, _ in runs):.1f} s | {ratio:.2f}× | {mem:.1f}× |")
        goal = GOALS.get(label.split(" --")[0]) if label != "fold-bias --no-verify" else None
        if goal is not None and ratio > goal or mem > MEMORY_GOAL or any(rc for _, _, rc in runs):
            ok = False
    import zlib

    for name in ("netpy.pb.gz", "convert.pb.gz", "fold.pb.gz", "fold-nv.pb.gz"):
        if os.path.exists(out(name)):
            with open(out(name), "rb") as f:
                packed = f.read()
            payload = zlib.decompress(packed, wbits=31)
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            level9 = len(c.compress(payload)) + len(c.flush())
            del payload
            print(f"{name}: {len(packed) / 1e6:.2f} MB = {len(packed) / level9:.4f}× zlib -9 of its own payload")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print("goals met" if ok else "goals NOT met (see the table)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
