"""Checks and comparisons of networks, returned as data (`Report`, problem lists).

Why: lcconvert promises that a file it writes computes what its source computed.
`check` finds what makes a file unreadable or wrong for an engine (shapes, values,
format enums); `compare` and `backwards_compatible` run the forward pass on seeded
realistic positions and judge the differences against a tolerance derived in the
same run from the encoding's own noise (DESIGN.md "Verification"). Rendering for
a terminal is here as plain text; exit codes belong to the CLI.

All forward passes here run in float64, so the arithmetic itself contributes
~1e-13 and every difference measured is caused by the parameters (and the
semantics) — which is what a file is.
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from lcconvert import codecs, progress, shapes, versions
from lcconvert.codecs import Encoding
from lcconvert.constants import (
    ACTIVATION_MISH,
    ACTIVATION_RELU,
    KNOWN_INPUT_FORMATS,
    MOVES_LEFT_NONE,
    MOVES_LEFT_V1,
    NETWORK_CLASSICAL,
    NETWORK_CLASSICAL_WITH_HEADFORMAT,
    NETWORK_SE,
    NETWORK_SE_WITH_HEADFORMAT,
    OUTPUT_CLASSICAL,
    OUTPUT_WDL,
    POLICY_CLASSICAL,
    POLICY_CONVOLUTION,
    VALUE_CLASSICAL,
    VALUE_WDL,
    Family,
)
from lcconvert.errors import refuse_problems
from lcconvert.network import Network
from lcconvert.tensor import Derived, Tensor

# Float64, deliberately, although float32 runs the same pass ~1.7× faster (76 against 39 GFLOP/s
# for numpy matmul here). Measured on a 20×256 network resampled from a real one
# (benchmarks/realistic.py), folded, NET legacy against REF modern on the 32 seeded positions:
# float32 moves the per-move policy difference by up to 2.7e-5 (value and WDL 3e-6), and REF's
# own policy by 4.0e-5 — a quarter of a 1e-4 difference between two networks, growing with
# depth. Verdicts must resolve differences of 1e-4, so the arithmetic stays float64 (~1e-13).
DTYPE = np.float64
# Pass rule for `compare`: difference ≤ K × noise floor + allowance, per head.
# K = 2: a file that is REF re-encoded in NET's encoding sits at exactly 1× the
# re-encode floor; one draw of the rounding floor is itself a noisy maximum over a
# few dozen positions, hence the factor 2. Measured on maia-1100 (LINEAR16, seeds
# 0–4): folding γ into the variances and β into the biases (only batch-norm layers
# re-quantized) reaches 0.05–0.34× the floor; folding γ into the LINEAR16 conv
# weights (whose shared ranges it stretches) reaches 4–64× — K sits in that gap.
K = 2.0
# Absolute allowance per head, relative to the head's scale (1 for probabilities,
# value and WDL; the largest |moves-left| in plies): 1e-9 is far above float64
# arithmetic (~1e-13 here) and far below any encoding's effect (≥ 1e-7 even for
# FLOAT32 storage rounding), so it only keeps comparisons whose floor is exactly 0
# (identical parameters) from failing on the order of operations.
ALLOWANCE = 1e-9
# Float32 storage rounds every parameter by up to half an ulp (2^-24 relative): the
# rounding floor never assumes a parameter is stored more precisely than that.
FLOAT32_HALF_ULP = 2.0 ** -24
HEADS = ("policy", "value", "wdl", "moves_left")
HEAD_LABELS = {"policy": "policy (probabilities)", "value": "value (Q or tanh)", "wdl": "WDL",
               "moves_left": "moves left (plies)"}


# -- structure and numerics ----------------------------------------------------

def check(net: Network) -> list[str]:
    """Every structural, numeric, format-enum and header problem of `net`, each naming its block."""
    return usable_problems(net) + header_problems(net)


def usable_problems(net: Network) -> list[str]:
    """What makes `net` unfit to evaluate or to write from: shapes, values (NaN/Inf, σ²+ε ≤ 0, LINEAR16
    min > max), format enums that are unknown or disagree with the weights.

    The one policy of every command that writes or evaluates (`require_usable`):
    such a network is refused, because any output computed from it would be a
    silently broken network or a meaningless number. The header fields that every
    writer settles (`header_problems`) are not among these.
    """
    from lcconvert.forward_attention import structure_problems as attention_problems

    return list(shapes.structure_problems(net)) + attention_problems(net) \
        + shapes.value_problems(net, epsilon=net.epsilon) + format_problems(net)


def require_usable(net: Network) -> Network:
    """Raise NetworkError naming the file and the first `usable_problems` entry; return `net`."""
    refuse_problems(net.source.path, usable_problems(net))
    return net


def format_problems(net: Network) -> list[str]:
    """Format enums and version fields that disagree with the weights present."""
    problems: list[str] = []
    f = net.format
    if net.family is Family.CHESS and not net.attention_body:
        if f.input is not None and f.input not in KNOWN_INPUT_FORMATS:
            problems.append(f"format.input: unknown input format {f.input}")
        has_se = any(r.se is not None for r in net.residual)
        kind = f.network_kind
        if kind in (NETWORK_SE, NETWORK_SE_WITH_HEADFORMAT) and net.residual and not has_se:
            problems.append(f"format.network: declared SE ({kind}) but no residual block has an SE unit")
        if kind in (NETWORK_CLASSICAL, NETWORK_CLASSICAL_WITH_HEADFORMAT) and has_se:
            first = next(i for i, r in enumerate(net.residual) if r.se is not None)
            problems.append(f"residual.{first}.se: SE unit present but the network format is CLASSICAL ({kind})")
        if f.policy_kind not in (POLICY_CLASSICAL, POLICY_CONVOLUTION):
            problems.append(f"format.policy: policy format {f.policy_kind} is not a convolutional-network head")
        if f.policy_kind == POLICY_CONVOLUTION and (net.ip_pol_w is not None or net.ip_pol_b is not None):
            problems.append("ip_pol_w: present but the policy format is CONVOLUTION (it has no FC layer)")
        if f.value_kind not in (VALUE_CLASSICAL, VALUE_WDL):
            problems.append(f"format.value: value format {f.value_kind} is not supported by this network layout")
        if f.moves_left_kind not in (MOVES_LEFT_NONE, MOVES_LEFT_V1):
            problems.append(f"format.moves_left: unknown moves-left format {f.moves_left_kind}")
        if f.moves_left_kind == MOVES_LEFT_NONE and (net.moves_left is not None or net.ip1_mov_w is not None):
            problems.append("moves_left: weights present but the format declares no moves-left head")
        if f.activation not in (ACTIVATION_RELU, ACTIVATION_MISH):
            problems.append(f"format.default_activation: unknown activation {f.activation}")
        if f.output not in (None, OUTPUT_CLASSICAL, OUTPUT_WDL):
            problems.append(f"format.output: unknown output format {f.output}")
        if f.network_kind not in (NETWORK_CLASSICAL, NETWORK_SE, NETWORK_CLASSICAL_WITH_HEADFORMAT,
                                  NETWORK_SE_WITH_HEADFORMAT):
            problems.append(f"format.network: network format {f.network_kind} is not a convolutional network")
    if net.weights_encoding not in (None, 0, 1):
        problems.append(f"format.weights_encoding: {net.weights_encoding} is not LINEAR16; lc0 rejects it unless "
                        "min_version ≥ 0.33")
    return problems


def header_problems(net: Network) -> list[str]:
    """Header fields that make engines refuse a file and that every writer settles (min_version,
    an absent Format.weights_encoding): a problem of a file, not of the network in it."""
    problems: list[str] = []
    below_033 = net.min_version is None or net.min_version < versions.LAYER_ENCODINGS
    if net.source.kind == "pb" and net.weights_encoding in (None, 0) and below_033:
        problems.append("format.weights_encoding: absent or UNKNOWN, not LINEAR16; lc0 before v0.33 refuses the "
                        "file (\"unsupported encoding\")")
    if net.min_version is not None and net.source.kind == "pb":
        need = versions.required(net)
        if net.min_version < need:
            problems.append(f"min_version: {versions.fmt(net.min_version)} is below {versions.fmt(need)}, "
                            "which the file's architecture and layer encodings need")
    return problems


# -- reports -----------------------------------------------------------------------

@dataclass
class HeadResult:
    """One output head's differences over all positions (max and mean absolute)."""

    head: str
    max_abs: float
    mean_abs: float
    limit: float
    floor: float | None = None  # max of the two floors below (compare only)
    floor_reencode: float | None = None  # REF vs REF re-encoded in NET's encoding
    floor_rounding: float | None = None  # REF vs REF with every parameter moved by its encoding's rounding bound

    @property
    def passed(self) -> bool:
        return bool(self.max_abs <= self.limit)

    def to_dict(self) -> dict:
        return {"head": self.head, "max_abs": self.max_abs, "mean_abs": self.mean_abs, "floor": self.floor,
                "floor_reencode": self.floor_reencode, "floor_rounding": self.floor_rounding,
                "limit": self.limit, "passed": self.passed}


@dataclass
class Report:
    """The result of `compare` or `backwards_compatible`: numbers per head and why it failed."""

    kind: str  # "against" or "backwards_compatible"
    net: str
    ref: str
    net_semantics: str
    ref_semantics: str
    positions: int
    seed: int
    heads: list[HeadResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encoding: str | None = None  # NET's dominant encoding (the floor's encoding)
    k: float | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def head(self, name: str) -> HeadResult | None:
        return next((h for h in self.heads if h.head == name), None)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "passed": self.passed, "net": self.net, "ref": self.ref,
            "net_semantics": self.net_semantics, "ref_semantics": self.ref_semantics,
            "positions": self.positions, "seed": self.seed, "encoding": self.encoding, "k": self.k,
            "allowance": ALLOWANCE, "heads": [h.to_dict() for h in self.heads],
            "reasons": list(self.reasons), "notes": list(self.notes),
        }

    def render(self) -> str:
        if self.kind == "backwards_compatible":
            title = (f"backwards compatible (legacy engines, γ/β ignored): {'yes' if self.passed else 'no'}")
        else:
            title = (f"against {self.ref} ({self.net_semantics} vs {self.ref_semantics}): "
                     f"{'pass' if self.passed else 'FAIL'}")
        lines = [title, f"  {self.positions} positions, seed {self.seed}"
                 + (f"; noise floor: REF re-encoded as {self.encoding}, pass ≤ {self.k:g}×floor + allowance"
                    if self.k is not None else "")]
        header = f"  {'head':<24}{'max |diff|':>12}{'mean |diff|':>13}"
        if self.k is not None:
            header += f"{'floor':>12}"
        header += f"{'limit':>12}  ok"
        lines.append(header)
        for h in self.heads:
            row = f"  {HEAD_LABELS.get(h.head, h.head):<24}{h.max_abs:>12.3e}{h.mean_abs:>13.3e}"
            if self.k is not None:
                row += f"{h.floor:>12.3e}"
            row += f"{h.limit:>12.3e}  {'yes' if h.passed else 'NO'}"
            lines.append(row)
        lines += [f"  - {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# -- comparisons ------------------------------------------------------------------------

def _head_arrays(out) -> dict[str, np.ndarray]:
    return {"policy": out.policy, "value": out.value, "wdl": out.wdl, "moves_left": out.moves_left}


def _diffs(a, b) -> dict[str, np.ndarray]:
    """Absolute differences of the heads both outputs have."""
    x, y = _head_arrays(a), _head_arrays(b)
    return {h: np.abs(x[h] - y[h]) for h in HEADS if x[h] is not None and y[h] is not None}


def _scale(ref_out, head: str) -> float:
    """1 for probabilities/value/WDL; the largest |moves-left| (plies) for moves left."""
    arr = _head_arrays(ref_out)[head]
    return max(1.0, float(np.abs(arr).max())) if head == "moves_left" else 1.0


def dominant_encoding(net: Network) -> Encoding:
    """The encoding holding most of `net`'s parameters."""
    counts = Counter()
    for _, t in net.tensors():
        counts[t.encoding] += t.size
    return counts.most_common(1)[0][0] if counts else Encoding.LINEAR16


def _rounded(ref: Network, encoding: Encoding, seed: int) -> Network:
    """REF with every parameter moved by a seeded uniform amount within the rounding bound of
    writing it afresh in `encoding` (at least float32's half ulp): the noise any file in
    that encoding carries, even when re-encoding REF itself is lossless. The noise is one seeded
    stream over the tensors in network order; each tensor's share of it is drawn when the tensor
    is read (tensor.Derived), from the stream advanced to where that share starts."""
    from lcconvert.transforms import map_tensors

    offset = [0]

    def rounded(_name, t: Tensor) -> Tensor:
        out = Derived(t, functools.partial(_perturbed, encoding=encoding, seed=seed + 0x5EED, offset=offset[0]))
        offset[0] += t.size  # one 64-bit draw per float64 uniform
        return out

    return map_tensors(ref, rounded)


def _perturbed(t: Tensor, encoding: Encoding, seed: int, offset: int) -> np.ndarray:
    """`t` moved within `encoding`'s rounding bound by the seeded stream's draws from `offset` on."""
    values = t.peek()  # decoded once: a peek keeps nothing, so a second one would decode again
    v = values.astype(np.float64)
    bound = np.maximum(np.asarray(codecs.rounding_bound(values, encoding), dtype=np.float64),
                       np.abs(v) * FLOAT32_HALF_ULP)
    stream = np.random.PCG64(seed)  # what np.random.default_rng(seed) draws from
    stream.advance(offset)
    v += np.random.Generator(stream).uniform(-1.0, 1.0, v.shape) * bound
    return v.astype(np.float32)


def _name(net: Network) -> str:
    return net.source.path


def _interface_reasons(net: Network, ref: Network) -> list[str]:
    reasons = []
    if net.family is not ref.family:
        reasons.append(f"NET is a {net.family.value} network, REF a {ref.family.value} network")
    for what, has_net, has_ref in (("WDL value", net.value_outputs == 3, ref.value_outputs == 3),
                                   ("moves-left head", net.has_moves_left, ref.has_moves_left)):
        if has_ref and not has_net:
            reasons.append(f"REF has a {what}, NET has none")
    from lcconvert.forward_attention import policy_head_names, value_head_names

    for kind, names in (("policy", policy_head_names), ("value", value_head_names)):
        missing = [h for h in names(ref) if h not in names(net)]
        if missing:
            reasons.append(f"REF has {kind} head(s) {', '.join(missing)}, NET has not")
    return reasons


def _head_choices(net: Network, ref: Network) -> list[tuple[str | None, str | None]]:
    """(policy head, value head) pairs to compare: the defaults, then every other head both networks
    offer (multi-head attention networks), each with the other side's default."""
    from lcconvert.forward_attention import policy_head_names, value_head_names

    policy = [p for p in policy_head_names(ref)[1:] if p in policy_head_names(net)]
    value = [v for v in value_head_names(ref)[1:] if v in value_head_names(net)]
    return [(None, None)] + [(p, None) for p in policy] + [(None, v) for v in value]


def _label(head: str, choice: tuple[str | None, str | None]) -> str:
    name = choice[0] if head == "policy" else choice[1] if head in ("value", "wdl") else None
    return head if name is None else f"{head}[{name}]"


def compare(net: Network, ref: Network, legacy: bool = False, positions: int = 32, seed: int = 0,
            planes=None, runs=None) -> Report:
    """NET (legacy semantics if `legacy`, else modern) against REF (modern) on seeded positions.

    Passes when every head's max |difference| ≤ K × noise floor + allowance, where the
    floor is the larger of (a) REF vs REF re-encoded in NET's dominant encoding and
    (b) REF vs REF with each parameter moved within that encoding's rounding bound,
    both measured here on the same positions. `planes` replaces the seeded positions;
    `runs` (engines.Evaluations of NET on those planes) shares NET's passes with other checks.
    """
    from lcconvert.engines import LEGACY, MODERN, Evaluations
    from lcconvert.positions import random_planes
    from lcconvert.transforms import reencode

    semantics = "legacy" if legacy else "modern"
    report = Report("against", _name(net), _name(ref), semantics, "modern", positions, seed, k=K)
    report.reasons += _interface_reasons(net, ref)
    if net.family is not ref.family:
        return report
    if runs is None:
        planes = random_planes(ref, positions, seed) if planes is None else planes
        runs = Evaluations(net, planes, DTYPE)
    planes = runs.planes
    encoding = dominant_encoding(net)
    report.encoding = encoding.name
    choices = _head_choices(net, ref)

    def modern(m: Network) -> list:
        return Evaluations(m, planes, DTYPE).heads(MODERN, choices)

    # REF already stored in `encoding` re-encodes to its very own tensors (Tensor.reencoded keeps
    # them): that floor is exactly 0 (every LINEAR16 input of fold-bias), so its pass is skipped.
    reencoded, _ = reencode(ref, encoding)
    if _same_tensors(reencoded, ref):
        reencoded = None
    with progress.stage("verifying: forward passes", total=3 if reencoded is None else 4) as bar:
        refs = modern(ref)
        bar.update(1)
        nets = runs.heads(LEGACY if legacy else MODERN, choices)
        bar.update(1)
        res = refs
        if reencoded is not None:
            res = modern(reencoded)
            reencoded = None  # a network the size of REF: built, used and dropped one at a time
            bar.update(1)
        rounds = modern(_rounded(ref, encoding, seed))
        bar.update(1)
    for choice, out_ref, out_net, out_re, out_round in zip(choices, refs, nets, res, rounds):
        floor_re, floor_round = _diffs(out_re, out_ref), _diffs(out_round, out_ref)
        for head, d in _diffs(out_net, out_ref).items():
            if choice != (None, None) and _label(head, choice) == head:
                continue  # a head the default choice already compared
            fr, fq = float(floor_re[head].max()), float(floor_round[head].max())
            floor = max(fr, fq)
            limit = K * floor + ALLOWANCE * _scale(out_ref, head)
            label = _label(head, choice)
            result = HeadResult(label, float(d.max()), float(d.mean()), limit, floor, fr, fq)
            report.heads.append(result)
            if not result.passed:
                report.reasons.append(f"{HEAD_LABELS.get(label, label)}: max difference {result.max_abs:.3e} "
                                      f"exceeds {K:g} × noise floor {floor:.3e} + allowance = {limit:.3e}")
    return report


def _same_tensors(a: Network, b: Network) -> bool:
    """Whether `a` and `b` hold the very same Tensor objects, layer for layer (so compute the same)."""
    ta, tb = list(a.tensors()), list(b.tensors())
    return len(ta) == len(tb) and all(na == nb and x is y for (na, x), (nb, y) in zip(ta, tb))


def backwards_compatible(net: Network, positions: int = 32, seed: int = 0, planes=None, runs=None) -> Report:
    """Would an engine that ignores γ and β (lc0 ≤ 0.19, Leela Zero) compute what lc0 ≥ 0.21 does?

    Same file, so no encoding noise: the modern and legacy outputs must agree within
    the arithmetic allowance. Also lists what stops old engines from loading the file
    at all (non-LINEAR16 layers, missing conv biases). FORMATS.md §3. `runs`
    (engines.Evaluations of NET) shares the passes with `generations`.
    """
    from lcconvert.engines import LEGACY, MODERN, Evaluations
    from lcconvert.positions import random_planes

    report = Report("backwards_compatible", _name(net), _name(net), "legacy", "modern", positions, seed)
    if runs is None:
        runs = Evaluations(net, random_planes(net, positions, seed) if planes is None else planes, DTYPE)
    with progress.stage("checking: forward passes", total=2) as bar:
        modern = runs(MODERN)
        bar.update(1)
        legacy = runs(LEGACY)  # the modern outputs themselves when no γ/β can be ignored
    for head, d in _diffs(legacy, modern).items():
        result = HeadResult(head, float(d.max()), float(d.mean()), ALLOWANCE * _scale(modern, head))
        report.heads.append(result)
    failed = [h for h in report.heads if not h.passed]
    if failed:
        learned = [name for name, b in net.bn_blocks()
                   if (b.gammas is not None and np.any(b.gammas.values != 1))
                   or (b.betas is not None and np.any(b.betas.values != 0))]
        worst = ", ".join(f"{h.head} {h.max_abs:.3g}" for h in failed)
        report.reasons.append(f"legacy semantics (γ and β ignored) change the outputs (max |diff|: {worst}); "
                              f"{len(learned)} block(s) carry learned γ/β, first {learned[0] if learned else '-'}")
    no_bias = [name for name, b in net.bn_blocks() if b.biases is None]
    if no_bias:
        report.reasons.append(f"{no_bias[0]}: no conv biases ({len(no_bias)} block(s)); lc0 ≤ 0.19 needs a "
                              "biases layer of C entries")
    if net.attention is not None:
        report.reasons.append("attention layers: lc0 ≤ 0.19 and Leela Zero cannot run this network at all "
                              f"(it needs lc0 ≥ {versions.fmt(versions.required(net, encodings=False))})")
    # Layer encodings exist only in protobuf files; text weights are decimal for every engine.
    not_linear = sorted({t.encoding.name for _, t in net.tensors() if not t.encoding.legacy_readable})
    if not_linear and net.source.kind != "text":
        report.reasons.append(f"layers encoded as {', '.join(not_linear)}: engines before lc0 v0.33 decode "
                              "every layer as LINEAR16")
    return report


# -- engine generations ------------------------------------------------------------------

@dataclass
class GenerationResult:
    """One engine generation on one file: does it compute what modern semantics compute?

    status: "correct", "differs", "undefined" (its output is not a function of the file),
    "cannot load" (it refuses or misreads the file), or "not evaluated" (no forward pass here).
    """

    generation: str
    status: str
    heads: list[HeadResult] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict:
        from lcconvert.engines import LABELS

        return {"generation": self.generation, "engines": LABELS[self.generation], "status": self.status,
                "correct": self.correct, "heads": [h.to_dict() for h in self.heads],
                "reasons": list(self.reasons), "notes": list(self.notes)}


@dataclass
class GenerationsReport:
    """Per engine generation, whether it computes what modern semantics compute (and by how much it differs)."""

    net: str
    positions: int
    seed: int
    results: list[GenerationResult] = field(default_factory=list)
    shown: tuple[str, ...] | None = None  # generations `render` details (None: all)

    @property
    def correct_by(self) -> list[str]:
        return [r.generation for r in self.results if r.correct]

    @property
    def passed(self) -> bool:
        return all(r.correct for r in self.results)

    @property
    def reasons(self) -> list[str]:
        return [f"{r.generation}: {r.status}" + (f" ({r.reasons[0]})" if r.reasons else "")
                for r in self.results if not r.correct]

    def summary_line(self) -> str:
        from lcconvert.engines import LABELS

        if self.results and all(r.status == "not evaluated" for r in self.results):
            return f"computed correctly by: not evaluated ({self.results[0].reasons[0]})"
        names = ", ".join(f"{g} ({LABELS[g]})" for g in self.correct_by) or "none of the engine generations"
        return f"computed correctly by: {names}"

    def to_dict(self) -> dict:
        return {"net": self.net, "positions": self.positions, "seed": self.seed, "passed": self.passed,
                "correct_by": self.correct_by, "generations": [r.to_dict() for r in self.results]}

    def render(self, detail: bool = True) -> str:
        from lcconvert.engines import LABELS

        lines = [self.summary_line()]
        shown = [r for r in self.results if self.shown is None or r.generation in self.shown]
        if not detail or not shown:
            return "\n".join(lines)
        lines.append(f"  engine generations against modern semantics, {self.positions} positions, seed {self.seed}")
        for r in shown:
            lines.append(f"  {r.generation:<10}{LABELS[r.generation]:<26}{r.status}")
            for h in r.heads:
                lines.append(f"    {HEAD_LABELS.get(h.head, h.head):<24}max |diff| {h.max_abs:.3e}  "
                             f"limit {h.limit:.3e}  {'yes' if h.passed else 'NO'}")
            lines += [f"    - {x}" for x in r.reasons]
            lines += [f"    note: {x}" for x in r.notes]
        return "\n".join(lines)


def generations(net: Network, which=None, positions: int = 32, seed: int = 0, planes=None, runs=None,
                measure_identical: bool = True) -> GenerationsReport:
    """Which engine generations (engines.py) compute, from this very file, what lc0 ≥ 0.21 computes.

    Same file, so no encoding noise for "modern" and "lc0-0.19": they must agree within the
    arithmetic allowance. lc0 0.20 decodes LINEAR16 with its own float32 rounding
    (engines.decode_v020); that decode's own effect — NET decoded its way, evaluated with
    modern semantics — is measured in the same run, and lc0-0.20 passes within K × it +
    allowance. (On legacy/classic-plain, which has no γ/β, the real v0.20.2 differs from
    current lc0 by 1e-6 in probability: that decode effect and nothing else.)

    A generation whose computation is modern semantics' own by construction
    (engines.same_in_every_generation: no γ/β layer, the engines' ε) passes without a
    pass of its own; `measure_identical` still measures its difference (lc0 0.20's decode
    effect, lc0 ≤ 0.19's exact 0) for the report, at the cost of the passes.
    `runs` (engines.Evaluations of NET) shares passes with other checks on the same positions.
    """
    from lcconvert import engines
    from lcconvert.forward import supported_problem
    from lcconvert.positions import random_planes

    which = tuple(engines.GENERATIONS if which is None else which)
    report = GenerationsReport(_name(net), positions, seed)
    why = supported_problem(net)
    if why:
        report.results = [GenerationResult(g, "not evaluated", reasons=[why]) for g in which]
        return report
    if runs is None:
        runs = engines.Evaluations(net, random_planes(net, positions, seed) if planes is None else planes, DTYPE)
    for g in which:
        engines.check_generation(g)
        result = GenerationResult(g, "correct")
        report.results.append(result)
        if g == "modern":
            continue
        undefined = engines.undefined(net, g)
        if undefined:
            result.status, result.reasons = "undefined", [undefined]
            continue
        problems = engines.load_problems(net, g)
        decode = engines.V020_DECODE if g == "lc0-0.20" else engines.MODERN
        if runs.same(g, decode) and not measure_identical:
            result.notes.append("computes modern semantics' own arithmetic on the file's numbers (no γ/β layer, "
                                "the engines' ε): no separate forward pass")
        else:
            modern, out = runs(engines.MODERN), runs(g)
            floor = _diffs(runs(decode), modern) if g == "lc0-0.20" else None
            for head, d in _diffs(out, modern).items():
                d = np.where(np.isfinite(d), d, np.inf)
                base = K * float(floor[head].max()) if floor is not None else 0.0
                result.heads.append(HeadResult(head, float(d.max()), float(d.mean()),
                                               base + ALLOWANCE * _scale(modern, head)))
        failed = [h for h in result.heads if not h.passed]
        if failed:
            result.status = "differs"
            result.reasons.append("max |diff|: " + ", ".join(f"{h.head} {h.max_abs:.3g}" for h in failed))
        if problems:
            result.status = "cannot load"
            result.reasons = problems + result.reasons
        need = versions.required(net)
        newest = (0, 20, 99) if g == "lc0-0.20" else (0, 19, 99)
        if need > newest:
            result.notes.append(f"batch-norm semantics only: this architecture needs lc0 ≥ {versions.fmt(need)}, "
                                f"which no {g} release loads")
    return report


@dataclass
class FoldVerification:
    """fold-bias's check of the written file: OUT (legacy) against IN (modern), and every engine
    generation on OUT itself; `to_dict` keeps the comparison's keys at the top level."""

    against: Report
    engines: GenerationsReport

    @property
    def passed(self) -> bool:
        return self.against.passed and self.engines.passed

    @property
    def reasons(self) -> list[str]:
        return self.against.reasons + [f"not computed correctly by {r}" for r in self.engines.reasons]

    def to_dict(self) -> dict:
        return {**self.against.to_dict(), "passed": self.passed, "reasons": self.reasons,
                "engines": self.engines.to_dict()}

    def render(self) -> str:
        return self.against.render() + "\n" + self.engines.render(detail=not self.engines.passed)


def fold_check(written: Network, source: Network, positions: int = 32, seed: int = 0) -> FoldVerification:
    """What fold-bias requires of OUT: legacy semantics of OUT match modern IN within K × the floor,
    and all three engine generations compute OUT as modern semantics do.

    One set of positions and one engines.Evaluations of OUT serve both checks: a fold writes no γ/β,
    so OUT's legacy pass is its modern pass and the older generations need no pass of their own
    (3 forward passes in all on a LINEAR16 input, where the checks asked separately ran 7)."""
    from lcconvert.engines import Evaluations
    from lcconvert.positions import random_planes

    runs = Evaluations(written, random_planes(source, positions, seed), DTYPE)
    # A network with attention layers loads only in lc0 ≥ 0.29 (modern semantics): older generations are
    # not asked to compute what they cannot load at all.
    which = ("modern",) if written.attention is not None else None
    return FoldVerification(compare(written, source, legacy=True, positions=positions, seed=seed, runs=runs),
                            generations(written, which, positions=positions, seed=seed, runs=runs,
                                        measure_identical=False))


def refusal(source: Network, report, verification, beta_into: str = "means", gamma_into: str = "auto",
            positions: int = 32, seed: int = 0) -> list[str]:
    """Why fold-bias refused, in lines a user can act on: the worst block and channel with its error,
    each failed head's measured difference against its limit, and what would pass — the same fold with
    FLOAT16 output (tried here; such a file needs lc0 ≥ 0.33, so no older engine reads it)."""
    from lcconvert import fold as fold_mod

    lines = []
    worst = report.worst if report is not None else None
    if worst is not None:
        lines.append(f"refused: worst block {worst.name}, channel {worst.worst_channel}: RMS error "
                     f"{worst.error:.3e} in activation units (strategy {worst.strategy})")
    against = getattr(verification, "against", verification)
    for h in against.heads:
        if not h.passed:
            lines.append(f"  {HEAD_LABELS[h.head]}: measured {h.max_abs:.3e} against a limit of {h.limit:.3e} "
                         f"({h.max_abs / h.floor if h.floor else float('inf'):.2f}× the rounding floor)")
    engines = getattr(verification, "engines", None)
    if engines is not None:
        lines += [f"  not computed correctly by {r}" for r in engines.reasons]
    try:
        alt, _ = fold_mod.fold(source, beta_into=beta_into, gamma_into=gamma_into, encoding=Encoding.FLOAT16)
        check = compare(alt, source, legacy=True, positions=positions, seed=seed)
    except Exception as e:  # noqa: BLE001 - advice only: any failure just means no alternative to offer
        lines.append(f"  would pass: nothing found (FLOAT16 output: {e})")
        return lines
    if check.passed:
        worst_head = max(check.heads, key=lambda h: h.max_abs / h.limit)
        lines.append(f"  would pass: FLOAT16 output (--encoding float16): {HEAD_LABELS[worst_head.head]} "
                     f"{worst_head.max_abs:.3e} against {worst_head.limit:.3e}; it needs lc0 ≥ 0.33, which "
                     "older engines cannot read")
    else:
        lines.append("  would pass: nothing tried (FLOAT16 output fails too: " + check.reasons[0] + ")")
    return lines
