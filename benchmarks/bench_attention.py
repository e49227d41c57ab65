"""Attention-body forward throughput against this machine's own float32 matrix-multiply rate.

Builds an attention-body network in memory (network 7, PE_DENSE embedding, gating, smolgen in
every encoder layer, attention policy, WDL value, moves left — the layout of lc0's BT-series nets,
random weights, every layer at its schema path) with E embedding channels, L encoder layers,
H heads and FFN width F; evaluates a batch of realistic positions; and reports positions/s,
achieved GFLOP/s (2·M·K·N per matrix product: embedding, Q/K/V, attention, output, FFN, smolgen,
heads; elementwise work not counted) and the ratio to numpy's float32 matmul on the shape of the
encoder's dense layers, [batch·64, E] @ [E, E], timed in the same rounds.

    python benchmarks/bench_attention.py [--embedding 256] [--layers 6] [--heads 8] [--ffn 512]
                                         [--batch 32] [--repeat 5]

BT4 is --embedding 1024 --layers 15 --heads 32 --ffn 1536 (slow on a small machine).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from lcconvert.synth_attention import (
    MOVES_CH,
    MOVES_HIDDEN,
    PE_CHANNELS,
    SMOLGEN_CH,
    SMOLGEN_HIDDEN,
    SMOLGEN_PER_HEAD,
    VALUE_CH,
    VALUE_HIDDEN,
)

def network_flops(e: int, layers: int, heads: int, ffn: int, batch: int) -> float:
    """Multiply-add FLOPs of one batch (matrix products only)."""
    tok = batch * 64
    flops = 2 * batch * (64 * 12) * (64 * PE_CHANNELS) + 2 * tok * (112 + PE_CHANNELS) * e + 2 * tok * 2 * e * ffn
    per_layer = 2 * tok * 4 * e * e  # Q, K, V, output
    per_layer += 2 * 2 * batch * 64 * 64 * e  # Q·Kᵀ and softmax·V over all heads
    per_layer += 2 * tok * 2 * e * ffn
    per_layer += 2 * tok * e * SMOLGEN_CH + 2 * batch * (64 * SMOLGEN_CH * SMOLGEN_HIDDEN
                                                         + SMOLGEN_HIDDEN * heads * SMOLGEN_PER_HEAD
                                                         + heads * SMOLGEN_PER_HEAD * 4096)
    flops += layers * per_layer
    flops += 2 * tok * 3 * e * e + 2 * batch * 64 * 64 * e  # policy embedding, wq, wk; Q·Kᵀ
    flops += 2 * tok * e * VALUE_CH + 2 * batch * 64 * VALUE_CH * VALUE_HIDDEN
    flops += 2 * tok * e * MOVES_CH + 2 * batch * 64 * MOVES_CH * MOVES_HIDDEN
    return float(flops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedding", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from lcconvert import forward, positions
    from lcconvert.synth_attention import make_attention_network

    t = time.perf_counter()
    net = make_attention_network(args.embedding, args.layers, args.heads, args.ffn)
    print(f"built attention body E={args.embedding} L={args.layers} H={args.heads} FFN={args.ffn} "
          f"({net.parameters / 1e6:.1f} M parameters) in {time.perf_counter() - t:.1f} s")
    planes = positions.random_planes(net, args.batch, seed=0)
    flops = network_flops(args.embedding, args.layers, args.heads, args.ffn, args.batch)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.batch * 64, args.embedding), dtype=np.float32)
    b = rng.standard_normal((args.embedding, args.embedding), dtype=np.float32)
    t = time.perf_counter()
    model = forward.Model(net, "modern", np.float32)
    prep = time.perf_counter() - t

    # The machine is shared: matmul and forward interleaved in the same rounds, best round of each.
    best = {"matmul": float("inf"), "forward": float("inf")}
    out = model(planes)
    assert np.isfinite(out.policy_logits).all() and np.isfinite(out.wdl).all()
    a @ b
    for _ in range(args.repeat):
        for _ in range(3):
            t = time.perf_counter()
            a @ b
            best["matmul"] = min(best["matmul"], time.perf_counter() - t)
        t = time.perf_counter()
        model(planes)
        best["forward"] = min(best["forward"], time.perf_counter() - t)
    mm_gflops = 2 * a.shape[0] * a.shape[1] * b.shape[1] / best["matmul"] / 1e9
    gflops = flops / best["forward"] / 1e9
    print(f"network: {flops / args.batch / 1e9:.3f} GFLOP per position, batch {args.batch}")
    print(f"numpy float32 matmul [{a.shape[0]}x{a.shape[1]}]@[{b.shape[0]}x{b.shape[1]}]: {mm_gflops:.1f} GFLOP/s")
    print(f"forward float32: prepare {prep * 1e3:.0f} ms, batch {best['forward'] * 1e3:.0f} ms, "
          f"{args.batch / best['forward']:.1f} positions/s, {gflops:.1f} GFLOP/s = "
          f"{100 * gflops / mm_gflops:.0f}% of matmul")


if __name__ == "__main__":
    main()
