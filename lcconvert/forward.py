"""NumPy forward pass of batch-norm networks: Lc0 chess nets and Leela Zero Go nets.

Why it exists: every file lcconvert writes is checked by evaluating it, and the
check is only as good as this evaluation's agreement with real engines (tested
against lc0 and leelaz outputs in tests/test_forward.py).

Layout and engine facts: FORMATS.md §2 (chess), §3 (batch-norm semantics), §5 (Go).
Activations are kept as [rows, N, columns, C] — board row outermost, channels
innermost — and a 3×3 convolution is ONE BLAS product over the whole batch:
[rows·N·columns, 9·C] (an im2col buffer holding each square's nine neighbours) @
[9·C, C']; a 1×1 convolution is one product. Batch norm is applied as a per-channel
scale (multiplied into the weight matrix once, as engines do at load) and shift.

Semantics (FORMATS.md §3):
- "modern" (lc0 ≥ 0.21): y = γ·(conv + b − μ)/√(σ² + ε) + β, γ = 1, β = 0, b = 0 when absent,
  ε = the network's own batch-norm epsilon (1e-5 for every Lc0/Leela Zero file).
- "legacy" (lc0 ≤ 0.19, Leela Zero): y = (conv + b − μ)/√(σ² + ε); γ and β are ignored, ε = 1e-5.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcconvert import forward_attention, shapes
from lcconvert.constants import (
    ACTIVATION_MISH,
    ACTIVATION_RELU,
    ENGINE_EPSILON,
    GO_BLACK_TO_MOVE_PLANE,
    NETWORK_ONNX,
    POLICY_ATTENTION,
    POLICY_CLASSICAL,
    POLICY_CONVOLUTION,
    VALUE_CLASSICAL,
    VALUE_WDL,
    Family,
)
from lcconvert.errors import FormatError, NetworkError, UnsupportedError
from lcconvert.network import ConvBlock, Network

SEMANTICS = ("modern", "legacy")


@dataclass
class Outputs:
    """Raw network outputs for a batch of N inputs (P = 1858 chess, 362 Go)."""

    policy_logits: np.ndarray  # [N, P]
    policy: np.ndarray  # [N, P], softmax over all P outputs
    value: np.ndarray  # [N]: Q = W − L for WDL, the tanh output otherwise (Go: side to move)
    wdl: np.ndarray | None = None  # [N, 3] win, draw, loss
    moves_left: np.ndarray | None = None  # [N]
    winrate: np.ndarray | None = None  # [N], Go: (1 + value)/2

    FIELDS = ("policy_logits", "policy", "value", "wdl", "moves_left", "winrate")

    def arrays(self) -> dict[str, np.ndarray]:
        """The outputs that exist, by name (what `eval --out` writes)."""
        return {f: getattr(self, f) for f in self.FIELDS if getattr(self, f) is not None}

    @property
    def n(self) -> int:
        return int(self.policy.shape[0])

    def to_dict(self) -> dict:
        """JSON-ready lists of every output that exists."""
        return {name: arr.tolist() for name, arr in self.arrays().items()}

    def render(self, family: Family, top: int = 3) -> str:
        """A short table: per input, the top policy outputs (index, move for chess, probability) and the value."""
        names = None
        if family is Family.CHESS:
            from lcconvert.policy_map import moves

            names = moves()
        extra = "   WDL" if self.wdl is not None else ("   winrate" if self.winrate is not None else "")
        lines = [f"{'#':>4}  {'top policy (index move p)':<{top * 22}}{'value':>8}{extra}"
                 + ("   moves-left" if self.moves_left is not None else "")]
        for i in range(self.n):
            order = np.argsort(-self.policy[i])[:top]
            cells = []
            for j in order:
                label = names[j] if names is not None else ("pass" if j == self.policy.shape[1] - 1 else
                                                              f"{'ABCDEFGHJKLMNOPQRST'[j % 19]}{j // 19 + 1}")
                cells.append(f"{j:>4} {label:<6}{self.policy[i, j]:.3f}".ljust(22))
            row = f"{i:>4}  {''.join(cells)}{self.value[i]:>8.4f}"
            if self.wdl is not None:
                row += "   " + " ".join(f"{p:.3f}" for p in self.wdl[i])
            elif self.winrate is not None:
                row += f"   {self.winrate[i]:.4f}"
            if self.moves_left is not None:
                row += f"   {self.moves_left[i]:.1f}"
            lines.append(row)
        return "\n".join(lines)


def evaluate(net: Network, planes, semantics: str = "modern", dtype=np.float32, source: str = "<planes>",
             policy_head: str | None = None, value_head: str | None = None) -> Outputs:
    """Evaluate `net` on a batch of input planes (see `Model`); `source` names the planes in errors.

    Outputs that are not finite (finite weights large enough to overflow the
    arithmetic) are refused with NetworkError rather than returned: a NaN is not
    an evaluation.
    """
    outputs = Model(net, semantics, dtype, policy_head=policy_head, value_head=value_head)(planes, source=source)
    for name, arr in outputs.arrays().items():
        bad = ~np.isfinite(arr)
        if bad.any():
            position = int(np.argwhere(bad)[0][0])
            raise NetworkError(net.source.path, f"the forward pass overflows: {name} is not finite for input "
                                                f"{position} ({semantics} semantics, {np.dtype(dtype).name})")
    return outputs


def supported_problem(net: Network) -> str | None:
    """Why `net` cannot be evaluated here, or None."""
    if net.format.network_kind == NETWORK_ONNX:
        return "ONNX network: not evaluated"
    if (net.attention_body or net.format.is_attention) and net.attention is None:
        return "attention network: not evaluated (no attention layers were read)"
    if net.format.value_kind not in (VALUE_CLASSICAL, VALUE_WDL):
        return f"value head format {net.format.value_kind}: not evaluated"
    if net.format.policy_kind not in (POLICY_CLASSICAL, POLICY_CONVOLUTION, POLICY_ATTENTION):
        return f"policy head format {net.format.policy_kind}: not evaluated"
    if net.format.activation not in (ACTIVATION_RELU, ACTIVATION_MISH):
        return f"activation {net.format.activation}: not evaluated"
    return None


def _mish(x: np.ndarray) -> np.ndarray:
    return x * np.tanh(np.logaddexp(0, x))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warnings for large |z|


class _Conv:
    """A convolution with its batch norm folded into the weight columns, plus a per-channel shift.

    `lazy`: the float64 matrix is made when a product needs it and dropped after (`arrays`), from
    tensors decoded without keeping the decode (Tensor.peek) — a model evaluated once then holds one
    layer's matrix at a time instead of a float64 copy of the whole network (1.6 GB at 40×512,
    2× its float32 size), at the cost of preparing again on every call.
    """

    def __init__(self, block: ConvBlock, cin: int, kernel: int, semantics: str, epsilon: float, dtype,
                 lazy: bool = False):
        self.kernel, self.cin = kernel, cin
        self.cout = block.weights.size // (cin * kernel * kernel)
        self._source = (block, semantics, epsilon, np.dtype(dtype))
        self.w = self.shift = None
        if not lazy:
            self.w, self.shift = self._prepare()
            self._source = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights [kernel, kernel·cin, cout], shift [cout]) in the model's dtype."""
        if self.w is not None:
            return self.w, self.shift
        return self._prepare()

    def _prepare(self) -> tuple[np.ndarray, np.ndarray]:
        block, semantics, epsilon, dtype = self._source
        kernel, cin, cout = self.kernel, self.cin, self.cout
        # [out][in][kh][kw] -> [kh][(kw, in)][out]: rows in the (kh, kw, in) order of the
        # im2col buffer. Transposed and widened to float64 in ONE copy,
        # scaled in place below: one float64 copy of the weights, not four (at 40×512 the extra
        # copies made preparation superlinear in the network's size).
        w = np.ascontiguousarray(block.weights.peek().reshape(cout, cin, kernel, kernel).transpose(2, 3, 1, 0),
                                 dtype=np.float64).reshape(kernel, kernel * cin, cout)
        b = block.biases.values.astype(np.float64) if block.biases is not None else np.zeros(cout)
        if block.has_bn:
            eps = epsilon if semantics == "modern" else ENGINE_EPSILON
            scale = 1.0 / np.sqrt(block.variances.values.astype(np.float64) + eps)
            shift = b - block.means.values.astype(np.float64)
            if semantics == "modern":
                if block.gammas is not None:
                    scale = scale * block.gammas.values
                shift = shift * scale + (block.betas.values if block.betas is not None else 0.0)
            else:
                shift = shift * scale
            w *= scale  # broadcast over the last (output channel) axis
        else:
            shift = b
        return np.ascontiguousarray(w, dtype=dtype), shift.astype(dtype)


class Model:
    """A network prepared for repeated evaluation in one semantics and dtype.

    Preparing decodes the tensors and folds each batch norm into its weight
    matrix once; `Model(planes)` then costs only the matrix products. Attention
    bodies are evaluated by `forward_attention.AttentionBody`; a convolution body
    with an attention policy head runs its tower here and the head there.
    `policy_head`/`value_head` pick a head of a multi-head network (lc0's names).
    """

    def __init__(self, net: Network, semantics: str = "modern", dtype=np.float32,
                 policy_head: str | None = None, value_head: str | None = None, lazy: bool = False):
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, not {semantics!r}")
        path = net.source.path
        why = supported_problem(net)
        if why:
            raise UnsupportedError(path, why)
        self.net, self.semantics, self.dtype, self.lazy = net, semantics, np.dtype(dtype), lazy
        if self.dtype not in (np.float32, np.float64):
            raise ValueError("dtype must be float32 or float64")
        self.family, self.board = net.family, net.board_size
        self.squares, self.planes = net.squares, net.input_planes
        self.attention_body = None
        if net.attention is not None and forward_attention.lc0_format(net).attention_body:
            # Layer norms only: no batch norm, so modern and legacy semantics are the same network.
            self.attention_body = forward_attention.AttentionBody.prepare(net, policy_head, value_head, self.dtype)
            return
        shapes.check(net)
        self.mish = net.format.activation == ACTIVATION_MISH
        c = net.filters
        conv = lambda block, cin, k: _Conv(block, cin, k, semantics, net.epsilon, self.dtype, lazy)  # noqa: E731
        self.input = conv(net.input, self.planes, 3)
        self.tower = []
        for r in net.residual:
            se = None
            if r.se is not None:
                s = r.se.channels
                se = (self._mat(r.se.w1, s, c), self._vec(r.se.b1), self._mat(r.se.w2, 2 * c, s), self._vec(r.se.b2))
            self.tower.append((conv(r.conv1, c, 3), conv(r.conv2, c, 3), se))
        self.conv_policy = net.format.policy_kind == POLICY_CONVOLUTION
        self.attention_policy = None
        if net.attention is not None:
            # The value and moves-left heads of a convolution body are its convolution heads.
            forward_attention.check_value_head(net, value_head)
        if net.format.policy_kind == POLICY_ATTENTION:
            self.attention_policy = forward_attention.AttentionPolicy.prepare(net, c, policy_head, self.dtype)
        elif self.conv_policy:
            from lcconvert import policy_map

            self.policy1 = conv(net.policy1, c, 3)
            self.policy = conv(net.policy, c, 3)
            self.policy_gather = policy_map.conv_policy_gather()
        else:
            self.policy = conv(net.policy, c, 1)
            self.ip_pol = self._head_fc(net.ip_pol_w, net.ip_pol_b, self.policy.cout)
        self.value = conv(net.value, c, 1)
        self.ip1_val = self._head_fc(net.ip1_val_w, net.ip1_val_b, self.value.cout)
        self.ip2_val = (self._mat(net.ip2_val_w, net.ip2_val_b.size, net.ip1_val_b.size), self._vec(net.ip2_val_b))
        self.wdl = net.format.value_kind == VALUE_WDL
        self.moves_left = None
        if net.has_moves_left:
            ml = conv(net.moves_left, c, 1)
            self.moves_left = (ml, self._head_fc(net.ip1_mov_w, net.ip1_mov_b, ml.cout),
                               (self._mat(net.ip2_mov_w, 1, net.ip1_mov_b.size), self._vec(net.ip2_mov_b)))
        self.value_from_black = net.family is Family.GO and net.go_value_from_black

    # -- preparation helpers ---------------------------------------------------
    def _vec(self, t) -> np.ndarray:
        return t.values.astype(self.dtype)

    def _mat(self, t, out: int, inp: int) -> np.ndarray:
        """An FC weight [out][in] as the right operand of x @ w."""
        return np.ascontiguousarray(t.values.reshape(out, inp).T, dtype=self.dtype)

    def _head_fc(self, w_t, b_t, channels: int):
        """FC after a conv: engines flatten channel-major (c·squares + sq); our rows are (sq, c)."""
        out = b_t.size
        w = w_t.values.reshape(out, channels, self.squares).transpose(2, 1, 0).reshape(self.squares * channels, out)
        return np.ascontiguousarray(w, dtype=self.dtype), self._vec(b_t)

    # -- evaluation --------------------------------------------------------------
    def _act(self, x: np.ndarray) -> np.ndarray:
        if self.mish:
            return _mish(x)
        return np.maximum(x, 0, out=x)

    def _conv1(self, x: np.ndarray, conv: _Conv) -> np.ndarray:
        """1×1 convolution: x [rows, N, cols, cin] → [rows, N, cols, cout]."""
        w, shift = conv.arrays()
        y = x.reshape(-1, conv.cin) @ w[0]
        y += shift
        return y.reshape(x.shape[:3] + (conv.cout,))

    def conv3_buffer(self, cin: int, n: int) -> np.ndarray:
        """A zeroed im2col buffer for `_conv3` on n positions of cin channels (reusable)."""
        return np.zeros((self.board, n, self.board, 9 * cin), dtype=self.dtype)

    def _conv3(self, x: np.ndarray, conv: _Conv, cols: np.ndarray) -> np.ndarray:
        """3×3 zero-padded convolution: x [rows, N, cols, cin] → [rows, N, cols, cout], as ONE matrix
        product [squares·N, 9·cin] @ [9·cin, cout] over an im2col buffer.

        `cols` [rows, N, cols, 9·cin] holds, for each square, its nine neighbours' channels in
        (ky, kx, cin) order. Each neighbour's copy always writes the same sub-rectangle, so what lies
        outside the board stays the zeros the buffer was made with. One product with K = 9·cin runs
        closer to the BLAS peak than three with K = 3·cin summed (measured on 20×256, 32 positions:
        1.4× faster in float32), for nine copies of the activations instead of three.
        """
        b, cin = self.board, conv.cin
        for ky in range(3):
            dy = ky - 1
            r0, r1 = max(0, -dy), b - max(0, dy)
            for kx in range(3):
                dx = kx - 1
                c0, c1 = max(0, -dx), b - max(0, dx)
                k = 3 * ky + kx
                cols[r0:r1, :, c0:c1, k * cin:(k + 1) * cin] = x[r0 + dy:r1 + dy, :, c0 + dx:c1 + dx]
        w, shift = conv.arrays()
        y = cols.reshape(-1, 9 * cin) @ w.reshape(9 * cin, conv.cout)
        y += shift
        return y.reshape(x.shape[:3] + (conv.cout,))

    @staticmethod
    def _flatten(x: np.ndarray) -> np.ndarray:
        """[rows, N, cols, C] → [N, squares·C] in (square, channel) order, the rows of `_head_fc`."""
        return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], -1)

    def input_array(self, planes, source: str = "<planes>") -> np.ndarray:
        """Accepted layouts → [N, squares, planes] in the model's dtype; FormatError otherwise."""
        x = np.asarray(planes)
        p, sq, b = self.planes, self.squares, self.board
        if x.ndim == 4 and x.shape[1:] == (p, b, b):
            x = x.reshape(x.shape[0], p, sq)
        if x.ndim != 3 or x.shape[1:] != (p, sq):
            raise FormatError(source, f"input planes have shape {list(x.shape)}, expected [N,{p},{b},{b}] or "
                                      f"[N,{p},{sq}] for this {self.family.value} network")
        if x.shape[0] == 0:
            raise FormatError(source, "no input positions (N = 0)")
        if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
            raise FormatError(source, f"input planes are {x.dtype}, expected numbers")
        x = x.astype(self.dtype)
        if not np.all(np.isfinite(x)):
            raise FormatError(source, "input planes contain non-finite values")
        return np.ascontiguousarray(x.transpose(0, 2, 1))

    def heads(self, planes, choices, source: str = "<planes>") -> list[Outputs]:
        """Outputs for each (policy head, value head) of `choices` (None: this model's own); an attention
        body is evaluated once for all of them."""
        if self.attention_body is None:
            return [self(planes, source) if c == (None, None) else
                    Model(self.net, self.semantics, self.dtype, *c, lazy=self.lazy)(planes, source) for c in choices]
        outs = self.attention_body.many(self.input_array(planes, source), choices)
        return [Outputs(policy=_softmax(o["policy_logits"]), **o) for o in outs]

    def __call__(self, planes, source: str = "<planes>") -> Outputs:
        raw = self.input_array(planes, source)  # [N, squares, planes]
        if self.attention_body is not None:
            out = self.attention_body(raw)
            return Outputs(policy=_softmax(out["policy_logits"]), **out)
        n, b, c = raw.shape[0], self.board, self.input.cout
        x = np.ascontiguousarray(raw.reshape(n, b, b, self.planes).transpose(1, 0, 2, 3))
        # One im2col buffer per input width, reused by every 3×3 convolution of that width: what
        # lies off the board stays zero because only the on-board part is ever written.
        bufs = {}

        def conv3(h, conv):
            if conv.cin not in bufs:
                bufs[conv.cin] = self.conv3_buffer(conv.cin, n)
            return self._conv3(h, conv, bufs[conv.cin])

        x = self._act(conv3(x, self.input))
        for conv1, conv2, se in self.tower:
            h = self._act(conv3(x, conv1))
            y = conv3(h, conv2)
            if se is not None:
                w1, b1, w2, b2 = se
                pooled = y.mean(axis=(0, 2))  # [N, C]: average over the board
                z = self._act(pooled @ w1 + b1) @ w2 + b2
                y *= _sigmoid(z[:, :c])[None, :, None, :]
                y += z[None, :, None, c:]
            y += x
            x = self._act(y)

        # Policy.
        if self.attention_policy is not None:
            # lc0 hands the body's output over NCHW → [square][channel]: tokens [N, 64, C].
            logits = self.attention_policy(x.transpose(1, 0, 2, 3).reshape(n, self.squares, c))
        elif self.conv_policy:
            p = conv3(self._act(conv3(x, self.policy1)), self.policy)  # [8, N, 8, 80], no activation
            # lc0 indexes the 80 planes as plane·64 + square.
            logits = p.transpose(1, 3, 0, 2).reshape(n, -1)[:, self.policy_gather]
        else:
            p = self._act(self._conv1(x, self.policy))
            w, bias = self.ip_pol
            logits = self._flatten(p) @ w + bias
        logits = np.ascontiguousarray(logits)

        # Value.
        v = self._act(self._conv1(x, self.value))
        w, bias = self.ip1_val
        v = self._act(self._flatten(v) @ w + bias)
        w, bias = self.ip2_val
        v = v @ w + bias
        wdl = None
        if self.wdl:
            wdl = _softmax(v)
            value = wdl[:, 0] - wdl[:, 2]
        else:
            value = np.tanh(v[:, 0])

        moves_left = None
        if self.moves_left is not None:
            ml, (w1, b1), (w2, b2) = self.moves_left
            m = self._act(self._conv1(x, ml))
            m = self._act(self._flatten(m) @ w1 + b1)
            moves_left = np.maximum(m @ w2 + b2, 0)[:, 0]  # lc0: ReLU on the output, whatever the activation

        winrate = None
        if self.family is Family.GO:
            if self.value_from_black:
                black_to_move = raw[:, :, GO_BLACK_TO_MOVE_PLANE].mean(axis=1) > 0.5
                value = np.where(black_to_move, value, -value)
            winrate = (1 + value) / 2
        return Outputs(policy_logits=logits, policy=_softmax(logits), value=value, wdl=wdl,
                       moves_left=moves_left, winrate=winrate)
