"""Forward-pass throughput against this machine's own float32 matrix-multiply rate.

Builds a 20-block × 256-filter SE chess network (convolution policy, WDL value,
moves left) with lcconvert.synth, evaluates a batch of 64 realistic positions, and
reports positions/s, achieved GFLOP/s (counted as 2·M·K·N per matrix product of the
convolutions and FC layers) and the ratio to numpy's float32 matmul on the shape of
one 3×3 convolution, [64·64, 9·256] @ [9·256, 256], timed in the same run.

    python benchmarks/bench_forward.py [--blocks 20] [--filters 256] [--batch 64] [--repeat 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def network_flops(net, batch: int) -> float:
    """Multiply-add FLOPs of one batch (convolutions and FC layers; elementwise work not counted)."""
    sq, c = net.squares, net.filters
    conv3 = 2 * batch * sq * 9  # per (input channel, output channel) pair of a 3×3 convolution
    flops = conv3 * net.input_planes * c  # input conv
    flops += 2 * net.blocks * conv3 * c * c  # two convs per block
    if net.se_channels:
        flops += net.blocks * 2 * batch * (c * net.se_channels + net.se_channels * 2 * c)
    if net.policy1 is not None:
        flops += conv3 * c * c + conv3 * c * 80  # policy1 3×3 C→C, policy 3×3 C→80
    else:
        p = net.policy.out_channels
        flops += 2 * batch * sq * c * p + 2 * batch * sq * p * net.policy_outputs
    for block, w1, w2 in ((net.value, net.ip1_val_w, net.ip2_val_w), (net.moves_left, net.ip1_mov_w, net.ip2_mov_w)):
        if block is not None:
            flops += 2 * batch * sq * c * block.out_channels + 2 * batch * (w1.size + w2.size)
    return float(flops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--filters", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from lcconvert import forward, positions, synth

    t = time.perf_counter()
    net = synth.make_network(family="chess", blocks=args.blocks, filters=args.filters, se_ratio=8,
                             policy="convolution", value="wdl", moves_left=True, seed=0)
    print(f"built {args.blocks}x{args.filters} SE net in {time.perf_counter() - t:.1f} s")
    planes = positions.random_planes(net, args.batch, seed=0)
    flops = network_flops(net, args.batch)

    rng = np.random.default_rng(0)
    c = args.filters
    a = rng.standard_normal((args.batch * 64, 9 * c), dtype=np.float32)
    b = rng.standard_normal((9 * c, c), dtype=np.float32)
    models = {}
    for dtype in (np.float32, np.float64):
        t = time.perf_counter()
        models[np.dtype(dtype).name] = (forward.Model(net, "modern", dtype), time.perf_counter() - t)

    # The machine is shared: time the matmul and the forward passes interleaved, in
    # the same rounds, and keep each one's best round, so both see the same load.
    best = {"matmul": float("inf"), **{name: float("inf") for name in models}}
    a @ b
    for model, _ in models.values():
        model(planes)
    for _ in range(args.repeat):
        for _ in range(3):
            t = time.perf_counter()
            a @ b
            best["matmul"] = min(best["matmul"], time.perf_counter() - t)
        for name, (model, _) in models.items():
            t = time.perf_counter()
            model(planes)
            best[name] = min(best[name], time.perf_counter() - t)
    mm_gflops = 2 * a.shape[0] * a.shape[1] * b.shape[1] / best["matmul"] / 1e9
    results = {name: (prep, best[name]) for name, (_, prep) in models.items()}

    print(f"network: {flops / args.batch / 1e9:.2f} GFLOP per position, batch {args.batch}")
    print(f"numpy float32 matmul [{a.shape[0]}x{a.shape[1]}]@[{b.shape[0]}x{b.shape[1]}]: {mm_gflops:.1f} GFLOP/s")
    for name, (prep, t_fw) in results.items():
        gflops = flops / t_fw / 1e9
        line = (f"forward {name}: prepare {prep * 1e3:.0f} ms, batch {t_fw * 1e3:.0f} ms, "
                f"{args.batch / t_fw:.1f} positions/s, {gflops:.1f} GFLOP/s")
        if name == "float32":
            line += f" = {100 * gflops / mm_gflops:.0f}% of matmul"
        print(line)


if __name__ == "__main__":
    main()
