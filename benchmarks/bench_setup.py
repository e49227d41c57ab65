"""What the benchmarks share: the network-size options and the generated test network.

Every benchmark measures against a baseline in the same run on the same
generated 20-block × 256-filter SE network (lcconvert.synth), so its size
options and its construction live here once.
"""
from __future__ import annotations

import argparse
import os
import time


def network_parser(description: str, repeat: int = 3) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--filters", type=int, default=256)
    parser.add_argument("--se-ratio", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=repeat, help="timed runs per measurement; the best is kept")
    return parser


def write_network(args, path: str, seed: int = 0):
    """Generate the benchmark network (LINEAR16, learned γ/β), write it as .pb.gz; returns (net, seconds)."""
    from lcconvert.synth import make_network, write_pb

    start = time.perf_counter()
    net = make_network(blocks=args.blocks, filters=args.filters, se_ratio=args.se_ratio, seed=seed)
    write_pb(net, path)
    return net, time.perf_counter() - start


def describe(args, net, path: str, seconds: float) -> str:
    return (f"network: {args.blocks}x{args.filters} SE/{args.se_ratio}, {net.parameters / 1e6:.1f}M parameters, "
            f"{os.path.getsize(path) / 1e6:.1f} MB .pb.gz (generated and written in {seconds:.1f} s)")
