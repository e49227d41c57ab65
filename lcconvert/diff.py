"""`lcconvert diff A B`: what a conversion, a fold or a training step changed, tensor by tensor.

Two networks are comparable when they have the same architecture (family,
blocks, filters, SE size, heads) and every tensor present in both has the same
length; otherwise the comparison stops with the reason. Optional batch-norm
fields may be present in one network and absent in the other (a fold removes γ
and β and adds biases): such a tensor is reported as "only in A/B" and, where an
engine gives the absent field a value (γ = 1, β = 0, b = 0), its numbers are
measured against that value. Identical stored bytes are recognised without
decoding, so diffing two large nets that share most layers is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lcconvert.constants import HEAD_CONV_SLOTS
from lcconvert.errors import NetworkError, UnsupportedError
from lcconvert.network import Network

SAME, CHANGED, REENCODED, ONLY_A, ONLY_B = "same", "changed", "re-encoded", "only in A", "only in B"

# What engines read for an absent ConvBlock field (FORMATS.md §3).
ABSENT_DEFAULTS = {"gammas": 1.0, "betas": 0.0, "biases": 0.0}


@dataclass
class TensorDiff:
    name: str
    status: str
    size: int
    encoding_a: str | None
    encoding_b: str | None
    max_abs: float | None = None
    mean_abs: float | None = None
    rel_l2: float | None = None  # ‖B − A‖ / ‖A‖; None when ‖A‖ = 0 and B ≠ A, or nothing to compare against
    max_abs_index: int | None = None

    @property
    def differs(self) -> bool:
        return self.status != SAME

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DiffReport:
    a: str
    b: str
    architecture: str
    tensors: list[TensorDiff]
    metadata: list[dict] = field(default_factory=list)  # {"field", "a", "b"} for header fields that differ

    @property
    def differing(self) -> list[TensorDiff]:
        return [t for t in self.tensors if t.differs]

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "architecture": self.architecture,
            "compared": len(self.tensors),
            "differing": [t.name for t in self.differing],
            "metadata": self.metadata,
            "tensors": [t.to_dict() for t in self.tensors],
        }


def _architecture(net: Network) -> dict:
    if net.has_attention_body:
        att = net.attention
        emb = att.get("ip_emb_b")
        return {"family": net.family.value, "body": "attention", "encoders": att.repeated("encoder"),
                "embedding": emb.size if emb is not None else None, "heads": att.count("headcount"),
                "policy": net.format.policy_kind, "value_outputs": net.value_outputs}
    return {
        "family": net.family.value,
        "blocks": net.blocks,
        "filters": net.filters,
        "se_channels": net.se_channels,
        "policy": net.format.policy_kind,
        "value_outputs": net.value_outputs,
        "heads": tuple(slot for slot in HEAD_CONV_SLOTS if getattr(net, slot) is not None),
    }


def _describe(arch: dict) -> str:
    if arch.get("body") == "attention":
        return (f"{arch['family']}, attention body: {arch['encoders']} encoder layers x {arch['embedding']} "
                f"embedding, {arch['heads']} heads")
    se = f", SE {arch['se_channels']}" if arch["se_channels"] else ""
    return f"{arch['family']}, {arch['blocks']} block{'' if arch['blocks'] == 1 else 's'} x {arch['filters']} filters{se}"


def architecture_problems(a: Network, b: Network) -> list[str]:
    """Why A and B cannot be compared tensor by tensor; empty when they can."""
    arch_a, arch_b = _architecture(a), _architecture(b)
    keys = list(arch_a) + [k for k in arch_b if k not in arch_a]
    problems = [f"{k}: A has {arch_a.get(k, '-')}, B has {arch_b.get(k, '-')}" for k in keys
                if arch_a.get(k) != arch_b.get(k)]
    if problems:
        return problems
    sizes_b = {name: t.size for name, t in b.tensors()}
    for name, t in a.tensors():
        if name in sizes_b and sizes_b[name] != t.size:
            problems.append(f"{name}: {t.size} values in A, {sizes_b[name]} in B")
    return problems


def _union_order(names_a: list[str], names_b: list[str]) -> list[str]:
    """A's order, with each B-only name inserted after its predecessor in B."""
    out = list(names_a)
    seen = set(out)
    for i, name in enumerate(names_b):
        if name in seen:
            continue
        at = out.index(names_b[i - 1]) + 1 if i > 0 else 0
        out.insert(at, name)
        seen.add(name)
    return out


def _same_bytes(ta, tb) -> bool:
    return (ta.encoding is tb.encoding and ta.raw is not None and tb.raw is not None
            and ta.min_val == tb.min_val and ta.max_val == tb.max_val and ta.raw == tb.raw)


def _measure(d: TensorDiff, va: np.ndarray, vb: np.ndarray) -> None:
    diff = np.abs(vb - va)
    norm_a = float(np.sqrt(np.dot(va, va)))
    norm_d = float(np.sqrt(np.dot(diff, diff)))
    d.max_abs = float(diff.max()) if diff.size else 0.0
    d.mean_abs = float(diff.mean()) if diff.size else 0.0
    d.max_abs_index = int(np.argmax(diff)) if diff.size else None
    d.rel_l2 = norm_d / norm_a if norm_a > 0 else (0.0 if norm_d == 0 else None)


def _tensor_diff(name: str, ta, tb) -> TensorDiff:
    if ta is not None and tb is not None:
        d = TensorDiff(name, SAME, ta.size, ta.encoding.name, tb.encoding.name)
        if _same_bytes(ta, tb):
            d.max_abs = d.mean_abs = d.rel_l2 = 0.0
            return d
        va, vb = ta.values.astype(np.float64), tb.values.astype(np.float64)
        _measure(d, va, vb)
        if d.max_abs > 0:
            d.status = CHANGED
        elif ta.encoding is not tb.encoding:
            d.status = REENCODED
        return d
    present = ta if ta is not None else tb
    d = TensorDiff(name, ONLY_A if ta is not None else ONLY_B, present.size,
                   ta.encoding.name if ta is not None else None, tb.encoding.name if tb is not None else None)
    default = ABSENT_DEFAULTS.get(name.rsplit(".", 1)[-1])
    if default is not None:
        absent = np.full(present.size, default)
        va = ta.values.astype(np.float64) if ta is not None else absent
        vb = tb.values.astype(np.float64) if tb is not None else absent
        _measure(d, va, vb)
    return d


def _metadata(a: Network, b: Network) -> list[dict]:
    from lcconvert import versions

    rows = []

    def add(name, x, y):
        if x != y:
            rows.append({"field": name, "a": x, "b": y})

    add("min_version", versions.fmt(a.min_version) if a.min_version else None,
        versions.fmt(b.min_version) if b.min_version else None)
    add("weights_encoding", a.weights_encoding, b.weights_encoding)
    for f in a.format.FIELDS:
        add(f"format.{f}", getattr(a.format, f), getattr(b.format, f))
    add("license", a.license, b.license)
    add("epsilon", a.epsilon, b.epsilon)
    return rows


def compare(a: Network, b: Network) -> DiffReport:
    """Per-tensor max/mean absolute and relative L2 differences of B against A."""
    for net in (a, b):
        if net.attention_body and net.attention is None:
            raise UnsupportedError(net.source.path, "ONNX network: diff compares networks with modelled layers")
    problems = architecture_problems(a, b)
    if problems:
        more = f" (and {len(problems) - 1} more; --all lists them)" if len(problems) > 1 else ""
        err = NetworkError(b.source.path, f"not the same architecture as {a.source.path}: {problems[0]}{more}")
        err.problems = problems
        raise err
    tensors_a, tensors_b = dict(a.tensors()), dict(b.tensors())
    order = _union_order(list(tensors_a), list(tensors_b))
    diffs = [_tensor_diff(name, tensors_a.get(name), tensors_b.get(name)) for name in order]
    return DiffReport(a.source.path, b.source.path, _describe(_architecture(a)), diffs, _metadata(a, b))


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def render(report: DiffReport) -> str:
    """Text report: the differing tensors only (every tensor is in the JSON)."""
    lines = [f"A: {report.a}", f"B: {report.b}", f"architecture: {report.architecture}"]
    for m in report.metadata:
        lines.append(f"{m['field']}: {m['a']} -> {m['b']}")
    differing = report.differing
    if not differing:
        lines.append(f"no differences: all {len(report.tensors)} tensors identical")
        return "\n".join(lines)
    lines.append(f"{len(differing)} of {len(report.tensors)} tensors differ "
                 "(numbers for a field present on one side only are against the value engines use when it "
                 "is absent: gammas 1, betas 0, biases 0)")
    width = max(len(t.name) for t in differing)
    lines.append(f"{'tensor':<{width}} {'status':<10} {'size':>8} {'max abs':>10} {'mean abs':>10} "
                 f"{'rel L2':>10}  encoding")
    for t in differing:
        enc = t.encoding_a if t.encoding_a == t.encoding_b else f"{t.encoding_a or '-'} -> {t.encoding_b or '-'}"
        rel = "inf" if t.rel_l2 is None and t.max_abs else _g(t.rel_l2)
        lines.append(f"{t.name:<{width}} {t.status:<10} {t.size:>8} {_g(t.max_abs):>10} {_g(t.mean_abs):>10} "
                     f"{rel:>10}  {enc}")
    return "\n".join(lines)
