"""Per-layer statistics for `inspect --betas/--gammas/--layers`.

The question behind them: does a network use its batch-norm beta, and how?
Beta decides how much of each layer ReLU clips, and a folded network hides it in
other fields. So every row says which field the numbers came from, and a row
whose beta was folded into the means says "not recoverable" instead of zeros.

Effective beta of a channel (FORMATS.md §3: y = γ·(W∗x + b − μ)/√(σ²+ε) + β):

    β_eff = β + γ·b/√(σ²+ε)        (γ = 1, β = 0, b = 0 where a field is absent)

It is the explicit beta when the file has one, and the beta recovered from the
conv biases for files that store it there (Leela Zero and 2018-era Lc0 text
nets write b = β·√(σ²+ε); `fold-bias --beta-into biases` does the same). When
there is no beta, the biases are all zero and the means are not, beta may have
been folded into the means (μ' = μ − β·s/γ) and cannot be told apart from the
true running mean.

Only numbers live here; the CLI renders them (text, JSON, CSV) and plot.py draws them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lcconvert.codecs import LINEAR16_STEPS, Encoding
from lcconvert.errors import UnsupportedError
from lcconvert.network import ConvBlock, Network

SOURCE_BETAS = "betas"
SOURCE_BETAS_AND_BIASES = "betas+biases"
SOURCE_BIASES = "biases"
SOURCE_NONE = "none"  # no beta, zero biases, zero means: the shift really is zero
NOT_RECOVERABLE = "not recoverable"
SOURCE_GAMMAS = "gammas"
SOURCE_GAMMAS_ABSENT = "absent"  # engines use γ = 1

# A gamma this close to zero is flagged because folding it into the variances
# gives σ'² ≈ (σ²+ε)/γ² ≥ 1e4·(σ²+ε): FORMATS.md §3 measured a single channel with
# γ = 0.01 stretching a LINEAR16 variance layer to a 4.1% scale error, and
# γ = 1e-4 overflowing float16.
NEAR_ZERO_GAMMA = 0.01

LAYER_KEYS = ("name", "channels", "mean", "std", "min", "max", "fraction_negative", "relu_clip_fraction", "source")


@dataclass
class LayerStats:
    """Statistics of one batch-norm layer's per-channel values (betas or gammas)."""

    name: str
    channels: int
    source: str
    values: np.ndarray | None  # float64 per channel; None when not recoverable
    relu_clip: np.ndarray | None = None  # per channel, betas only
    near_zero_bound: float = NEAR_ZERO_GAMMA

    @property
    def recoverable(self) -> bool:
        return self.values is not None

    def _stat(self, fn):
        return None if self.values is None else float(fn(self.values))

    @property
    def mean(self):
        return self._stat(np.mean)

    @property
    def std(self):
        return self._stat(np.std)

    @property
    def min(self):
        return self._stat(np.min)

    @property
    def max(self):
        return self._stat(np.max)

    @property
    def fraction_negative(self):
        return self._stat(lambda v: np.mean(v < 0))

    @property
    def relu_clip_fraction(self):
        return None if self.relu_clip is None else float(np.mean(self.relu_clip))

    @property
    def negative(self) -> int | None:
        return None if self.values is None else int(np.sum(self.values < 0))

    @property
    def near_zero(self) -> int | None:
        return None if self.values is None else int(np.sum(np.abs(self.values) < self.near_zero_bound))

    def to_dict(self, kind: str) -> dict:
        d = {k: getattr(self, k) for k in LAYER_KEYS}
        if kind == "gammas":
            d["negative"] = self.negative
            d["near_zero"] = self.near_zero
        return d


@dataclass
class StatsTable:
    """One table of `inspect`: its kind ("betas"/"gammas"), rows in network order and a summary."""

    kind: str
    layers: list[LayerStats]
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"layers": [row.to_dict(self.kind) for row in self.layers], "summary": self.summary}


def _require_conv_net(net: Network) -> None:
    if (net.attention_body or net.format.is_attention) and net.attention is None:
        raise UnsupportedError(net.source.path, "attention network: not a batch-norm network, "
                                                "per-layer statistics cover convolution networks only")


SOURCE_LN_BETAS, SOURCE_LN_GAMMAS = "layer-norm betas", "layer-norm gammas"


def layer_norms(net: Network):
    """(name, γ tensor, β tensor) of every layer norm of the attention layers, in file order, named by
    path without the suffix (`encoder.0.ln1`, `encoder.0.mha.smolgen.ln2`, `ip_emb_ln`)."""
    if net.attention is None:
        return
    for path, gammas in net.attention.tensors.items():
        if path.endswith("_gammas"):
            yield path[: -len("_gammas")], gammas, net.attention.get(path[: -len("_gammas")] + "_betas")


def _layer_norm_rows(net: Network, kind: str, near_zero: float = NEAR_ZERO_GAMMA) -> list[LayerStats]:
    """Layer-norm γ or β per layer: per-position statistics at run time, so nothing to fold, but the
    learned γ/β tell the same story as a batch norm's (what a layer scales up, shifts, switches off)."""
    rows = []
    for name, gammas, betas in layer_norms(net):
        t = gammas if kind == "gammas" else betas
        if t is None or t.size == 0:
            continue
        source = SOURCE_LN_GAMMAS if kind == "gammas" else SOURCE_LN_BETAS
        rows.append(LayerStats(name, t.size, source, _f64(t), near_zero_bound=near_zero))
    return rows


def _f64(t) -> np.ndarray | None:
    return None if t is None else t.values.astype(np.float64)


def effective_betas(block: ConvBlock, epsilon: float) -> tuple[np.ndarray | None, str]:
    """(β_eff per channel in float64, source) of one batch-norm block; values None when not recoverable."""
    c = block.out_channels
    betas, biases, gammas = _f64(block.betas), _f64(block.biases), _f64(block.gammas)
    means, variances = _f64(block.means), _f64(block.variances)
    has_bias = biases is not None and bool(np.any(biases != 0))
    if has_bias and betas is None and means is not None and block.means.encoding is Encoding.LINEAR16:
        # fold-bias --beta-into means writes the means' own LINEAR16 rounding residual into the biases
        # (quantfold.split_offset): within one means step they say nothing about β.
        step = (float(means.max()) - float(means.min())) / LINEAR16_STEPS
        has_bias = bool(np.any(np.abs(biases) > step))
    if betas is None and not has_bias:
        if means is not None and bool(np.any(means != 0)):
            return None, NOT_RECOVERABLE
        return np.zeros(c), SOURCE_NONE
    gamma = np.ones(c) if gammas is None else gammas
    beta = np.zeros(c) if betas is None else betas
    if has_bias:
        # Without variances there is no normalization: the bias is the shift itself.
        scale = np.ones(c) if variances is None else np.sqrt(variances + epsilon)
        beta = beta + gamma * biases / scale
    if betas is None:
        return beta, SOURCE_BIASES
    return beta, SOURCE_BETAS_AND_BIASES if has_bias else SOURCE_BETAS


def relu_clip(beta_eff: np.ndarray, gammas: np.ndarray | None) -> np.ndarray:
    """Per channel: the fraction of outputs ReLU clips, Φ(−β_eff/|γ|), for a unit-normal normalized input.

    The BN output is γ·x̂ + β_eff with x̂ ~ N(0, 1), which is negative with
    probability Φ(−β_eff/|γ|). A channel with γ = 0 outputs the constant β_eff:
    clipped entirely when β_eff < 0, never when > 0, and Φ(0) = 1/2 at β_eff = 0
    (the value every γ ≠ 0 gives there).
    """
    gamma = np.ones_like(beta_eff) if gammas is None else np.abs(gammas)
    out = np.empty_like(beta_eff)
    for i, (b, g) in enumerate(zip(beta_eff, gamma)):
        if g == 0:
            out[i] = 1.0 if b < 0 else 0.0 if b > 0 else 0.5
        else:
            out[i] = 0.5 * (1.0 + math.erf(-b / g / math.sqrt(2.0)))
    return out


def beta_stats(net: Network) -> StatsTable:
    """Effective betas of every batch-norm layer, in network order, with a whole-network summary."""
    _require_conv_net(net)
    rows = []
    for name, block in net.bn_blocks():
        values, source = effective_betas(block, net.epsilon)
        clip = None if values is None else relu_clip(values, _f64(block.gammas))
        rows.append(LayerStats(name, block.out_channels, source, values, clip))
    rows += _layer_norm_rows(net, "betas")
    return StatsTable("betas", rows, _beta_summary(rows))


def gamma_stats(net: Network, near_zero: float = NEAR_ZERO_GAMMA) -> StatsTable:
    """Gammas of every batch-norm layer (absent = 1, as engines read them), with negative/near-zero counts."""
    _require_conv_net(net)
    rows = []
    for name, block in net.bn_blocks():
        c = block.out_channels
        if block.gammas is None:
            rows.append(LayerStats(name, c, SOURCE_GAMMAS_ABSENT, np.ones(c), near_zero_bound=near_zero))
        else:
            rows.append(LayerStats(name, c, SOURCE_GAMMAS, _f64(block.gammas), near_zero_bound=near_zero))
    rows += _layer_norm_rows(net, "gammas", near_zero)
    return StatsTable("gammas", rows, _gamma_summary(rows, near_zero))


def _median(xs):
    return float(np.median(xs)) if xs else None


def _beta_summary(rows: list[LayerStats]) -> dict:
    known = [r for r in rows if r.recoverable]
    means = [r.mean for r in known]
    negative = sum(1 for m in means if m < 0)
    sources: dict[str, int] = {}
    for r in rows:
        sources[r.source] = sources.get(r.source, 0) + 1
    lost = len(rows) - len(known)
    if known:
        text = f"betas negative in {negative} of {len(known)} layers; median layer mean {_median(means):+.3g}"
        if lost:
            text += f"; {lost} layer{'s' if lost > 1 else ''} not recoverable (beta folded into the means)"
    else:
        text = (f"betas not recoverable in any of {len(rows)} layers: no betas, biases all zero, "
                "means non-zero (any beta is folded into the means)")
    allv = np.concatenate([r.values for r in known]) if known else None
    return {
        "layers": len(rows),
        "recoverable_layers": len(known),
        "negative_layers": negative,  # layers whose mean effective beta is below zero
        "median_layer_mean": _median(means),
        "min": None if allv is None else float(allv.min()),
        "max": None if allv is None else float(allv.max()),
        "fraction_negative": None if allv is None else float(np.mean(allv < 0)),
        "relu_clip_fraction": _median([r.relu_clip_fraction for r in known if r.relu_clip is not None]),
        "sources": sources,
        "text": text,
    }


def _gamma_summary(rows: list[LayerStats], near_zero: float) -> dict:
    explicit = [r for r in rows if r.source in (SOURCE_GAMMAS, SOURCE_LN_GAMMAS)]
    learned = [r for r in explicit if bool(np.any(r.values != 1.0))]
    negative = sum(r.negative for r in rows)
    tiny = sum(r.near_zero for r in rows)
    means = [r.mean for r in rows]
    allv = np.concatenate([r.values for r in rows]) if rows else np.zeros(0)
    text = (f"gammas learned in {len(learned)} of {len(rows)} layers (the others absent or exactly 1); "
            f"{negative} negative, {tiny} near zero (|γ| < {near_zero:g}); median layer mean {_median(means):.2f}"
            if rows else "no batch-norm layers")
    return {
        "layers": len(rows),
        "explicit_layers": len(explicit),
        "learned_layers": len(learned),
        "negative": negative,
        "near_zero": tiny,
        "near_zero_bound": near_zero,
        "median_layer_mean": _median(means),
        "min": float(allv.min()) if allv.size else None,
        "max": float(allv.max()) if allv.size else None,
        "text": text,
    }


# -- every tensor --------------------------------------------------------------

@dataclass
class TensorStats:
    name: str
    size: int
    encoding: str
    min: float
    max: float
    mean: float
    std: float
    l2: float
    linear16_min: float | None  # the range LINEAR16 stores (or would store) for this tensor
    linear16_max: float | None
    linear16_step: float | None  # one quantization step, (max − min)/65535

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def linear16_range(t) -> tuple[float, float]:
    """The min/max a LINEAR16 layer holds for `t`: the stored ones, or what the encoder would choose."""
    if t.encoding is Encoding.LINEAR16 and t.min_val is not None and t.max_val is not None:
        return float(t.min_val), float(t.max_val)
    v = t.values
    if v.size == 1:  # the training encoder's single-element rule (FORMATS.md §1)
        return 0.0, float(v[0]) if v[0] != 0 else 1.0
    return float(v.min()), float(v.max())


def tensor_stats(net: Network) -> tuple[list[TensorStats], dict]:
    """min/max/mean/std/L2 of every tensor in network order, with its encoding and LINEAR16 range."""
    _require_conv_net(net)
    rows = []
    for name, t in net.tensors():
        v = t.values.astype(np.float64)
        if v.size == 0:
            continue
        lo, hi = linear16_range(t)
        rows.append(TensorStats(
            name=name, size=int(v.size), encoding=t.encoding.name,
            min=float(v.min()), max=float(v.max()), mean=float(v.mean()), std=float(v.std()),
            l2=float(np.sqrt(np.dot(v, v))),
            linear16_min=lo, linear16_max=hi, linear16_step=(hi - lo) / LINEAR16_STEPS,
        ))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.encoding] = counts.get(r.encoding, 0) + 1
    widest = max(rows, key=lambda r: r.linear16_step, default=None)
    summary = {
        "tensors": len(rows),
        "parameters": sum(r.size for r in rows),
        "encodings": counts,
        "largest_abs": max((max(abs(r.min), abs(r.max)) for r in rows), default=None),
        "coarsest_linear16": None if widest is None else widest.name,
        "text": (f"{len(rows)} tensors, {sum(r.size for r in rows):,} parameters; encodings "
                 + ", ".join(f"{k} {n}" for k, n in counts.items())
                 + ("" if widest is None else
                    f"; coarsest LINEAR16 step {widest.linear16_step:.3g} ({widest.name})")),
    }
    return rows, summary


# -- rendering -----------------------------------------------------------------

def _num(x, fmt="{:+8.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def render_table(table: StatsTable) -> str:
    """Plain-text table of one StatsTable, then its summary line."""
    if table.kind == "betas":
        title = "effective betas  β + γ·b/√(σ²+ε)"
        extra_head = f"{'neg':>6} {'relu clip':>9}"
    else:
        title = "gammas  (absent = 1)"
        extra_head = f"{'neg':>4} {'~0':>4}"
    width = max([len(r.name) for r in table.layers] + [5])
    head = (f"{'layer':<{width}} {'ch':>4} {'mean':>8} {'std':>8} {'min':>8} {'max':>8} {extra_head}  source")
    lines = [title, head]
    for r in table.layers:
        start = f"{r.name:<{width}} {r.channels:>4} "
        if not r.recoverable:
            lines.append(start + "not recoverable: no betas and all-zero biases; any beta is folded into the means")
            continue
        nums = " ".join([_num(r.mean), _num(r.std, "{:8.4f}"), _num(r.min), _num(r.max)])
        if table.kind == "betas":
            extra = f"{r.fraction_negative:>6.1%} {_num(r.relu_clip_fraction, '{:9.3f}'):>9}"
        else:
            extra = f"{r.negative:>4} {r.near_zero:>4}"
        lines.append(f"{start}{nums} {extra}  {r.source}")
    lines.append(f"summary: {table.summary['text']}")
    return "\n".join(lines)


def render_tensors(rows: list[TensorStats], summary: dict) -> str:
    width = max([len(r.name) for r in rows] + [6])
    lines = [f"{'tensor':<{width}} {'size':>8} {'encoding':<8} {'min':>10} {'max':>10} {'mean':>10} "
             f"{'std':>10} {'L2':>10}  LINEAR16 range (step)"]
    for r in rows:
        rng = f"[{r.linear16_min:.6g}, {r.linear16_max:.6g}] ({r.linear16_step:.3g})"
        lines.append(f"{r.name:<{width}} {r.size:>8} {r.encoding:<8} {r.min:>10.4g} {r.max:>10.4g} "
                     f"{r.mean:>10.4g} {r.std:>10.4g} {r.l2:>10.4g}  {rng}")
    lines.append(f"summary: {summary['text']}")
    return "\n".join(lines)


CSV_COLUMNS = ("table",) + LAYER_KEYS + ("negative", "near_zero", "size", "encoding", "l2",
                                          "linear16_min", "linear16_max", "linear16_step")


def csv_rows(tables: list[StatsTable], tensors: list[TensorStats] | None) -> list[dict]:
    """One dict per row for a single CSV with a `table` column (betas, gammas, tensors)."""
    rows = []
    for table in tables:
        for r in table.layers:
            rows.append({"table": table.kind, **r.to_dict(table.kind)})
    for t in tensors or ():
        rows.append({"table": "tensors", **t.to_dict()})
    return rows


def to_csv(tables: list[StatsTable], tensors: list[TensorStats] | None) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(tables, tensors):
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()
