"""Shape consistency of a Network: every tensor against the inferred architecture.

The architecture (filters C, SE size, head widths) is inferred from the vector
lengths of the batch-norm layers, then every weight matrix is checked against it.
Each problem names its block, e.g. "residual.3.conv1.means: 63 values, expected 64".
"""
from __future__ import annotations

import numpy as np

from lcconvert.constants import CONV_POLICY_PLANES, MOVES_LEFT_V1, POLICY_ATTENTION, POLICY_CONVOLUTION
from lcconvert.errors import refuse_problems
from lcconvert.network import ConvBlock, Network


def _expect(problems: list[str], name: str, tensor, expected: int) -> None:
    if tensor is None:
        problems.append(f"{name}: missing (expected {expected} values)")
    elif tensor.size != expected:
        problems.append(f"{name}: {tensor.size} values, expected {expected}")


def _conv_block(problems, name: str, block: ConvBlock | None, cin: int, cout: int | None, kernel: int,
                bn: bool = True) -> int | None:
    """Check one ConvBlock; returns its output channels (inferred when `cout` is None)."""
    if block is None:
        problems.append(f"{name}: missing")
        return None
    if cout is None:
        cout = block.out_channels
        if cout is None:
            if block.weights is not None and block.weights.size % (cin * kernel * kernel) == 0:
                cout = block.weights.size // (cin * kernel * kernel)
            else:
                problems.append(f"{name}: cannot tell its output channels (no biases or batch-norm layers)")
                return None
    _expect(problems, f"{name}.weights", block.weights, cout * cin * kernel * kernel)
    for f in ("biases",) + ConvBlock.BN_FIELDS:
        t = getattr(block, f)
        if t is not None and t.size != cout:
            problems.append(f"{name}.{f}: {t.size} values, expected {cout}")
    if bn and (block.means is None) != (block.variances is None):
        problems.append(f"{name}: has {'means' if block.means is not None else 'variances'} "
                        f"without {'variances' if block.means is not None else 'means'}")
    if bn and block.means is None and block.variances is None:
        problems.append(f"{name}: no batch-norm means/variances")
    return cout


def structure_problems(net: Network) -> list[str]:
    """Every shape inconsistency, each naming its block. Empty when consistent."""
    problems: list[str] = []
    if net.attention_body or net.format.is_attention:
        if net.attention is None or net.has_attention_body:
            # ONNX, or an attention body: its layers are checked where they are prepared for
            # evaluation (forward_attention, naming each layer), not here.
            return problems
    planes, squares = net.input_planes, net.squares
    c = net.input.out_channels
    if c is None:
        return ["input: no biases, means or variances: cannot tell the filter count"]
    _conv_block(problems, "input", net.input, planes, c, 3)
    se_channels = None
    for i, r in enumerate(net.residual):
        _conv_block(problems, f"residual.{i}.conv1", r.conv1, c, c, 3)
        _conv_block(problems, f"residual.{i}.conv2", r.conv2, c, c, 3)
        if r.se is not None:
            s = r.se.channels
            if se_channels is None:
                se_channels = s
            elif s != se_channels:
                problems.append(f"residual.{i}.se.b1: {s} values, other blocks have {se_channels}")
            _expect(problems, f"residual.{i}.se.w1", r.se.w1, s * c)
            _expect(problems, f"residual.{i}.se.w2", r.se.w2, 2 * c * s)
            _expect(problems, f"residual.{i}.se.b2", r.se.b2, 2 * c)

    # Policy head.
    if net.format.policy_kind == POLICY_CONVOLUTION:
        _conv_block(problems, "policy1", net.policy1, c, c, 3)
        _conv_block(problems, "policy", net.policy, c, CONV_POLICY_PLANES, 3, bn=False)
        if net.policy is not None and net.policy.biases is None:
            problems.append("policy.biases: missing (expected 80 values)")
    elif net.format.policy_kind == POLICY_ATTENTION:
        pass  # the attention policy head: checked by forward_attention where it is prepared
    else:
        if net.policy1 is not None:
            problems.append("policy1: present but the policy format is not CONVOLUTION")
        p = _conv_block(problems, "policy", net.policy, c, None, 1)
        if p is not None:
            _expect(problems, "ip_pol_w", net.ip_pol_w, net.policy_outputs * p * squares)
            _expect(problems, "ip_pol_b", net.ip_pol_b, net.policy_outputs)

    # Value head.
    v = _conv_block(problems, "value", net.value, c, None, 1)
    if v is not None:
        hidden = net.ip1_val_b.size if net.ip1_val_b is not None else None
        if hidden is None:
            problems.append("ip1_val_b: missing")
        else:
            _expect(problems, "ip1_val_w", net.ip1_val_w, hidden * v * squares)
            outputs = net.value_outputs
            if net.ip2_val_b is not None and net.ip2_val_b.size != outputs:
                kind = "WDL" if outputs == 3 else "classical"
                problems.append(f"ip2_val_b: {net.ip2_val_b.size} values, but the value head is declared "
                                f"{kind} ({outputs} output{'s' if outputs > 1 else ''})")
            else:
                _expect(problems, "ip2_val_b", net.ip2_val_b, outputs)
                _expect(problems, "ip2_val_w", net.ip2_val_w, outputs * hidden)

    # Moves-left head.
    if net.format.moves_left_kind == MOVES_LEFT_V1:
        m = _conv_block(problems, "moves_left", net.moves_left, c, None, 1)
        if m is not None:
            hidden = net.ip1_mov_b.size if net.ip1_mov_b is not None else None
            if hidden is None:
                problems.append("ip1_mov_b: missing")
            else:
                _expect(problems, "ip1_mov_w", net.ip1_mov_w, hidden * m * squares)
                _expect(problems, "ip2_mov_w", net.ip2_mov_w, hidden)
                _expect(problems, "ip2_mov_b", net.ip2_mov_b, 1)
    return problems


def check(net: Network) -> Network:
    """Raise NetworkError naming the file and the first shape problem; return `net` when consistent."""
    refuse_problems(net.source.path, structure_problems(net))
    return net


def value_problems(net: Network, epsilon: float = 1e-5) -> list[str]:
    """Numeric problems: non-finite values anywhere, σ² + ε ≤ 0, LINEAR16 min > max."""
    problems: list[str] = []
    for name, t in net.tensors():
        # A one-value layer stores min = 0, max = x (FORMATS.md §1), so min > max is valid there.
        if t.min_val is not None and t.max_val is not None and t.min_val > t.max_val and t.size > 1:
            problems.append(f"{name}: LINEAR16 min {t.min_val:g} is above max {t.max_val:g}")
        count, first = t.nonfinite()
        if count:
            more = f" ({count} in all)" if count > 1 else ""
            problems.append(f"{name}: non-finite value at index {first}{more}")
    for name, block in net.bn_blocks():
        if block.variances is not None:
            var = block.variances.values.astype(np.float64)
            bad = ~(var + epsilon > 0)
            if bad.any():
                i = int(np.argmax(bad))
                more = f", {int(bad.sum())} channels in all" if bad.sum() > 1 else ""
                problems.append(f"{name}.variances: σ²+ε ≤ 0 in channel {i} (σ² = {var[i]:g}, ε = {epsilon:g}{more})")
    return problems
