"""Precise batch norm: each layer's means and variances measured on real positions, in inference semantics.

Why: the statistics stored in a network are exponential moving averages taken
while the weights were still changing, so they are not the statistics the final
weights produce. Recalibration measures them instead ("precise BN"): the
statistics of every batch-norm layer's input — the convolution output plus its
bias, as modern engines compute y = γ·(conv + b − μ)/√(σ² + ε) + β — when every
earlier layer already uses its *recalibrated* statistics. So the layers are
measured one after another in forward order, and each measurement is a full pass
over the data.

This module is the pure part (no files, no cluster): the per-channel accumulator,
the layer-by-layer forward stages, the network with the new statistics, the
comparison with the stored ones and the fit to training targets. `recalibrate_run`
maps it over data partitions, in one process or on a Dask cluster.

Exactness (tested in tests/test_recalibrate.py):
- Activations are computed in float64. A float32 forward gives per-row results that
  depend on the batch the row is in (BLAS blocking), ~1e-7 relative, which would
  make the statistics depend on the batch size; in float64 that noise is ~1e-16.
- Statistics are accumulated per channel as (count, mean, M2) in float64: each
  partition's by two passes (mean, then the sum of squared deviations), partitions
  merged by Chan et al.'s parallel formula — never E[x²] − E[x]², which cancels
  catastrophically when |mean| ≫ std.
- Variances are population variances (M2 / count): at inference the normalisation
  divides by √(σ² + ε), and the population variance is what makes its output
  unit-variance over the data.
- Memory: a partition's state holds at most two activations of one layer
  (the residual stream and the pending convolution output), never the whole
  network's activations.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import numpy as np

from lcconvert import forward
from lcconvert.codecs import Encoding, check_encodable
from lcconvert.constants import POLICY_CONVOLUTION, VALUE_WDL, Family
from lcconvert.errors import NetworkError, UnsupportedError
from lcconvert.network import Network
from lcconvert.tensor import Tensor

HEADS = "heads"  # the stage that measures every head's first batch norm (all read the tower's output)


# -- the accumulator -----------------------------------------------------------

@dataclass
class Moments:
    """Per-channel count, mean and M2 (sum of squared deviations from the mean), float64."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """Moments of the rows of x [..., C] (two passes in float64)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        mean = x.mean(axis=0)
        d = x - mean
        return cls(int(x.shape[0]), mean, np.einsum("ij,ij->j", d, d))

    def merge(self, other: Moments) -> Moments:
        """Chan, Golub & LeVeque (1979): the moments of the union of two disjoint sets."""
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def variance(self) -> np.ndarray:
        return self.m2 / self.count


def merge_all(parts) -> dict[str, Moments]:
    """Merge dicts of {layer: Moments} in the given order (callers fix the order for reproducibility)."""
    out: dict[str, Moments] = {}
    for part in parts:
        for name, m in part.items():
            out[name] = out[name].merge(m) if name in out else m
    return out


# -- the layer-by-layer forward pass ---------------------------------------------

def refusal(net: Network) -> str | None:
    """Why `net` cannot be recalibrated from lc0 training data, or None."""
    if net.family is not Family.CHESS:
        return "a Leela Zero Go network: recalibration reads lc0 chess training data"
    why = forward.supported_problem(net)
    if why:
        if "attention" in why:
            return "attention network: it has no batch normalisation to recalibrate (layer norms only)"
        return why.replace("not evaluated", "not supported")
    if not any(True for _ in net.bn_blocks()):
        if net.attention is not None:
            return "attention network: it has no batch normalisation to recalibrate (layer norms only)"
        return "the network has no batch-norm layers"
    return None


class Plan:
    """A network prepared for stage-wise evaluation: its convolutions without batch norm, float64.

    Picklable, so a cluster receives it once and every task reuses it.
    """

    def __init__(self, net: Network):
        why = refusal(net)
        if why:
            raise UnsupportedError(net.source.path, why)
        self.model = forward.Model(net, "modern", np.float64)  # shape checks, SE and head matrices
        c, eps = net.filters, net.epsilon
        self.epsilon = eps
        raw = lambda block, cin, k: forward._Conv(
            block.replace(means=None, variances=None, gammas=None, betas=None), cin, k, "modern", eps, np.float64)
        # Per batch-norm layer: (γ or None, β or None) in float64 — all a stage needs of its block.
        as64 = lambda t: None if t is None else t.values.astype(np.float64)
        self.affine = {name: (as64(block.gammas), as64(block.betas)) for name, block in net.bn_blocks()}
        self.convs: dict[str, forward._Conv] = {"input": raw(net.input, net.input_planes, 3)}
        for i, r in enumerate(net.residual):
            self.convs[f"residual.{i}.conv1"] = raw(r.conv1, c, 3)
            self.convs[f"residual.{i}.conv2"] = raw(r.conv2, c, 3)
        self.se = [se for _, _, se in self.model.tower]
        self.conv_policy = net.format.policy_kind == POLICY_CONVOLUTION
        self.head_layers = []
        for slot, kernel in (("policy1", 3), ("policy", 1), ("value", 1), ("moves_left", 1)):
            block = getattr(net, slot)
            if slot == "policy" and self.conv_policy:
                continue
            if slot == "moves_left" and not net.has_moves_left:
                continue
            if block is not None and block.has_bn:
                self.convs[slot] = raw(block, c, kernel)
                self.head_layers.append(slot)
        self.policy_after = None  # the convolution policy's second conv, if it has a batch norm
        if self.conv_policy and net.policy is not None and net.policy.has_bn and "policy1" in self.head_layers:
            self.convs["policy"] = raw(net.policy, c, 3)
            self.policy_after = "policy"
        self.blocks_n = net.blocks
        # Only the SE matrices and the model's helpers are used: drop its batch-norm-folded
        # convolutions, heads and network, so that what a cluster receives is one copy of the weights.
        self.model.tower = []
        self.model.net = self.model.input = self.model.policy = self.model.value = None
        self.model.ip_pol = self.model.ip1_val = self.model.ip2_val = self.model.moves_left = None
        if self.conv_policy:
            self.model.policy1 = self.model.policy_gather = None

    def stages(self) -> list[str]:
        """Stage names in forward order; each measures one layer, except HEADS, which measures
        every head's first batch norm (they all read the tower's output)."""
        names = ["input"] + [f"residual.{i}.{k}" for i in range(self.blocks_n) for k in ("conv1", "conv2")]
        if self.head_layers:
            names.append(HEADS)
        if self.policy_after:
            names.append(self.policy_after)
        return names

    def layers(self, stage: str) -> list[str]:
        """The batch-norm layers a stage measures."""
        return list(self.head_layers) if stage == HEADS else [stage]

    # -- evaluation pieces ----------------------------------------------------------
    def _bn(self, z: np.ndarray, name: str, stats: dict) -> np.ndarray:
        """Modern batch norm of the pre-BN activation z with the layer's recalibrated (mean, variance)."""
        mean, var = stats[name]
        gammas, betas = self.affine[name]
        scale = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + self.epsilon)
        if gammas is not None:
            scale = scale * gammas
        shift = -np.asarray(mean, dtype=np.float64) * scale
        if betas is not None:
            shift = shift + betas
        out = np.multiply(z, scale)  # one new array: z belongs to the caller's state
        out += shift
        return out

    def __getstate__(self):
        """What a cluster receives: the weights as float32 (half the bytes; exact, since every value
        was decoded to float32), no per-thread buffers."""
        state = dict(self.__dict__)
        state.pop("_local", None)
        state["convs"] = {name: _retyped(conv, np.float32) for name, conv in self.convs.items()}
        return state

    def __setstate__(self, state):
        state["convs"] = {name: _retyped(conv, np.float64) for name, conv in state["convs"].items()}
        self.__dict__.update(state)

    def _conv_buffer(self, cin: int, n: int) -> np.ndarray:
        """The im2col buffer of `forward.Model._conv3`, kept per thread and shape
        (as the forward pass keeps one per call): every stage of every partition reuses it."""
        local = self.__dict__.setdefault("_local", threading.local())
        bufs = local.__dict__.setdefault("bufs", {})
        if (cin, n) not in bufs:
            if len(bufs) > 4:  # a new batch size (the last partition): drop the old ones
                bufs.clear()
            bufs[(cin, n)] = self.model.conv3_buffer(cin, n)
        return bufs[(cin, n)]

    def _conv(self, x: np.ndarray, name: str) -> np.ndarray:
        conv = self.convs[name]
        if conv.kernel == 1:
            return self.model._conv1(x, conv)
        return self.model._conv3(x, conv, self._conv_buffer(conv.cin, x.shape[1]))

    def _tower_output(self, state: dict, block: int, stats: dict) -> np.ndarray:
        """The residual stream entering `block` (= the tower's output when block == blocks)."""
        if block == 0:
            return self.model._act(self._bn(state["z"], "input", stats))
        y = self._bn(state["z"], f"residual.{block - 1}.conv2", stats)
        se = self.se[block - 1]
        if se is not None:
            w1, b1, w2, b2 = se
            c = y.shape[-1]
            pooled = y.mean(axis=(0, 2))
            s = self.model._act(pooled @ w1 + b1) @ w2 + b2
            y *= forward._sigmoid(s[:, :c])[None, :, None, :]
            y += s[None, :, None, c:]
        y += state["x"]
        return self.model._act(y)

    def advance(self, state: dict, stage: str, stats: dict) -> tuple[dict, dict[str, Moments]]:
        """One stage on one partition: the next pre-BN activation(s) and their moments.

        `state` is {"planes": [n,112,64]} before the first stage, then what the next
        stage needs; `stats` holds the recalibrated (mean, variance) of every earlier layer.
        """
        b = self.model.board
        if stage == "input":
            p = np.asarray(state["planes"], dtype=np.float64)
            n = p.shape[0]
            x = np.ascontiguousarray(p.transpose(0, 2, 1).reshape(n, b, b, p.shape[1]).transpose(1, 0, 2, 3))
            z = self._conv(x, "input")
            return {"z": z}, {"input": Moments.of(z)}
        if stage == HEADS or stage.endswith(".conv1"):
            block = self.blocks_n if stage == HEADS else int(stage.split(".")[1])
            x = self._tower_output(state, block, stats)
            if stage == HEADS:
                zs = {name: self._conv(x, name) for name in self.head_layers}
                return {"heads": zs}, {name: Moments.of(z) for name, z in zs.items()}
            z = self._conv(x, stage)
            return {"x": x, "z": z}, {stage: Moments.of(z)}
        if stage.endswith(".conv2"):
            conv1 = stage[: -len("conv2")] + "conv1"
            h = self.model._act(self._bn(state["z"], conv1, stats))
            z = self._conv(h, stage)
            return {"x": state["x"], "z": z}, {stage: Moments.of(z)}
        if stage == self.policy_after:
            h = self.model._act(self._bn(state["heads"]["policy1"], "policy1", stats))
            z = self._conv(h, stage)
            return {}, {stage: Moments.of(z)}
        raise ValueError(f"unknown stage {stage!r}")


def _retyped(conv, dtype):
    new = copy.copy(conv)
    new.w, new.shift = conv.w.astype(dtype), conv.shift.astype(dtype)
    return new


def stats_of(moments: dict[str, Moments]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: (m.mean, m.variance) for name, m in moments.items()}


# -- the recalibrated network and its report ---------------------------------------

@dataclass
class LayerChange:
    """How far one layer's stored statistics were from the measured ones.

    shift = |μ' − μ| / √(σ² + ε) (in stored standard deviations); ratio = (σ'² + ε)/(σ² + ε),
    the square of how much the normalisation's scale changes.
    """

    name: str
    channels: int
    shift_max: float
    shift_median: float
    ratio_min: float
    ratio_median: float
    ratio_max: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Fit:
    """The network's fit to training targets on held-out positions."""

    positions: int
    policy_ce: float  # cross-entropy of the search probabilities against the policy over legal moves
    value_mse: float  # (Q − z)², z the game result from the side to move
    wdl_ce: float | None  # cross-entropy of the game's W/D/L against the WDL head, if any

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Report:
    """What `recalibrate` did: per-layer changes, data used, fit before and after."""

    positions: int
    files: int
    layers: list[LayerChange]
    semantics: str = "modern"
    fit_before: Fit | None = None
    fit_after: Fit | None = None
    workers: int | None = None
    seconds: float | None = None  # wall time of the measurement (reading, every stage, merging)
    notes: list[str] = field(default_factory=list)
    changed: bool = True
    min_version_after: tuple[int, int, int] | None = None

    def to_dict(self) -> dict:
        return {"positions": self.positions, "files": self.files, "semantics": self.semantics,
                "workers": self.workers, "seconds": self.seconds, "layers": [l.to_dict() for l in self.layers],
                "fit_before": self.fit_before.to_dict() if self.fit_before else None,
                "fit_after": self.fit_after.to_dict() if self.fit_after else None,
                "notes": list(self.notes),
                "min_version_after": list(self.min_version_after) if self.min_version_after else None}

    def render(self) -> str:
        lines = [f"recalibrated {len(self.layers)} batch-norm layers on {self.positions} positions "
                 f"from {self.files} files ({self.workers or 1} worker(s)"
                 + (f", {self.seconds:.1f} s" if self.seconds is not None else "") + ")",
                 "stored vs measured: |Δμ|/σ (max, median) and σ'²/σ² (min, median, max; each + ε)",
                 (f"  {'layer':<22}{'ch':>5}{'|Δμ|/σ max':>12}{'median':>9}{'σ²ʹ/σ² min':>13}{'median':>9}"
                  f"{'max':>9}")]
        for l in self.layers:
            lines.append(f"  {l.name:<22}{l.channels:>5}{l.shift_max:>12.3f}{l.shift_median:>9.3f}"
                         f"{l.ratio_min:>13.3f}{l.ratio_median:>9.3f}{l.ratio_max:>9.3f}")
        if self.fit_before is not None:
            b, a = self.fit_before, self.fit_after
            lines.append(f"fit on {b.positions} held-out positions      before     after")
            lines.append(f"  policy cross-entropy        {b.policy_ce:>9.4f} {a.policy_ce:>9.4f}")
            lines.append(f"  value MSE (Q vs result)     {b.value_mse:>9.4f} {a.value_mse:>9.4f}")
            if b.wdl_ce is not None:
                lines.append(f"  WDL cross-entropy           {b.wdl_ce:>9.4f} {a.wdl_ce:>9.4f}")
        else:
            lines.append("fit not measured (no --eval-data)")
        return "\n".join(lines)


def layer_changes(net: Network, stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[LayerChange]:
    out = []
    for name, block in net.bn_blocks():
        if name not in stats:  # a head the format does not evaluate (e.g. moves-left fields without the flag)
            continue
        mean, var = stats[name]
        old_mean = block.means.values.astype(np.float64) if block.means is not None else np.zeros_like(mean)
        old_var = block.variances.values.astype(np.float64) if block.variances is not None else np.ones_like(var)
        shift = np.abs(mean - old_mean) / np.sqrt(old_var + net.epsilon)
        ratio = (var + net.epsilon) / (old_var + net.epsilon)
        out.append(LayerChange(name, int(mean.size), float(shift.max()), float(np.median(shift)),
                               float(ratio.min()), float(np.median(ratio)), float(ratio.max())))
    return out


def apply(net: Network, stats: dict[str, tuple[np.ndarray, np.ndarray]],
          encoding: Encoding | None = None) -> Network:
    """A copy of `net` whose batch-norm means and variances are `stats`, stored in `encoding`
    (None: each tensor's own); γ, β, biases and weights untouched."""
    new = net.copy()
    targets = {name: block for name, block in new.conv_blocks()}
    for name, (mean, var) in stats.items():
        block = targets[name]
        fields = {}
        for f, values in (("means", mean), ("variances", var)):
            old = getattr(block, f)
            enc = encoding or (old.encoding if old is not None else block.weights.encoding)
            v = np.asarray(values, dtype=np.float64).astype(np.float32)
            why = check_encodable(v, enc)
            if why:
                raise NetworkError(net.source.path, f"{name}.{f}: cannot encode as {enc.name}: {why}")
            fields[f] = Tensor.from_values(v, enc).reencoded(enc)
        new_block = block.replace(**fields)
        if name == "input":
            new.input = new_block
        elif name.startswith("residual."):
            _, i, conv = name.split(".")
            setattr(new.residual[int(i)], conv, new_block)
        else:
            setattr(new, name, new_block)
    return new


# -- fit to training targets --------------------------------------------------------

@dataclass
class FitSums:
    """Mergeable sums behind a `Fit`."""

    n: int = 0
    policy_ce: float = 0.0
    value_se: float = 0.0
    wdl_ce: float = 0.0
    wdl: bool = False

    def merge(self, other: FitSums) -> FitSums:
        return FitSums(self.n + other.n, self.policy_ce + other.policy_ce, self.value_se + other.value_se,
                       self.wdl_ce + other.wdl_ce, self.wdl or other.wdl)

    def fit(self) -> Fit:
        n = max(self.n, 1)
        return Fit(self.n, self.policy_ce / n, self.value_se / n, self.wdl_ce / n if self.wdl else None)


def fit_sums(model: forward.Model, planes: np.ndarray, probabilities: np.ndarray, result_q: np.ndarray,
             result_d: np.ndarray) -> FitSums:
    """Loss sums of `model` on positions with their training targets.

    Policy: softmax over the legal moves only (probability ≥ 0; −1 marks illegal),
    as the engine and lczero-training's loss use it. Value: Q = W − L (WDL nets) or
    the tanh output. WDL target from the result: W = (1 − d + q)/2, D = d, L = (1 − d − q)/2.
    """
    out = model(planes)
    logits = out.policy_logits.astype(np.float64)
    legal = probabilities >= 0
    masked = np.where(legal, logits, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    logp = masked - top - np.log(np.exp(masked - top).sum(axis=1, keepdims=True))
    target = np.where(legal, probabilities, 0.0).astype(np.float64)
    policy_ce = float(-(target * np.where(legal, logp, 0.0)).sum())
    q = result_q.astype(np.float64)
    value_se = float(((out.value.astype(np.float64) - q) ** 2).sum())
    wdl_ce, wdl = 0.0, out.wdl is not None
    if wdl:
        d = result_d.astype(np.float64)
        t = np.stack([(1 - d + q) / 2, d, (1 - d - q) / 2], axis=1)
        p = np.clip(out.wdl.astype(np.float64), 1e-30, None)
        wdl_ce = float(-(t * np.log(p)).sum())
    return FitSums(int(planes.shape[0]), policy_ce, value_se, wdl_ce, wdl)


def has_wdl(net: Network) -> bool:
    return net.format.value_kind == VALUE_WDL
