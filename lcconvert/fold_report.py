"""What a fold did, as data (`FoldReport.to_dict()` for JSON) and as the text `fold-bias` prints.

Why apart from fold.py: the fold is math on a Network; this is what a user reads
about it. Rendering sits beside the report it renders (DESIGN.md: reports are
data, with `to_dict` and `render`), so a change of wording never touches the math.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lcconvert import versions

BETA_INTO = ("means", "biases")
GAMMA_INTO = ("auto", "variances", "weights")


@dataclass
class BlockReport:
    """What happened to one batch-norm block and how well the stored result reproduces it.

    Errors are in units of the block's output y (the activation input), as the
    root-mean-square over the training distribution the block's own statistics
    describe (z has mean μ − b and variance σ²):
      scale_error  |k̂/t̂ − γ/s|·σ_z           — a wrong per-channel scale, at one std of z
      offset_error |y'(E z) − y(E z)|        — a wrong per-channel offset, at the mean input
      noise_error  ‖Ŵ' − k·W‖/‖W‖·rms(z)/t̂  — re-quantized weights (0 when byte-copied)
      error        worst channel's √(scale² + offset² + noise²)
    `exact_error` is the same figure before encoding (float64 math only).
    """

    name: str
    strategy: str  # "unchanged", "variances", "weights" or "per-channel" (quantfold.py)
    changed: tuple[str, ...] = ()
    negated_channels: int = 0
    zeroed_channels: int = 0
    error: float = 0.0
    scale_error: float = 0.0
    offset_error: float = 0.0
    noise_error: float = 0.0
    worst_channel: int | None = None
    exact_error: float = 0.0
    candidates: dict = field(default_factory=dict)  # strategy -> error, or the reason it was not possible

    def to_dict(self) -> dict:
        return {
            "name": self.name, "strategy": self.strategy, "changed": list(self.changed),
            "negated_channels": self.negated_channels, "zeroed_channels": self.zeroed_channels,
            "error": self.error, "scale_error": self.scale_error, "offset_error": self.offset_error,
            "noise_error": self.noise_error, "worst_channel": self.worst_channel,
            "exact_error": self.exact_error, "candidates": dict(self.candidates),
        }


@dataclass
class FoldReport:
    beta_into: str
    gamma_into: str
    encoding: str | None
    train_epsilon: float
    engine_epsilon: float
    min_version_before: tuple[int, int, int] | None
    min_version_after: tuple[int, int, int] | None
    blocks: list[BlockReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Why there was no batch norm at all to fold (an attention body); None for batch-norm networks.
    nothing_to_fold: str | None = None

    @property
    def folded(self) -> list[BlockReport]:
        return [b for b in self.blocks if b.changed]

    @property
    def changed(self) -> bool:
        """False when the output network is the input network (same tensors, same header)."""
        return bool(self.folded) or self.min_version_before != self.min_version_after or bool(self.notes)

    @property
    def worst(self) -> BlockReport | None:
        return max(self.blocks, key=lambda b: b.error, default=None)

    @property
    def worst_error(self) -> float:
        return self.worst.error if self.blocks else 0.0

    def strategies(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for b in self.blocks:
            counts[b.strategy] = counts.get(b.strategy, 0) + 1
        return counts

    def to_dict(self) -> dict:
        worst = self.worst
        return {
            "beta_into": self.beta_into, "gamma_into": self.gamma_into, "encoding": self.encoding,
            "train_epsilon": self.train_epsilon, "engine_epsilon": self.engine_epsilon,
            "min_version_before": versions.fmt(self.min_version_before),
            "min_version_after": versions.fmt(self.min_version_after),
            "blocks_total": len(self.blocks), "blocks_folded": len(self.folded),
            "strategies": self.strategies(), "changed": self.changed,
            "worst_error": self.worst_error, "worst_block": worst.name if worst else None,
            "blocks": [b.to_dict() for b in self.blocks], "notes": list(self.notes),
            "nothing_to_fold": self.nothing_to_fold,
        }


# -- rendering ------------------------------------------------------------------------

_SHORT = {"weights": "W", "biases": "b", "means": "μ", "variances": "σ²", "gammas": "γ", "betas": "β"}


def render(report: FoldReport) -> str:
    """The plain-text summary `fold-bias` prints."""
    if report.nothing_to_fold:
        return "\n".join([f"no batch norm to fold: {report.nothing_to_fold}"] + [f"note: {n}" for n in report.notes])
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.strategies().items()))
    lines = [f"folded {len(report.folded)} of {len(report.blocks)} batch-norm blocks "
             f"(gamma into {report.gamma_into}: {counts}; beta into {report.beta_into}"
             + (f"; encoded as {report.encoding}" if report.encoding else "")
             + (f"; training ε {report.train_epsilon:g} → engine ε {report.engine_epsilon:g}"
                if report.train_epsilon != report.engine_epsilon else "") + ")",
             f"  {'block':<20}{'strategy':<12}{'rewritten':<17}{'error':>10}{'scale':>10}{'offset':>10}"
             f"{'noise':>10}  notes"]
    for b in report.blocks:
        rewritten = " ".join(_SHORT[f] for f in b.changed) or "-"
        extra = []
        if b.negated_channels:
            extra.append(f"{b.negated_channels} channel(s) negated")
        if b.zeroed_channels:
            extra.append(f"{b.zeroed_channels} zeroed")
        others = {n: v for n, v in b.candidates.items() if n != b.strategy}
        measured = {n: v for n, v in others.items() if isinstance(v, float)}
        if measured:  # the runner-up only; --json lists every candidate
            name = min(measured, key=measured.get)
            extra.append(f"next {name} {measured[name]:.2e}")
        extra += [f"{n}: refused" for n, v in others.items() if not isinstance(v, float) and n in GAMMA_INTO]
        lines.append(f"  {b.name:<20}{b.strategy:<12}{rewritten:<17}{b.error:>10.2e}{b.scale_error:>10.2e}"
                     f"{b.offset_error:>10.2e}{b.noise_error:>10.2e}  {'; '.join(extra)}")
    worst = report.worst
    if worst is not None:
        lines.append(f"  worst block: {worst.name}, channel {worst.worst_channel}: RMS error {worst.error:.3e} "
                     "in activation units (exact math before encoding: "
                     f"{max(b.exact_error for b in report.blocks):.1e})")
    if report.min_version_before is not None or report.min_version_after is not None:  # text weights have none
        lines.append(f"min_version {versions.fmt(report.min_version_before)} -> "
                     f"{versions.fmt(report.min_version_after)}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


