"""Engine generations: what each generation of engines computes from the same file.

Why: "backwards compatible" is not one thing. Three generations of engines read
the batch-norm fields of a network differently (FORMATS.md §3, confirmed on
builds of each):

  * "modern"   lc0 ≥ 0.21: y = γ·(z + b − μ)/√(σ² + ε) + β, exact for any γ.
  * "lc0-0.20" lc0 v0.20.x: decodes LINEAR16 in float32 as q/65535·(max − min) + min
               with a single rounding (see `decode_v020`), and where a block has
               γ/β layers merges them at load as s = γ/√(σ² + ε), σ'² = 1/s² − ε,
               μ' = μ − β/s (γ := 1, β := 0), so the sign of a negative γ is lost;
               it appends C zero biases, so a block with conv biases *and* γ/β
               reads 2C biases. The input block's bias count is the network's
               filter count: there 2C means reading past the end of the weights —
               undefined output (measured: NaN, different from run to run). In the
               other blocks the appended zeros are never read (measured on
               legacy/se-mixed, which has such blocks).
  * "lc0-0.19" lc0 ≤ 0.19 and Leela Zero: y = (z + b − μ)/√(σ² + ε); γ and β are
               ignored; a biases layer of C entries is required.

This module turns a network into what a generation holds after loading it (a
Network evaluated with forward.py's "legacy" semantics for the older two), and
says when a generation cannot load a file or computes something undefined. The
judgement "does it compute what modern semantics compute" is verify.py's.
"""
from __future__ import annotations

import numpy as np

from lcconvert.codecs import Encoding
from lcconvert.constants import ENGINE_EPSILON, Family
from lcconvert.forward import Model, Outputs
from lcconvert.network import ConvBlock, Network
from lcconvert.tensor import Derived, Tensor
from lcconvert.transforms import map_tensors

GENERATIONS = ("modern", "lc0-0.20", "lc0-0.19")
OLDER = ("lc0-0.20", "lc0-0.19")  # what `verify --legacy` means
LABELS = {"modern": "lc0 ≥ 0.21", "lc0-0.20": "lc0 0.20.x", "lc0-0.19": "lc0 ≤ 0.19 / Leela Zero"}


def check_generation(generation: str) -> str:
    if generation not in GENERATIONS:
        raise ValueError(f"engine generation must be one of {GENERATIONS}, not {generation!r}")
    return generation


def decode_v020(t: Tensor) -> np.ndarray:
    """lc0 v0.20.2's float32 LINEAR16 decode: θ = q/65535 and r = max − min in float32, then θ·r + min
    rounded once (a fused multiply-add). Where the layer's min is not 0, an exact 0 of the modern decode
    comes out as a tiny non-zero value (1e-9 .. 2e-6 on legacy/se-mixed), which the γ/β merge turns into
    a huge variance; with two roundings instead the emulation gives NaN where the engine gave numbers."""
    if t.encoding is not Encoding.LINEAR16 or t.raw is None:
        return t.values
    q = np.frombuffer(t.raw, dtype="<u2")
    lo, hi = np.float32(t.min_val or 0.0), np.float32(t.max_val or 0.0)
    theta = q.astype(np.float32) / np.float32(65535)
    span = np.float32(hi - lo)
    # A product of two float32 is exact in float64; adding a float32 and rounding to float32 once
    # is the fused multiply-add (float64 holds the exact sum here to within one float64 rounding).
    return (theta.astype(np.float64) * np.float64(span) + np.float64(lo)).astype(np.float32)


def undefined(net: Network, generation: str) -> str | None:
    """Why `generation` computes no well-defined output from `net`, or None."""
    check_generation(generation)
    if generation == "lc0-0.20":
        b = net.input
        if b.biases is not None and (b.gammas is not None or b.betas is not None):
            return ("input: conv biases and γ/β layers: lc0 0.20 appends C zero biases, takes the 2C biases as "
                    "the filter count and reads past the end of the weights (undefined output)")
    return None


def load_problems(net: Network, generation: str) -> list[str]:
    """What stops `generation` from loading the batch-norm part of `net` at all."""
    check_generation(generation)
    problems: list[str] = []
    if generation == "modern":
        return problems
    if getattr(net, "attention", None) is not None:
        # Attention policies arrived in lc0 0.29 and attention bodies in 0.30: no older engine loads them.
        problems.append("attention layers: lc0 ≥ 0.29 only (attention policy 0.29, attention body 0.30)")
    not_linear = sorted({t.encoding.name for _, t in net.tensors() if not t.encoding.legacy_readable})
    # Text weights are decimal for every engine; a Go network is read by Leela Zero from text only (a Go
    # network in a protobuf is a container no engine loads), so lc0's layer encodings do not apply to it.
    if not_linear and net.source.kind != "text" and net.family is not Family.GO:
        problems.append(f"layers encoded as {', '.join(not_linear)}: engines before lc0 v0.33 decode every "
                        "layer as LINEAR16")
    if generation == "lc0-0.19":
        no_bias = [name for name, b in net.bn_blocks() if b.biases is None]
        if no_bias:
            problems.append(f"{no_bias[0]}: no conv biases ({len(no_bias)} block(s)); lc0 ≤ 0.19 needs a "
                            "biases layer of C entries")
    else:
        no_bias = [name for name, b in net.bn_blocks()
                   if b.biases is None and b.gammas is None and b.betas is None]
        if no_bias:
            problems.append(f"{no_bias[0]}: neither conv biases nor γ/β ({len(no_bias)} block(s)); lc0 0.20 "
                            "takes the bias count as the channel count")
    return problems


def _merge_v020(block: ConvBlock) -> ConvBlock:
    """v0.20's load-time merge of γ/β into means and variances, in float32 as the engine does it."""
    if block.gammas is None and block.betas is None:
        return block
    c = block.out_channels
    g = block.gammas.values if block.gammas is not None else np.ones(c, np.float32)
    beta = block.betas.values if block.betas is not None else np.zeros(c, np.float32)
    eps = np.float32(ENGINE_EPSILON)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = g / np.sqrt(block.variances.values + eps)
        var = np.float32(1.0) / (s * s) - eps  # the sign of s is lost here
        mean = block.means.values - beta / s
    return block.replace(means=Tensor.from_values(mean), variances=Tensor.from_values(var), gammas=None,
                         betas=None)


def as_loaded(net: Network, generation: str) -> Network:
    """`net` as `generation` holds it after loading: evaluate it with `semantics(generation)`."""
    check_generation(generation)
    if generation != "lc0-0.20":
        return net
    out = decoded_as(net, generation)
    out.input = _merge_v020(out.input)
    for r in out.residual:
        r.conv1, r.conv2 = _merge_v020(r.conv1), _merge_v020(r.conv2)
    for name, block in list(out.conv_blocks()):
        if name != "input" and not name.startswith("residual.") and block.has_bn:
            setattr(out, name, _merge_v020(block))
    return out


def decoded_as(net: Network, generation: str) -> Network:
    """A copy of `net` with only the generation's decode applied (no merge): what it would compute
    with exact batch-norm semantics — the decode's own share of a generation's difference."""
    if check_generation(generation) != "lc0-0.20":
        return net.copy()
    # Decoded when read (tensor.Derived): a lazy forward model holds one layer's decode at a time.
    return map_tensors(net, lambda _name, t: Derived(t, decode_v020)
                       if t.encoding is Encoding.LINEAR16 and t.raw is not None else t)


def semantics(generation: str) -> str:
    """forward.py's batch-norm semantics for a network returned by `as_loaded`."""
    return "modern" if check_generation(generation) == "modern" else "legacy"


def model(net: Network, generation: str, dtype=np.float64, lazy: bool = False) -> Model:
    """A forward model of what `generation` computes from `net` (check `undefined` first)."""
    return Model(as_loaded(net, generation), semantics(generation), dtype, lazy=lazy)


def evaluate(net: Network, planes, generation: str, dtype=np.float64) -> Outputs:
    why = undefined(net, generation)
    if why:
        raise ValueError(why)
    return model(net, generation, dtype)(planes)


def same_in_every_generation(net: Network) -> bool:
    """Whether every generation computes `net` with the very same arithmetic as modern semantics,
    by construction: no block has a γ or β layer (so lc0 0.20 merges nothing and lc0 ≤ 0.19 ignores
    nothing) and the network's ε is the engines' ε (modern semantics use `net.epsilon`, the older
    generations ENGINE_EPSILON). Then legacy semantics run forward.py's modern code path with
    identical numbers: (b − μ)·s + 0 equals (b − μ)·s exactly, so the outputs are bit for bit equal
    (tests/test_engines.py checks it on a folded network). lc0 0.20 still decodes LINEAR16 its own
    way; that is the only difference left for it."""
    if any(b.gammas is not None or b.betas is not None for _, b in net.bn_blocks()):
        return False
    return not any(True for _ in net.bn_blocks()) or float(net.epsilon) == float(ENGINE_EPSILON)


# What `Evaluations` computes: a generation's output, the older generations' shared "legacy" semantics on
# the file's own numbers, and lc0 0.20's decode alone (modern semantics on its float32 decode).
MODERN, LEGACY, V020, V020_DECODE = "modern", "legacy", "lc0-0.20", "lc0-0.20 decode"


class Evaluations:
    """What one network computes on one set of positions, per engine generation: each forward pass runs
    at most once, and none whose result is another's by construction (`same_in_every_generation`).

    Why: `verify` asks one file for modern and legacy outputs (backwards compatibility) and for every
    generation (which engines compute it); `fold-bias` asks the file it writes for legacy outputs
    (against its input) and again for every generation. On a 40×512 network a float64 pass over 32
    positions takes tens of seconds; asked separately these were 6–7 passes where 2–4 are distinct.
    A prepared model holds a float64 copy of the weights (1.6 GB at 40×512), so each is dropped as soon
    as its outputs exist; only outputs (kilobytes per position) are kept.
    """

    def __init__(self, net: Network, planes, dtype=np.float64):
        self.net, self.planes, self.dtype = net, planes, dtype
        self.uniform = same_in_every_generation(net)
        # Whether lc0 0.20's own LINEAR16 decode has anything to decode (else it is modern's decode).
        self.own_decode = any(t.encoding is Encoding.LINEAR16 and t.raw is not None for _, t in net.tensors())
        self.passes = 0  # forward passes actually run (tests and benchmarks read it)
        self._outputs: dict[tuple[str, tuple], Outputs] = {}

    def kind(self, what: str) -> str:
        """The computation `what` (a generation, LEGACY or V020_DECODE) really is, after the identities."""
        what = LEGACY if what == "lc0-0.19" else what
        if what not in (MODERN, LEGACY, V020, V020_DECODE):
            raise ValueError(f"unknown evaluation {what!r}")
        if self.uniform:
            what = {LEGACY: MODERN, V020: V020_DECODE}.get(what, what)
        if what == V020_DECODE and not self.own_decode:
            what = MODERN
        return what

    def same(self, a: str, b: str) -> bool:
        """Whether `a` and `b` are one computation by construction (no forward pass can tell them apart)."""
        return self.kind(a) == self.kind(b)

    def _model(self, kind: str) -> Model:
        # Lazy models: each evaluated once, one layer's float64 matrix alive at a time (forward._Conv).
        if kind == MODERN:
            return Model(self.net, "modern", self.dtype, lazy=True)
        if kind == LEGACY:
            return Model(self.net, "legacy", self.dtype, lazy=True)
        if kind == V020:
            return model(self.net, V020, self.dtype, lazy=True)
        return Model(decoded_as(self.net, V020), "modern", self.dtype, lazy=True)

    def heads(self, what: str, choices) -> list[Outputs]:
        """Outputs of `what` for each (policy head, value head) of `choices` (forward.Model.heads)."""
        kind = self.kind(what)
        missing = [c for c in choices if (kind, c) not in self._outputs]
        if missing:
            with np.errstate(all="ignore"):  # lc0 0.20's merge of a negative γ: NaN is its answer
                outs = self._model(kind).heads(self.planes, missing)
            self.passes += 1
            self._outputs.update({(kind, c): o for c, o in zip(missing, outs)})
        return [self._outputs[(kind, c)] for c in choices]

    def __call__(self, what: str) -> Outputs:
        return self.heads(what, [(None, None)])[0]
