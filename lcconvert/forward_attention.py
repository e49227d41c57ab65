"""NumPy forward pass of Lc0's attention-era networks: attention bodies and attention policy heads.

Why it exists: lc0 has run attention bodies since 2023 (network 6, 7, and 134 read as 7)
and attention policy heads on SE convolution bodies since 2022 (network 4 with
POLICY_ATTENTION); evaluating them is what lets lcconvert check what it writes for them.
Every step below is one small function naming the lc0 source it answers to (LeelaChessZero/
lc0, read at commit 909a408, April 2026):

  [BLAS]   src/neural/backends/blas/network_blas.cc   ComputeBlocking, ForwardEncoderLayer
  [LN]     src/neural/backends/blas/encoder.h          LayerNorm2DWithSkipConnection
  [FC]     src/neural/backends/blas/fully_connected_layer.cc   Forward1D: y = W·x (+ b, then the
           activation, applied only when there is a bias); W stored [outputs][inputs]
  [ACT]    src/neural/backends/shared/activation.cc   the activation functions, softmax
  [WEIGHTS] src/neural/network_legacy.cc               MultiHeadWeights: which layers each head uses
  [LOADER] src/neural/loader.cc                        FixOlderWeightsFile: the format rewrites
  [MAP]    src/neural/tables/attention_policy_map.h    kPosEncoding, kAttnPolicyMap (generated in
           `positional_table` and `policy_map.attention_policy_map`, equal to lc0's tables)

Activations are tokens [N, 64, C]: one row per square (a1 = 0 … h8 = 63, as lc0's input planes'
bit order), channels innermost — lc0's NHWC layout for attention, so every fully connected step
is one matrix product over all N·64 tokens. The batch-norm convolution body of a network-4 file
stays in `forward.py`, which hands its output to `AttentionPolicy` here.

Numerics: float32 by default (lc0's BLAS backend computes in float32); float64 on request.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lcconvert import policy_map
from lcconvert.constants import (
    ACTIVATION_FN_DEFAULT,
    ACTIVATION_FN_RELU_2,
    ACTIVATION_FN_SWISH,
    ACTIVATION_FUNCTIONS,
    ACTIVATION_MISH,
    DEFAULT_POLICY_HEAD,
    DEFAULT_VALUE_HEAD,
    FC_SLOTS,
    INPUT_EMBEDDING_PE_DENSE,
    INPUT_EMBEDDING_PE_MAP,
    MOVES_LEFT_V1,
    NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT,
    NETWORK_ATTENTIONBODY_WITH_HEADFORMAT,
    NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT,
    NETWORK_SE_WITH_HEADFORMAT,
    POLICY_ATTENTION,
    POLICY_HEADS,
    VALUE_CLASSICAL,
    VALUE_HEADS,
    VALUE_WDL,
)
from lcconvert.errors import NetworkError, UnsupportedError
from lcconvert.network import Network

SQUARES = 64
PIECE_PLANES = 12  # PE_DENSE preprocesses the 12 piece planes of the newest history position
ATTENTION_BODIES = (NETWORK_ATTENTIONBODY_WITH_HEADFORMAT, NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT)
# [BLAS] layer-norm epsilons: encoder layers 1e-3 with PE_DENSE and 1e-6 otherwise (the attention
# policy's encoders always 1e-6); the PE_DENSE embedding norms and smolgen's norms 1e-3.
ENCODER_EPS_PE_DENSE, ENCODER_EPS_OTHER, EMBEDDING_EPS, SMOLGEN_EPS = 1e-3, 1e-6, 1e-3, 1e-3
# [ACT] selu constants as lc0 writes them.
SELU_ALPHA, SELU_SCALE = 1.67326324, 1.05070098


# -- lc0's reading of the file's format ([LOADER], [BLAS] BlasNetwork constructor) -------------------

@dataclass(frozen=True)
class Lc0Format:
    """What lc0 runs after its loader's rewrites: the body, the embedding, each activation."""

    network: int
    attention_body: bool
    attention_policy: bool
    pe_dense: bool
    default_activation: str
    smolgen_activation: str
    ffn_activation: str
    rewrites: tuple[str, ...] = ()


def lc0_format(net: Network) -> Lc0Format:
    """[LOADER] FixOlderWeightsFile, then [BLAS] BlasNetwork's choice of activations.

    - an SE file (network 4) with encoder layers is an attention body made with an old schema:
      network 6, and when it has `smolgen_w`, ffn RELU_2 and smolgen SWISH whatever it says;
    - network 134 (AB_LEGACY_WITH_MULTIHEADFORMAT) is read as 7;
    - network 6 with both `policy_heads` and `value_heads` is read as 7 with PE_DENSE; network 6
      without `input_embedding` gets PE_MAP;
    - smolgen/ffn ACTIVATION_DEFAULT means the default activation; on a convolution body the
      attention policy's activations are hard-wired (SELU for its embedding and FFN, none for smolgen).
    """
    f, att = net.format, net.attention
    network = f.network_kind
    smolgen, ffn, embedding = f.smolgen_activation or 0, f.ffn_activation or 0, f.input_embedding
    rewrites: list[str] = []
    encoders = att.repeated("encoder") if att is not None else 0
    if network == NETWORK_SE_WITH_HEADFORMAT and encoders > 0:
        network = NETWORK_ATTENTIONBODY_WITH_HEADFORMAT
        rewrites.append("NETWORK_SE_WITH_HEADFORMAT with encoder layers read as NETWORK_ATTENTIONBODY_WITH_HEADFORMAT")
        if att.has("smolgen_w"):
            smolgen, ffn = ACTIVATION_FN_SWISH, ACTIVATION_FN_RELU_2
            rewrites.append("smolgen_w present: ffn_activation RELU_2, smolgen_activation SWISH")
    elif network == NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT:
        network = NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT
        rewrites.append("NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT read as NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT")
    if network == NETWORK_ATTENTIONBODY_WITH_HEADFORMAT:
        if att is not None and att.has("policy_heads") and att.has("value_heads"):
            network = NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT
            embedding = INPUT_EMBEDDING_PE_DENSE
            rewrites.append("policy_heads and value_heads present: read as NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT "
                            "with INPUT_EMBEDDING_PE_DENSE")
        if embedding is None:
            embedding = INPUT_EMBEDDING_PE_MAP
            rewrites.append("input_embedding unset: INPUT_EMBEDDING_PE_MAP")
    body = network in ATTENTION_BODIES
    default = "mish" if f.activation == ACTIVATION_MISH else "relu"
    if body:
        smolgen_name = default if smolgen == ACTIVATION_FN_DEFAULT else ACTIVATION_FUNCTIONS.get(smolgen, str(smolgen))
        ffn_name = default if ffn == ACTIVATION_FN_DEFAULT else ACTIVATION_FUNCTIONS.get(ffn, str(ffn))
    else:
        smolgen_name, ffn_name = "none", "selu"
    return Lc0Format(network=network, attention_body=body, attention_policy=f.policy_kind == POLICY_ATTENTION,
                     pe_dense=body and embedding == INPUT_EMBEDDING_PE_DENSE, default_activation=default,
                     smolgen_activation=smolgen_name, ffn_activation=ffn_name, rewrites=tuple(rewrites))


# -- activations and the elementary steps ([ACT], [FC], [LN]) ---------------------------------------

def mish(x: np.ndarray) -> np.ndarray:
    """x·tanh(softplus(x)) in lc0's form x·n/(n + 2), n = e²ˣ + 2eˣ (one exp instead of exp, log and
    tanh); above x = 20, n/(n + 2) is 1 to within float64 rounding and the exp would overflow."""
    e = np.exp(np.minimum(x, 20.0))
    n = e * (e + 2.0)
    return np.where(x > 20.0, x, x * n / (n + 2.0))


def selu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, SELU_SCALE * x, (SELU_SCALE * SELU_ALPHA) * np.expm1(np.minimum(x, 0)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # 1/(1 + e^−x) without overflow warnings


ACTIVATIONS = {
    "none": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu_2": lambda x: np.square(np.maximum(x, 0)),
    "mish": mish,
    "swish": lambda x: x * sigmoid(x),
    "selu": selu,
    "tanh": np.tanh,
    "sigmoid": sigmoid,
}


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """[ACT] Activate(); `softmax` and unknown values are refused by lc0 too ("unsupported activation")."""
    return ACTIVATIONS[name](x)


def dense(x: np.ndarray, fc: "Dense") -> np.ndarray:
    """[FC] Forward1D over the last axis: x·Wᵀ + b, then the activation (only with a bias, as lc0)."""
    # As one 2-D product over every token: a stacked 3-D matmul would run many small products.
    y = (x.reshape(-1, x.shape[-1]) @ fc.wt).reshape(x.shape[:-1] + (fc.wt.shape[1],))
    if fc.b is not None:
        y += fc.b
        return activate(y, fc.activation)
    return y


def layer_norm(x: np.ndarray, norm: "Norm", alpha: float = 1.0, skip: np.ndarray | None = None) -> np.ndarray:
    """[LN] LayerNorm2DWithSkipConnection: z = α·x + skip; γ·(z − mean)/√(var + ε) + β over channels."""
    z = x * alpha if alpha != 1.0 else x
    if skip is not None:
        z = z + skip
    mean = z.mean(axis=-1, keepdims=True)
    d = z - mean
    var = np.mean(d * d, axis=-1, keepdims=True)
    return d / np.sqrt(var + norm.eps) * norm.gammas + norm.betas


def softmax(x: np.ndarray) -> np.ndarray:
    """[ACT] SoftmaxActivation over the last axis (max subtracted first)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def positional_table() -> np.ndarray:
    """[MAP] kPosEncoding [64 squares][64 channels]: for square s, channel t is −1 at t = s, 1 where a
    queen or a knight on s reaches t on an empty board, 0 elsewhere (checked equal to lc0's table)."""
    f, r = np.arange(SQUARES) % 8, np.arange(SQUARES) // 8
    df, dr = np.abs(f[None, :] - f[:, None]), np.abs(r[None, :] - r[:, None])
    reach = (df == 0) | (dr == 0) | (df == dr) | ((df == 1) & (dr == 2)) | ((df == 2) & (dr == 1))
    table = reach.astype(np.float32)
    np.fill_diagonal(table, -1.0)
    return table


# -- prepared weights ------------------------------------------------------------------------------

@dataclass
class Dense:
    """A fully connected layer as a right operand: wt [inputs, outputs], b [outputs] or None."""

    wt: np.ndarray
    b: np.ndarray | None
    activation: str = "none"


@dataclass
class Norm:
    gammas: np.ndarray
    betas: np.ndarray
    eps: float


@dataclass
class Smolgen:
    compress: Dense
    dense1: Dense
    ln1: Norm
    dense2: Dense
    ln2: Norm
    shared: np.ndarray  # smolgen_w as [gen/heads, 4096]


@dataclass
class EncoderLayer:
    q: Dense
    k: Dense
    v: Dense
    out: Dense
    ln1: Norm
    ffn1: Dense
    ffn2: Dense
    ln2: Norm
    heads: int
    alpha: float
    smolgen: Smolgen | None = None


@dataclass
class PolicyHead:
    embed: Dense
    encoders: list[EncoderLayer]
    wq: Dense
    wk: Dense
    ppo: np.ndarray  # ip4_pol_w as [d, 4]


@dataclass
class ValueHead:
    embed: Dense | None  # ip_val (attention bodies); conv bodies' value conv is forward.py's
    fc1: Dense
    fc2: Dense


class _Layers:
    """Reads tensors by path for one network and checks each shape, naming the layer when wrong."""

    def __init__(self, net: Network, dtype, check_only: bool = False):
        # check_only: sizes are checked and nothing is decoded (zero-stride stand-ins), for the reader.
        self.net, self.att, self.dtype, self.check_only = net, net.attention, np.dtype(dtype), check_only

    def contig(self, a: np.ndarray) -> np.ndarray:
        return a if self.check_only else np.ascontiguousarray(a)

    def tensor(self, path: str):
        if path in FC_SLOTS:
            return getattr(self.net, path)
        return self.att.get(path) if self.att is not None else None

    def present(self, path: str) -> bool:
        t = self.tensor(path)
        return t is not None and t.size > 0

    def fail(self, problem: str):
        raise NetworkError(self.net.source.path, problem)

    def values(self, path: str, size: int | None = None, what: str = "") -> np.ndarray:
        t = self.tensor(path)
        if t is None or t.size == 0:
            self.fail(f"{path}: missing" + (f" (expected {size} values{what})" if size else ""))
        if size is not None and t.size != size:
            self.fail(f"{path}: {t.size} values, expected {size}{what}")
        if self.check_only:
            return np.broadcast_to(np.zeros(1, self.dtype), (t.size,))
        return t.values.astype(self.dtype)

    def bias(self, path: str) -> np.ndarray:
        return self.values(path)

    def dense(self, w: str, b: str | None, inputs: int, activation: str = "none", outputs: int | None = None) -> Dense:
        """W [outputs][inputs] (outputs from the bias when there is one) as Dense."""
        bias = self.bias(b) if b is not None else None
        if outputs is None:
            outputs = bias.size
        elif bias is not None and bias.size != outputs:
            self.fail(f"{b}: {bias.size} values, expected {outputs}")
        wv = self.values(w, outputs * inputs, f" ({outputs}×{inputs})")
        return Dense(self.contig(wv.reshape(outputs, inputs).T), bias, activation)

    def norm(self, gammas: str, betas: str, channels: int, eps: float) -> Norm:
        return Norm(self.values(gammas, channels), self.values(betas, channels), eps)


def _heads_problem(heads: int, d_model: int, where: str) -> str | None:
    if heads <= 0:
        return f"{where}: {heads} attention heads"
    if d_model % heads:
        return f"{where}: d_model {d_model} is not a multiple of the {heads} heads"
    return None


def _encoder(r: _Layers, prefix: str, embedding: int, heads: int, smolgen_w: str | None, smolgen_act: str,
             ffn_act: str, alpha: float, eps: float) -> EncoderLayer:
    """[BLAS] ForwardEncoderLayer's weights, sizes inferred from the biases as lc0 does."""
    if any(r.att.has(f"{prefix}.mha.rpe_{x}") for x in "qkv"):
        raise UnsupportedError(r.net.source.path, f"{prefix}.mha: RPE weights file not supported "
                                                  "(lc0 refuses relative position encodings the same way)")
    m = f"{prefix}.mha"
    q = r.dense(f"{m}.q_w", f"{m}.q_b", embedding)
    d_model = q.b.size
    why = _heads_problem(heads, d_model, m)
    if why:
        r.fail(why)
    k = r.dense(f"{m}.k_w", f"{m}.k_b", embedding, outputs=d_model)
    v = r.dense(f"{m}.v_w", f"{m}.v_b", embedding, outputs=d_model)
    out = r.dense(f"{m}.dense_w", f"{m}.dense_b", d_model, outputs=embedding)
    ln1 = r.norm(f"{prefix}.ln1_gammas", f"{prefix}.ln1_betas", embedding, eps)
    ffn1 = r.dense(f"{prefix}.ffn.dense1_w", f"{prefix}.ffn.dense1_b", embedding, ffn_act)
    ffn2 = r.dense(f"{prefix}.ffn.dense2_w", f"{prefix}.ffn.dense2_b", ffn1.b.size, outputs=embedding)
    ln2 = r.norm(f"{prefix}.ln2_gammas", f"{prefix}.ln2_betas", embedding, eps)
    layer = EncoderLayer(q, k, v, out, ln1, ffn1, ffn2, ln2, heads, alpha)
    if r.att.has(f"{m}.smolgen"):
        s = f"{m}.smolgen"
        compress = r.values(f"{s}.compress")
        if compress.size % embedding:
            r.fail(f"{s}.compress: {compress.size} values is not a multiple of the embedding size {embedding}")
        hidden_channels = compress.size // embedding
        compress_fc = Dense(r.contig(compress.reshape(hidden_channels, embedding).T), None)
        dense1 = r.dense(f"{s}.dense1_w", f"{s}.dense1_b", SQUARES * hidden_channels, smolgen_act)
        ln1s = r.norm(f"{s}.ln1_gammas", f"{s}.ln1_betas", dense1.b.size, SMOLGEN_EPS)
        dense2 = r.dense(f"{s}.dense2_w", f"{s}.dense2_b", dense1.b.size, smolgen_act)
        gen = dense2.b.size
        ln2s = r.norm(f"{s}.ln2_gammas", f"{s}.ln2_betas", gen, SMOLGEN_EPS)
        if gen % heads:
            r.fail(f"{s}.dense2_b: {gen} values is not a multiple of the {heads} heads")
        if smolgen_w is None or not r.present(smolgen_w):
            r.fail(f"smolgen_w: missing (encoder layer {prefix} has smolgen)")
        shared = r.values(smolgen_w, SQUARES * SQUARES * (gen // heads), f" ({SQUARES * SQUARES}×{gen // heads})")
        shared = r.contig(shared.reshape(SQUARES * SQUARES, gen // heads).T)
        layer.smolgen = Smolgen(compress_fc, dense1, ln1s, dense2, ln2s, shared)
    return layer


# -- the steps of the forward pass -----------------------------------------------------------------

def pe_map_inputs(planes: np.ndarray) -> np.ndarray:
    """[BLAS] PE_MAP: each square's 112 plane values, then its 64 channels of kPosEncoding → [N, 64, 176]."""
    n = planes.shape[0]
    table = np.broadcast_to(positional_table().astype(planes.dtype), (n, SQUARES, SQUARES))
    return np.concatenate([planes, table], axis=2)


def pe_dense_inputs(planes: np.ndarray, preproc: Dense) -> np.ndarray:
    """[BLAS] PE_DENSE: the 12 piece planes flattened square-major ([square][plane], 768 values) through
    `ip_emb_preproc` give preproc_b/64 extra channels per square, appended after the 112 planes."""
    n = planes.shape[0]
    pieces = planes[:, :, :PIECE_PLANES].reshape(n, SQUARES * PIECE_PLANES)
    extra = dense(pieces, preproc).reshape(n, SQUARES, -1)
    return np.concatenate([planes, extra], axis=2)


def input_gating(x: np.ndarray, mult: np.ndarray, add: np.ndarray) -> np.ndarray:
    """[BLAS] x·ip_mult_gate + ip_add_gate, both stored [channel][square] (used as lc0 stores them)."""
    return x * mult + add


def smolgen_logits(x: np.ndarray, sg: Smolgen, heads: int) -> np.ndarray:
    """[BLAS] smolgen: per-square compress, then per position dense1 + LN, dense2 + LN, and the shared
    `smolgen_w` turns each head's slice into 64×64 attention logits → [N, heads, 64, 64]."""
    n = x.shape[0]
    h = dense(x, sg.compress).reshape(n, -1)  # [N, 64·hidden_channels], square-major
    h = layer_norm(dense(h, sg.dense1), sg.ln1)
    h = layer_norm(dense(h, sg.dense2), sg.ln2)
    return (h.reshape(n * heads, -1) @ sg.shared).reshape(n, heads, SQUARES, SQUARES)


def multi_head_attention(x: np.ndarray, layer: EncoderLayer) -> np.ndarray:
    """[BLAS] Q, K, V; per head softmax(Q·Kᵀ/√depth + smolgen)·V; heads side by side (head h holds
    channels h·depth … (h+1)·depth − 1); then the output dense layer → [N, 64, embedding]."""
    n, heads = x.shape[0], layer.heads
    q, k, v = dense(x, layer.q), dense(x, layer.k), dense(x, layer.v)
    depth = q.shape[-1] // heads
    # Contiguous [N, heads, 64, depth] stacks: numpy hands each 2-D slice of a contiguous stack to BLAS.
    split = lambda t: np.ascontiguousarray(t.reshape(n, SQUARES, heads, depth).transpose(0, 2, 1, 3))  # noqa: E731
    keys_t = np.ascontiguousarray(k.reshape(n, SQUARES, heads, depth).transpose(0, 2, 3, 1))
    logits = (split(q) @ keys_t) * np.asarray(1.0 / np.sqrt(depth), dtype=x.dtype)
    if layer.smolgen is not None:
        logits += smolgen_logits(x, layer.smolgen, heads)
    attn = softmax(logits) @ split(v)  # [N, heads, 64, depth]
    return dense(attn.transpose(0, 2, 1, 3).reshape(n, SQUARES, heads * depth), layer.out)


def encoder_layer(x: np.ndarray, layer: EncoderLayer) -> np.ndarray:
    """[BLAS] ForwardEncoderLayer: LN(x + α·MHA(x)), then LN(y + α·FFN(y)) (post-norm, lc0's α)."""
    y = layer_norm(multi_head_attention(x, layer), layer.ln1, layer.alpha, x)
    return layer_norm(dense(dense(y, layer.ffn1), layer.ffn2), layer.ln2, layer.alpha, y)


def attention_policy_logits(tokens: np.ndarray, head: PolicyHead) -> np.ndarray:
    """[BLAS] policy head: embedding, its encoders, Q·Kᵀ/√d over from/to squares, the promotion
    logits, and lc0's map of the 4288 logits into the 1858 policy outputs → [N, 1858]."""
    n = tokens.shape[0]
    x = dense(tokens, head.embed)
    for layer in head.encoders:
        x = encoder_layer(x, layer)
    q, k = dense(x, head.wq), dense(x, head.wk)
    d = q.shape[-1]
    qk = (q @ k.transpose(0, 2, 1)) * np.asarray(1.0 / np.sqrt(d), dtype=x.dtype)  # [N, from, to]
    full = np.concatenate([qk.reshape(n, -1), promotion_logits(qk, k, head.ppo)], axis=1)
    return np.ascontiguousarray(full[:, policy_map.attention_policy_gather()])


def promotion_logits(qk: np.ndarray, k: np.ndarray, ppo: np.ndarray) -> np.ndarray:
    """[BLAS] promotion offsets: the keys of the rank-8 squares times ip4_pol_w give 4 offsets per
    destination file; the knight's (4th) is added to the q, r, b ones, and each is added to the
    rank-7 → rank-8 logit. Laid out 24·from_file + 3·to_file + piece → [N, 192]."""
    n = qk.shape[0]
    offsets = k[:, 56:64, :] @ ppo  # [N, to_file, 4]
    offsets = offsets[:, :, :3] + offsets[:, :, 3:4]  # [N, to_file, piece]
    base = qk[:, 48:56, 56:64]  # [N, from_file, to_file]
    return (base[:, :, :, None] + offsets[:, None, :, :]).reshape(n, 8 * 24)


def value_outputs(v: np.ndarray, wdl: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """[BLAS] WDL: softmax of the three outputs and Q = W − L; classical: tanh."""
    if wdl:
        p = softmax(v)
        return p[:, 0] - p[:, 2], p
    return np.tanh(v[:, 0]), None


# -- head selection ([WEIGHTS] MultiHeadWeights) ---------------------------------------------------

def _head_names(net: Network, group: str, heads: dict[str, str], default: str) -> list[str]:
    """The heads of `group` (policy_heads or value_heads) lc0 offers for `net`, the default first."""
    att = net.attention
    if att is None or not att.has(group):
        return [default]
    return [default] + [name for name, fld in heads.items() if name != default and att.has(f"{group}.{fld}")]


def policy_head_names(net: Network) -> list[str]:
    """The policy heads lc0 offers for `net` (its backend option `policy_head`), lc0's order."""
    return _head_names(net, "policy_heads", POLICY_HEADS, DEFAULT_POLICY_HEAD)


def value_head_names(net: Network) -> list[str]:
    """The value heads lc0 offers for `net` (its backend option `value_head`)."""
    return _head_names(net, "value_heads", VALUE_HEADS, DEFAULT_VALUE_HEAD)


def _choose(net: Network, kind: str, name: str | None, names: list[str]) -> str:
    name = name or (DEFAULT_POLICY_HEAD if kind == "policy" else DEFAULT_VALUE_HEAD)
    if name not in names:
        raise NetworkError(net.source.path, f"{kind} head '{name}' does not exist in this network "
                                            f"(heads: {', '.join(names)})")
    return name


def _policy_paths(r: _Layers, name: str) -> dict[str, str]:
    """[WEIGHTS] the paths of the layers policy head `name` uses, with lc0's fallbacks: a head
    without its own ip_pol_w uses policy_heads.ip_pol_w, else the top-level ip_pol_w."""
    att = r.att
    if att.has("policy_heads"):
        shared = "policy_heads.ip_pol" if r.present("policy_heads.ip_pol_w") else "ip_pol"
        p = f"policy_heads.{POLICY_HEADS[name]}"
        if not att.has(p):
            r.fail(f"{p}: missing (lc0 reads its policy from it)")
        own = f"{p}.ip_pol" if r.present(f"{p}.ip_pol_w") else shared
        prefix, count = p + ".", f"{p}.pol_headcount"
    else:
        if not (r.present("ip_pol_w") or r.net.policy is not None or r.net.policy1 is not None):
            r.fail("ip_pol_w: missing (no policy head: lc0 says 'Could not find valid policy head weights')")
        own, prefix, count = "ip_pol", "", "pol_headcount"
    return {"ip_pol_w": own + "_w", "ip_pol_b": own + "_b", "prefix": prefix, "pol_headcount": count}


def _policy_head(r: _Layers, name: str, channels: int, fmt: Lc0Format) -> PolicyHead:
    p = _policy_paths(r, name)
    pre = p["prefix"]
    embed_act = fmt.default_activation if fmt.attention_body else "selu"  # [BLAS] SELU hard-wired for conv bodies
    embed = r.dense(p["ip_pol_w"], p["ip_pol_b"], channels, embed_act)
    width = embed.b.size
    heads = r.att.count(p["pol_headcount"])
    encoders = []
    for i in range(r.att.repeated(f"{pre}pol_encoder")):
        encoders.append(_encoder(r, f"{pre}pol_encoder.{i}", width, heads, "smolgen_w", fmt.smolgen_activation,
                                 fmt.ffn_activation, 1.0, ENCODER_EPS_OTHER))
    wq = r.dense(f"{pre}ip2_pol_w", f"{pre}ip2_pol_b", width)
    d = wq.b.size
    wk = r.dense(f"{pre}ip3_pol_w", f"{pre}ip3_pol_b", width, outputs=d)
    ppo = r.values(f"{pre}ip4_pol_w", 4 * d, f" (4×{d})").reshape(4, d).T
    return PolicyHead(embed, encoders, wq, wk, r.contig(ppo))


def _value_head(r: _Layers, name: str, embedding: int, fmt: Lc0Format, outputs: int) -> ValueHead:
    """[WEIGHTS] value head `name`: value_heads.<name> when the file has value_heads, else top level."""
    att = r.att
    if att.has("value_heads"):
        pre = f"value_heads.{VALUE_HEADS[name]}."
        if not att.has(pre[:-1]):
            r.fail(f"{pre[:-1]}: missing (lc0 reads its value from it)")
    else:
        pre = ""
        if not r.present("ip_val_w"):
            r.fail("ip_val_w: missing (no value head: lc0 says 'Could not find valid value head weights')")
    act = fmt.default_activation
    embed = r.dense(f"{pre}ip_val_w", f"{pre}ip_val_b", embedding, act)
    fc1 = r.dense(f"{pre}ip1_val_w", f"{pre}ip1_val_b", SQUARES * embed.b.size, act)
    fc2 = r.dense(f"{pre}ip2_val_w", f"{pre}ip2_val_b", fc1.b.size, outputs=outputs)
    return ValueHead(embed, fc1, fc2)


def check_value_head(net: Network, value_head: str | None) -> None:
    """A convolution body's value head is its convolution head, lc0's `winner`; refuse any other."""
    if net.attention is not None and net.attention.has("value_heads"):
        raise UnsupportedError(net.source.path, "value_heads on a convolution body: not evaluated")
    _choose(net, "value", value_head, value_head_names(net))


def structure_problems(net: Network, decode: bool = True) -> list[str]:
    """Every problem preparing `net`'s attention layers meets, for each head lc0 offers (each names
    its layer); empty when every head can be evaluated. For `verify`; decode=False checks the sizes
    only, without decoding a tensor (for readers)."""
    from lcconvert.errors import LcconvertError

    if net.attention is None:
        return []
    problems: list[str] = []
    fmt = lc0_format(net)
    if fmt.attention_body:
        tries = [dict(policy_head=p) for p in policy_head_names(net)]
        tries += [dict(value_head=v) for v in value_head_names(net)[1:]]
        prepare = lambda kw: AttentionBody.prepare(net, **kw, check_only=not decode)  # noqa: E731
    else:
        channels = net.input.out_channels
        if channels is None:
            return ["input: no biases, means or variances: cannot tell the filter count"]
        tries = [dict(policy_head=p) for p in policy_head_names(net)]
        prepare = lambda kw: AttentionPolicy.prepare(net, channels, **kw, check_only=not decode)  # noqa: E731
    # A reader (decode=False) reports bad shapes only: a feature lc0 refuses (RPE) is refused where
    # the network is evaluated, and the file can still be inspected and copied.
    caught = LcconvertError if decode else NetworkError
    for kw in tries:
        try:
            prepare(kw)
        except caught as e:
            if e.problem not in problems:
                problems.append(e.problem)
        except UnsupportedError:
            pass
    return problems


# -- prepared models -------------------------------------------------------------------------------

def _check_supported(net: Network, fmt: Lc0Format) -> None:
    """What lc0's BLAS backend itself refuses (MakeBlasNetwork, Activate) is refused here too."""
    path = net.source.path
    if net.format.value_kind not in (VALUE_CLASSICAL, VALUE_WDL):
        raise UnsupportedError(path, f"value head format {net.format.value_kind}: not evaluated (lc0's CPU "
                                     "backends support classical and WDL only)")
    for what, act in (("smolgen_activation", fmt.smolgen_activation), ("ffn_activation", fmt.ffn_activation)):
        if act not in ACTIVATIONS:
            raise UnsupportedError(path, f"{what} {act}: unsupported activation function (lc0 refuses it too)")


@dataclass
class AttentionPolicy:
    """The attention policy head of a convolution body, for `forward.Model` (network 4 + POLICY_ATTENTION)."""

    head: PolicyHead
    name: str = DEFAULT_POLICY_HEAD

    @classmethod
    def prepare(cls, net: Network, channels: int, policy_head: str | None = None, dtype=np.float32,
                check_only: bool = False):
        fmt = lc0_format(net)
        _check_supported(net, fmt)
        name = _choose(net, "policy", policy_head, policy_head_names(net))
        return cls(_policy_head(_Layers(net, dtype, check_only), name, channels, fmt), name)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [N, 64, C] (the body's output, square-major) → policy logits [N, 1858]."""
        return attention_policy_logits(tokens, self.head)


@dataclass
class AttentionBody:
    """An attention-body network (network 6, 7, or read as one) prepared for evaluation."""

    fmt: Lc0Format
    preproc: Dense | None
    embed: Dense
    embed_ln: Norm | None
    gates: tuple[np.ndarray, np.ndarray] | None
    embed_ffn: tuple[Dense, Dense, Norm, float] | None  # [BLAS] added with the encoders' α
    encoders: list[EncoderLayer]
    policy: PolicyHead
    value: ValueHead
    moves_left: tuple[Dense, Dense, Dense] | None
    wdl: bool
    policy_head: str = DEFAULT_POLICY_HEAD
    value_head: str = DEFAULT_VALUE_HEAD
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    # Other heads of a multi-head network, prepared on first use (`outputs`).
    layers: _Layers | None = field(default=None, repr=False)
    others: dict = field(default_factory=dict, repr=False)

    @classmethod
    def prepare(cls, net: Network, policy_head: str | None = None, value_head: str | None = None,
                dtype=np.float32, check_only: bool = False) -> "AttentionBody":
        fmt = lc0_format(net)
        path = net.source.path
        if not fmt.attention_body:
            raise UnsupportedError(path, "not an attention body")
        if net.blocks:
            raise UnsupportedError(path, "attention body after a residual tower: not evaluated")
        _check_supported(net, fmt)
        policy_name = _choose(net, "policy", policy_head, policy_head_names(net))
        value_name = _choose(net, "value", value_head, value_head_names(net))
        r = _Layers(net, dtype, check_only)
        att = net.attention
        preproc = None
        if fmt.pe_dense:
            preproc = r.dense("ip_emb_preproc_w", "ip_emb_preproc_b", SQUARES * PIECE_PLANES)
            if preproc.b.size % SQUARES:
                r.fail(f"ip_emb_preproc_b: {preproc.b.size} values is not a multiple of 64 squares")
            inputs = 112 + preproc.b.size // SQUARES
        else:
            inputs = 112 + SQUARES
        embed = r.dense("ip_emb_w", "ip_emb_b", inputs, fmt.default_activation)
        e = embed.b.size
        embed_ln = r.norm("ip_emb_ln_gammas", "ip_emb_ln_betas", e, EMBEDDING_EPS) if fmt.pe_dense else None
        gates = None
        if r.present("ip_mult_gate") and r.present("ip_add_gate"):
            mult = r.values("ip_mult_gate", e * SQUARES, f" ({e}×64)").reshape(e, SQUARES).T
            add = r.values("ip_add_gate", e * SQUARES, f" ({e}×64)").reshape(e, SQUARES).T
            gates = (r.contig(mult), r.contig(add))
        layers = att.repeated("encoder")
        alpha = float((2.0 * layers) ** -0.25) if layers else 1.0
        embed_ffn = None
        if fmt.pe_dense:
            f1 = r.dense("ip_emb_ffn.dense1_w", "ip_emb_ffn.dense1_b", e, fmt.ffn_activation)
            f2 = r.dense("ip_emb_ffn.dense2_w", "ip_emb_ffn.dense2_b", f1.b.size, outputs=e)
            embed_ffn = (f1, f2, r.norm("ip_emb_ffn_ln_gammas", "ip_emb_ffn_ln_betas", e, EMBEDDING_EPS), alpha)
        eps = ENCODER_EPS_PE_DENSE if fmt.pe_dense else ENCODER_EPS_OTHER
        heads = att.count("headcount")
        encoders = [_encoder(r, f"encoder.{i}", e, heads, "smolgen_w", fmt.smolgen_activation, fmt.ffn_activation,
                             alpha, eps) for i in range(layers)]
        wdl = net.format.value_kind == VALUE_WDL
        policy = _policy_head(r, policy_name, e, fmt)
        value = _value_head(r, value_name, e, fmt, 3 if wdl else 1)
        moves_left = None
        if net.format.moves_left_kind == MOVES_LEFT_V1:
            m0 = r.dense("ip_mov_w", "ip_mov_b", e, fmt.default_activation)
            m1 = r.dense("ip1_mov_w", "ip1_mov_b", SQUARES * m0.b.size, fmt.default_activation)
            m2 = r.dense("ip2_mov_w", "ip2_mov_b", m1.b.size, "relu", outputs=1)  # [BLAS] "Specifically Relu"
            moves_left = (m0, m1, m2)
        return cls(fmt, preproc, embed, embed_ln, gates, embed_ffn, encoders, policy, value, moves_left, wdl,
                   policy_name, value_name, np.dtype(dtype), r)

    def body(self, planes: np.ndarray) -> np.ndarray:
        """planes [N, 64, 112] (square-major) → the body's output tokens [N, 64, embedding]."""
        x = pe_dense_inputs(planes, self.preproc) if self.preproc is not None else pe_map_inputs(planes)
        x = dense(x, self.embed)
        if self.embed_ln is not None:
            x = layer_norm(x, self.embed_ln)
        if self.gates is not None:
            x = input_gating(x, *self.gates)
        if self.embed_ffn is not None:
            f1, f2, ln, alpha = self.embed_ffn
            x = layer_norm(dense(dense(x, f1), f2), ln, alpha, x)
        for layer in self.encoders:
            x = encoder_layer(x, layer)
        return x

    def _head(self, kind: str, name: str | None):
        default = self.policy_head if kind == "policy" else self.value_head
        if name is None or name == default:
            return self.policy if kind == "policy" else self.value
        if (kind, name) not in self.others:
            r, e = self.layers, self.embed.b.size
            names = policy_head_names(r.net) if kind == "policy" else value_head_names(r.net)
            name = _choose(r.net, kind, name, names)
            self.others[kind, name] = (_policy_head(r, name, e, self.fmt) if kind == "policy" else
                                       _value_head(r, name, e, self.fmt, 3 if self.wdl else 1))
        return self.others[kind, name]

    def __call__(self, planes: np.ndarray) -> dict[str, np.ndarray]:
        """planes [N, 64, 112] → policy_logits [N, 1858], value [N], wdl [N, 3], moves_left [N]."""
        return self.outputs(self.body(planes))

    def many(self, planes: np.ndarray, choices) -> list[dict[str, np.ndarray]]:
        """The outputs for each (policy head, value head) of `choices` (None: the default), the body run once."""
        x = self.body(planes)
        return [self.outputs(x, p, v) for p, v in choices]

    def outputs(self, x: np.ndarray, policy_head: str | None = None,
                value_head: str | None = None) -> dict[str, np.ndarray]:
        """The heads on the body's output tokens x [N, 64, embedding]."""
        n = x.shape[0]
        policy, vh = self._head("policy", policy_head), self._head("value", value_head)
        logits = attention_policy_logits(x, policy)
        v = dense(dense(x, vh.embed).reshape(n, -1), vh.fc1)
        value, wdl = value_outputs(dense(v, vh.fc2), self.wdl)
        out = {"policy_logits": logits, "value": value, "wdl": wdl, "moves_left": None}
        if self.moves_left is not None:
            m0, m1, m2 = self.moves_left
            out["moves_left"] = dense(dense(dense(x, m0).reshape(n, -1), m1), m2)[:, 0]
        return out
