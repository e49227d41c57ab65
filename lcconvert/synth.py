"""Synthetic networks with known structure, for tests and benchmarks.

Real networks are few and small (maia-1100 is 6×64); tests of folding, the
forward pass and speed need networks of any size and shape whose every field is
chosen: with or without SE, gammas, betas, biases; classical or convolution
policy; WDL or classical value; moves-left; mish; any layer encoding.

The weights are random but *calibrated*, so that a forward pass on realistic
inputs keeps activations of order one through a deep tower — otherwise a
20-block test network would saturate and every comparison of outputs would
be meaningless:

- convolution and FC weights are He-scaled (std √(2/fan_in)) with a per-output-
  channel log-normal factor, which gives batch-norm variances the spread real
  networks show (maia-1100's span a factor of ~20 within a layer);
- batch-norm means and variances are *measured*: a small batch of random
  positions (input planes as engines feed them) is pushed through the network as
  it is built, and each block stores the mean and variance of the
  pre-normalization output it actually produces, as training's moving averages
  would;
- gammas (when learned) are log-uniform in [0.2, 2] on the blocks lczero-training
  learns them for (input and each residual conv2; the others are exported as
  exactly 1, as in maia-1100), betas are N(−0.3, 0.5) (ReLU-era nets have mostly
  negative betas, which also keeps the residual stream from drifting upwards).

Every tensor is stored already encoded in the requested encoding, so the
in-memory network holds exactly what a reader of its file decodes and
`write_pb` → read → `write_pb` is byte-identical.
"""
from __future__ import annotations

import numpy as np

from lcconvert import codecs, shapes, versions
from lcconvert.codecs import Encoding
from lcconvert.constants import (
    ACTIVATION_MISH,
    CONV_POLICY_PLANES,
    INPUT_CLASSICAL_112_PLANE,
    INPUT_PLANES,
    LINEAR16_FORMAT,
    MOVES_LEFT_V1,
    NETWORK_CLASSICAL_WITH_HEADFORMAT,
    NETWORK_SE_WITH_HEADFORMAT,
    OUTPUT_CLASSICAL,
    OUTPUT_WDL,
    POLICY_CLASSICAL,
    POLICY_CONVOLUTION,
    POLICY_OUTPUTS,
    VALUE_CLASSICAL,
    VALUE_WDL,
    Family,
)
from lcconvert.network import ConvBlock, NetFormat, Network, Residual, SEUnit, Source
from lcconvert.tensor import Tensor

EPSILON = 1e-5
# Head widths used by lczero-training (chess) and Leela Zero (Go), FORMATS.md §2, §4, §5.
CHESS_CLASSICAL_POLICY_FILTERS = 32
CHESS_VALUE_FILTERS = 32
CHESS_VALUE_HIDDEN = 128
CHESS_MOVES_LEFT_FILTERS = 8
CHESS_MOVES_LEFT_HIDDEN = 128
GO_POLICY_FILTERS = 2
GO_VALUE_FILTERS = 1
GO_VALUE_HIDDEN = 256

# Random positions pushed through the network to measure batch-norm statistics:
# 8 chess boards (512 squares) or 2 Go boards (722 points) — the cost of one
# batch-8 forward pass (about 1.3 s of the 20×256 build on this machine).
CALIBRATION_BOARDS = {Family.CHESS: 8, Family.GO: 2}
# Std of the log of the per-output-channel weight scale: variances then spread by
# about e^±2 (≈ ×50 between extreme channels), like real layers.
CHANNEL_SCALE_LOG_STD = 0.5
GAMMA_RANGE = (0.2, 2.0)
BETA_MEAN, BETA_STD = -0.3, 0.5


def _act(x: np.ndarray, activation: str) -> np.ndarray:
    if activation == "mish":
        return x * np.tanh(np.logaddexp(0.0, x))
    return np.maximum(x, 0.0)


class _Builder:
    """Builds tensors and pushes the calibration boards through the network as it grows."""

    def __init__(self, rng: np.random.Generator, encoding: Encoding, activation: str):
        self.rng = rng
        self.encoding = Encoding(encoding)
        self.activation = activation

    # -- tensors -------------------------------------------------------------
    def tensor(self, values: np.ndarray) -> Tensor:
        """Store `values` encoded, as a reader of the written file will see them."""
        raw, lo, hi = codecs.encode(values, self.encoding)
        return Tensor(self.encoding, raw, lo, hi)

    def normal(self, shape, std: float) -> np.ndarray:
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def conv_weights(self, cout: int, cin: int, kernel: int, gain: float = 2.0) -> np.ndarray:
        """[cout][cin][k][k], He-scaled, with a log-normal scale per output channel."""
        fan_in = cin * kernel * kernel
        w = self.normal((cout, cin, kernel, kernel), np.sqrt(gain / fan_in))
        scale = np.exp(self.normal((cout, 1, 1, 1), CHANNEL_SCALE_LOG_STD))
        return w * scale

    # -- calibration ---------------------------------------------------------
    def conv(self, boards: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Zero-padded cross-correlation of boards [N, H, W, cin] with w [cout][cin][k][k] -> [N, H, W, cout]."""
        cout, cin, k, _ = w.shape
        n, height, width, _ = boards.shape
        if k == 1:
            return boards @ w.reshape(cout, cin).T
        # im2col: one [squares, cin·k·k] × [cin·k·k, cout] product (10× faster than
        # nine strided per-tap products); columns ordered [cin][kh][kw] like `w`.
        p = k // 2
        padded = np.pad(boards, ((0, 0), (p, p), (p, p), (0, 0)))
        cols = np.empty((n, height, width, cin, k, k), dtype=np.float32)
        for i in range(k):
            for j in range(k):
                cols[..., i, j] = padded[:, i:i + height, j:j + width, :]
        out = cols.reshape(-1, cin * k * k) @ w.reshape(cout, cin * k * k).T
        return out.reshape(n, height, width, cout)

    def bn_block(self, boards: np.ndarray, cin: int, cout: int, kernel: int, *, gammas: str,
                 betas: bool, biases: bool, go_bias_convention: bool = False,
                 weights: np.ndarray | None = None, activate: bool = True) -> tuple[ConvBlock, np.ndarray]:
        """A ConvBlock whose means/variances are those of its own output on `boards` [N, H, W, cin].

        gammas: "learned" (log-uniform in GAMMA_RANGE), "ones" (present, exactly 1) or "absent".
        go_bias_convention: Leela Zero stores its β as the conv bias, b = β·√(σ²+ε),
        with the means those of W∗x alone (FORMATS.md §3).
        weights: [cout][cin][k][k] to use instead of fresh He-scaled ones.
        Returns the block and its output boards (activated unless `activate` is
        False: a residual conv2 feeds the SE and the skip sum before its activation).
        """
        w = self.conv_weights(cout, cin, kernel) if weights is None else weights
        y = self.conv(boards, w)
        mean = y.mean(axis=(0, 1, 2))
        var = y.var(axis=(0, 1, 2)) + np.float32(1e-4)  # a dead channel still gets a positive variance
        s = np.sqrt(var + EPSILON)
        gamma = np.ones(cout, np.float32)
        if gammas == "learned":
            lo, hi = np.log(GAMMA_RANGE[0]), np.log(GAMMA_RANGE[1])
            gamma = np.exp(self.rng.uniform(lo, hi, cout)).astype(np.float32)
        beta = (BETA_MEAN + self.normal(cout, BETA_STD)) if (betas or go_bias_convention) else np.zeros(cout, np.float32)
        block = ConvBlock(weights=self.tensor(w))
        if go_bias_convention:
            block.biases = self.tensor(beta * s)
            means = mean
        elif biases:
            b = self.normal(cout, 0.1) * s
            block.biases = self.tensor(b)
            means = mean + b  # training's BN sees W∗x + b
        else:
            means = mean
        block.means = self.tensor(means)
        block.variances = self.tensor(var)
        if gammas in ("learned", "ones"):
            block.gammas = self.tensor(gamma)
        if betas and not go_bias_convention:
            block.betas = self.tensor(beta)
        out = gamma * (y - mean) / s + beta
        if activate:
            out = _act(out, self.activation)
        return block, out.astype(np.float32)

    def fc(self, x: np.ndarray, fan_out: int, gain: float = 2.0,
           bias_std: float = 0.1) -> tuple[Tensor, Tensor, np.ndarray]:
        """FC layer [fan_out][fan_in] on [N, fan_in] inputs; returns w, b and the pre-activation output."""
        fan_in = x.shape[1]
        w = self.normal((fan_out, fan_in), np.sqrt(gain / fan_in))
        b = self.normal(fan_out, bias_std)
        return self.tensor(w), self.tensor(b), x @ w.T + b

    @staticmethod
    def flatten(boards: np.ndarray) -> np.ndarray:
        """[N, H, W, C] -> [N, C·H·W], channel-major (c·squares + square) as before an FC."""
        n = boards.shape[0]
        return np.ascontiguousarray(boards.transpose(0, 3, 1, 2)).reshape(n, -1)


def _input_boards(rng: np.random.Generator, family: Family, n: int) -> np.ndarray:
    """Random input planes [N, H, W, planes] like those engines feed (FORMATS.md §2, §5)."""
    if family is Family.GO:
        x = np.zeros((n, 19, 19, 18), np.float32)
        x[..., :16] = rng.random((n, 19, 19, 16)) < 0.2  # stones, T=0..−7 for both sides
        black = (rng.random(n) < 0.5)[:, None, None]
        x[..., 16] = black
        x[..., 17] = ~black
        return x
    x = np.zeros((n, 8, 8, 112), np.float32)
    for h in range(8):  # 12 piece planes per history position: ~24 pieces on 64 squares
        x[..., 13 * h:13 * h + 12] = rng.random((n, 8, 8, 12)) < 0.03
    x[..., 104:109] = rng.random((n, 1, 1, 5)) < 0.5  # castling rights, side to move: whole planes
    x[..., 109] = rng.integers(0, 100, (n, 1, 1))  # rule50 as a raw ply count (input format 1)
    x[..., 111] = 1.0
    return x


def make_network(family: str | Family = "chess", blocks: int = 2, filters: int = 16, se_ratio: int | None = 4,
                 policy: str = "convolution", value: str = "wdl", moves_left: bool = False,
                 gammas: bool | str = True, betas: bool = True, biases: bool = False,
                 activation: str = "relu", encoding: Encoding = Encoding.LINEAR16, seed: int = 0) -> Network:
    """A structurally valid, well-scaled random network (see the module docstring).

    Chess (lczero-training layout): SE with `filters // se_ratio` channels unless
    se_ratio is None; policy "convolution" (policy1 3×3 + 80-plane conv) or
    "classical" (1×1 → 32 filters, FC to 1858); value "wdl" or "classical"
    (1×1 → 32, FC 128, FC 3 or 1); optional moves-left (1×1 → 8, FC 128, FC 1).
    gammas: True = as training exports them (learned on input and conv2, exactly 1
    elsewhere), "all" = learned on every batch-norm block, False = absent.
    Format enums and min_version are set as lczero-training writes them.

    Go (Leela Zero layout, FORMATS.md §4–5): 18 planes, 19×19, policy conv 2
    filters + FC 362, value conv 1 filter + FC 256 + FC 1, biases holding β, no SE,
    no γ/β; the chess-only options (se_ratio, policy, value, moves_left, gammas,
    betas, biases, activation) are ignored and the format fields left absent.
    """
    family = Family(family)
    if blocks < 0 or filters < 1:
        raise ValueError("blocks must be ≥ 0 and filters ≥ 1")
    if policy not in ("convolution", "classical") or value not in ("wdl", "classical"):
        raise ValueError(f"unknown head kind: policy={policy!r}, value={value!r}")
    if activation not in ("relu", "mish"):
        raise ValueError(f"unknown activation {activation!r}")
    if gammas not in (True, False, "all"):
        raise ValueError(f"gammas must be True, False or 'all', not {gammas!r}")
    go = family is Family.GO
    if go:
        se_ratio, policy, value, moves_left, activation = None, "classical", "classical", False, "relu"
    if se_ratio is not None and (se_ratio < 1 or filters % se_ratio):
        raise ValueError(f"filters {filters} is not a multiple of se_ratio {se_ratio}")

    rng = np.random.default_rng(seed)
    b = _Builder(rng, encoding, activation)
    c = filters
    gamma_learned = "absent" if go or not gammas else "learned"
    gamma_fixed = "absent" if go or not gammas else ("learned" if gammas == "all" else "ones")
    kw = dict(betas=bool(betas) and not go, biases=bool(biases) and not go, go_bias_convention=go)

    net = Network(family=family, source=Source(path="<synthetic>", kind="memory"))
    x = _input_boards(rng, family, CALIBRATION_BOARDS[family])
    w_in = b.conv_weights(c, INPUT_PLANES[family], 3)
    if not go:
        # Engines feed the raw rule50 ply count for input format 1 and training
        # divides that plane's weights by 99 on export (FORMATS.md §2).
        w_in[:, 109] /= np.float32(99.0)
    net.input, x = b.bn_block(x, INPUT_PLANES[family], c, 3, gammas=gamma_learned, weights=w_in, **kw)

    se = c // se_ratio if se_ratio else 0
    for _ in range(blocks):
        conv1, h = b.bn_block(x, c, c, 3, gammas=gamma_fixed, **kw)
        conv2, y = b.bn_block(h, c, c, 3, gammas=gamma_learned, activate=False, **kw)
        res = Residual(conv1, conv2)
        if se:
            pooled = y.mean(axis=(1, 2))  # [N, C]
            w1, b1, hid = b.fc(pooled, se)
            w2, b2, z = b.fc(_act(hid, activation), 2 * c, gain=1.0)
            res.se = SEUnit(w1=w1, b1=b1, w2=w2, b2=b2)
            gate = 1.0 / (1.0 + np.exp(-z[:, None, None, :c]))
            y = gate * y + z[:, None, None, c:]
        x = _act(y + x, activation).astype(np.float32)
        net.residual.append(res)

    if policy == "convolution":
        net.policy1, p = b.bn_block(x, c, c, 3, gammas=gamma_fixed, **kw)
        w = b.conv_weights(CONV_POLICY_PLANES, c, 3, gain=1.0)
        net.policy = ConvBlock(weights=b.tensor(w), biases=b.tensor(b.normal(CONV_POLICY_PLANES, 0.1)))
    else:
        pf = GO_POLICY_FILTERS if go else CHESS_CLASSICAL_POLICY_FILTERS
        net.policy, p = b.bn_block(x, c, pf, 1, gammas=gamma_fixed, **kw)
        net.ip_pol_w, net.ip_pol_b, _ = b.fc(b.flatten(p), POLICY_OUTPUTS[family], gain=1.0)

    vf = GO_VALUE_FILTERS if go else CHESS_VALUE_FILTERS
    hidden = GO_VALUE_HIDDEN if go else CHESS_VALUE_HIDDEN
    net.value, v = b.bn_block(x, c, vf, 1, gammas=gamma_fixed, **kw)
    net.ip1_val_w, net.ip1_val_b, h = b.fc(b.flatten(v), hidden)
    net.ip2_val_w, net.ip2_val_b, _ = b.fc(_act(h, activation), 3 if value == "wdl" else 1, gain=1.0)

    if moves_left:
        net.moves_left, m = b.bn_block(x, c, CHESS_MOVES_LEFT_FILTERS, 1, gammas=gamma_fixed, **kw)
        net.ip1_mov_w, net.ip1_mov_b, h = b.fc(b.flatten(m), CHESS_MOVES_LEFT_HIDDEN)
        net.ip2_mov_w, net.ip2_mov_b, _ = b.fc(_act(h, activation), 1, gain=1.0)

    if not go:
        net.format = NetFormat(
            input=INPUT_CLASSICAL_112_PLANE,
            output=OUTPUT_WDL if value == "wdl" else OUTPUT_CLASSICAL,
            network=NETWORK_SE_WITH_HEADFORMAT if net.se_channels else NETWORK_CLASSICAL_WITH_HEADFORMAT,
            policy=POLICY_CONVOLUTION if policy == "convolution" else POLICY_CLASSICAL,
            value=VALUE_WDL if value == "wdl" else VALUE_CLASSICAL,
            moves_left=MOVES_LEFT_V1 if moves_left else None,
            default_activation=ACTIVATION_MISH if activation == "mish" else None,
        )
        net.weights_encoding = LINEAR16_FORMAT
        net.min_version = versions.required(net)
    return shapes.check(net)


def write_pb(net: Network, path, force: bool = True) -> list[str]:
    """Write `net` as an Lc0 protobuf (gzip unless the name ends in `.pb`); returns the writer's notes."""
    from lcconvert import pipeline

    return pipeline.save(net, str(path), to="pb", force=force)
