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

SMOLGEN_CH, SMOLGEN_HIDDEN, SMOLGEN_PER_HEAD, PE_CHANNELS = 32, 256, 256, 4
VALUE_CH, VALUE_HIDDEN, MOVES_CH, MOVES_HIDDEN = 32, 128, 8, 128


def make_attention_net(embedding: int, layers: int, heads: int, ffn: int, seed: int = 0):
    """A network-7 attention body with every tensor at its lc0 schema path (random, trained-like scales)."""
    from lcconvert.attention import AttentionWeights
    from lcconvert.codecs import Encoding
    from lcconvert.network import NetFormat, Network
    from lcconvert.tensor import Tensor

    rng = np.random.default_rng(seed)
    tensors: dict[str, Tensor] = {}
    messages: set[str] = set()

    def fc(path, out, inp, bias=True):
        w = rng.standard_normal(out * inp) / np.sqrt(inp)
        tensors[f"{path}_w" if bias is not None else path] = Tensor.from_values(w, Encoding.FLOAT32)
        if bias:
            tensors[f"{path}_b"] = Tensor.from_values(rng.standard_normal(out) * 0.1, Encoding.FLOAT32)

    def ln(gammas, betas, n):
        tensors[gammas] = Tensor.from_values(rng.uniform(0.6, 1.4, n), Encoding.FLOAT32)
        tensors[betas] = Tensor.from_values(rng.normal(0, 0.2, n), Encoding.FLOAT32)

    def layer_fc(prefix, w, b, out, inp):
        tensors[f"{prefix}.{w}"] = Tensor.from_values(rng.standard_normal(out * inp) / np.sqrt(inp), Encoding.FLOAT32)
        tensors[f"{prefix}.{b}"] = Tensor.from_values(rng.standard_normal(out) * 0.1, Encoding.FLOAT32)

    e = embedding
    fc("ip_emb_preproc", 64 * PE_CHANNELS, 64 * 12)
    fc("ip_emb", e, 112 + PE_CHANNELS)
    ln("ip_emb_ln_gammas", "ip_emb_ln_betas", e)
    tensors["ip_mult_gate"] = Tensor.from_values(rng.uniform(0.5, 1.5, e * 64), Encoding.FLOAT32)
    tensors["ip_add_gate"] = Tensor.from_values(rng.normal(0, 0.2, e * 64), Encoding.FLOAT32)
    messages.add("ip_emb_ffn")
    layer_fc("ip_emb_ffn", "dense1_w", "dense1_b", ffn, e)
    layer_fc("ip_emb_ffn", "dense2_w", "dense2_b", e, ffn)
    ln("ip_emb_ffn_ln_gammas", "ip_emb_ffn_ln_betas", e)
    for i in range(layers):
        p = f"encoder.{i}"
        messages.update({p, f"{p}.mha", f"{p}.ffn", f"{p}.mha.smolgen"})
        for x in "qkv":
            layer_fc(f"{p}.mha", f"{x}_w", f"{x}_b", e, e)
        layer_fc(f"{p}.mha", "dense_w", "dense_b", e, e)
        ln(f"{p}.ln1_gammas", f"{p}.ln1_betas", e)
        layer_fc(f"{p}.ffn", "dense1_w", "dense1_b", ffn, e)
        layer_fc(f"{p}.ffn", "dense2_w", "dense2_b", e, ffn)
        ln(f"{p}.ln2_gammas", f"{p}.ln2_betas", e)
        s = f"{p}.mha.smolgen"
        tensors[f"{s}.compress"] = Tensor.from_values(rng.standard_normal(SMOLGEN_CH * e) / np.sqrt(e),
                                                      Encoding.FLOAT32)
        layer_fc(s, "dense1_w", "dense1_b", SMOLGEN_HIDDEN, 64 * SMOLGEN_CH)
        ln(f"{s}.ln1_gammas", f"{s}.ln1_betas", SMOLGEN_HIDDEN)
        layer_fc(s, "dense2_w", "dense2_b", heads * SMOLGEN_PER_HEAD, SMOLGEN_HIDDEN)
        ln(f"{s}.ln2_gammas", f"{s}.ln2_betas", heads * SMOLGEN_PER_HEAD)
    tensors["smolgen_w"] = Tensor.from_values(rng.standard_normal(4096 * SMOLGEN_PER_HEAD) * 0.02, Encoding.FLOAT32)
    messages.update({"policy_heads", "policy_heads.vanilla", "value_heads", "value_heads.winner"})
    fc("policy_heads.ip_pol", e, e)
    fc("policy_heads.vanilla.ip2_pol", e, e)
    fc("policy_heads.vanilla.ip3_pol", e, e)
    fc("policy_heads.vanilla.ip4_pol_w", 4, e, bias=None)
    fc("value_heads.winner.ip_val", VALUE_CH, e)
    fc("value_heads.winner.ip1_val", VALUE_HIDDEN, 64 * VALUE_CH)
    fc("value_heads.winner.ip2_val", 3, VALUE_HIDDEN)
    fc("ip_mov", MOVES_CH, e)
    net = Network(format=NetFormat(input=4, output=2, network=7, policy=3, value=2, moves_left=1,
                                   default_activation=1, smolgen_activation=7, ffn_activation=0, input_embedding=2),
                  min_version=(0, 31, 0), weights_encoding=1)
    net.ip1_mov_w = Tensor.from_values(rng.standard_normal(MOVES_HIDDEN * 64 * MOVES_CH) / 45, Encoding.FLOAT32)
    net.ip1_mov_b = Tensor.from_values(rng.standard_normal(MOVES_HIDDEN) * 0.1, Encoding.FLOAT32)
    net.ip2_mov_w = Tensor.from_values(rng.standard_normal(MOVES_HIDDEN) / 11, Encoding.FLOAT32)
    net.ip2_mov_b = Tensor.from_values([20.0], Encoding.FLOAT32)
    net.attention_body = True
    net.attention = AttentionWeights(tensors=tensors, counts={"headcount": heads}, messages=frozenset(messages))
    return net


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

    t = time.perf_counter()
    net = make_attention_net(args.embedding, args.layers, args.heads, args.ffn)
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
