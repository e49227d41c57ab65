"""A synthetic attention-body network (lc0's BT-series layout) of any size, for tests and benchmarks.

Why: the real attention files in ../shared/data are tiny; speed needs BT-sized bodies, and the
writer needs networks that were never read from a file (no protobuf template to start from).
Every tensor sits at its lc0 schema path (attention.py), random with trained-like scales: weights
N(0, 1/fan_in), biases N(0, 0.1), layer-norm γ U[0.6, 1.4] and β N(0, 0.2), multiplicative gates
U[0.5, 1.5], additive gates N(0, 0.2) — the scales of the data README's nets.
"""
from __future__ import annotations

import numpy as np

from lcconvert.attention import AttentionWeights
from lcconvert.codecs import Encoding
from lcconvert.network import NetFormat, Network
from lcconvert.tensor import Tensor

SMOLGEN_CH, SMOLGEN_HIDDEN, SMOLGEN_PER_HEAD, PE_CHANNELS = 32, 256, 256, 4
VALUE_CH, VALUE_HIDDEN, MOVES_CH, MOVES_HIDDEN = 32, 128, 8, 128


def make_attention_network(embedding: int, layers: int, heads: int, ffn: int, seed: int = 0):
    """A network-7 attention body with every tensor at its lc0 schema path (random, trained-like scales)."""
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
