"""The format-neutral in-memory network.

Mirrors the Lc0 structure — input block, residual tower with optional SE,
policy/value/moves-left heads — and covers Leela Zero Go networks as the same
structure with other dimensions (18 planes, 19×19, 362-way policy). Readers
build it, writers serialize it, transforms map it to a new one; none of them
needs to know any other format.

Every ConvBlock field is *present or absent* (None): absence means something to
old engines (no gammas → γ = 1) and must round-trip. Tensors are never modified
in place; a transform builds new `Tensor`s and a new structure (`copy()` shares
the untouched ones). Its consistency checks live in `shapes.py`, which reads this
module (never the reverse); the schema's numbers live in `constants.py`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

from lcconvert.attention import AttentionWeights
from lcconvert.constants import (
    ACTIVATION_RELU,
    ATTENTION_NETWORKS,
    BOARD_SIZE,
    HEAD_CONV_SLOTS,
    HEAD_LAYOUT,
    INPUT_PLANES,
    MOVES_LEFT_NONE,
    MOVES_LEFT_V1,
    NETWORK_CLASSICAL,
    POLICY_ATTENTION,
    POLICY_CLASSICAL,
    POLICY_OUTPUTS,
    VALUE_CLASSICAL,
    VALUE_WDL,
    Family,
)
from lcconvert.errors import NetworkError
from lcconvert.tensor import Tensor


@dataclass
class NetFormat:
    """`NetworkFormat` of an Lc0 file; None means the field is absent (engine default)."""

    input: int | None = None
    output: int | None = None
    network: int | None = None
    policy: int | None = None
    value: int | None = None
    moves_left: int | None = None
    default_activation: int | None = None
    smolgen_activation: int | None = None  # ActivationFunction enum (attention bodies)
    ffn_activation: int | None = None  # ActivationFunction enum (attention bodies)
    input_embedding: int | None = None  # InputEmbeddingFormat (attention bodies)

    FIELDS = ("input", "output", "network", "policy", "value", "moves_left", "default_activation",
              "smolgen_activation", "ffn_activation", "input_embedding")

    # Resolved values: what an engine assumes for an absent field.
    @property
    def network_kind(self) -> int:
        return self.network or NETWORK_CLASSICAL

    @property
    def policy_kind(self) -> int:
        return self.policy or POLICY_CLASSICAL

    @property
    def value_kind(self) -> int:
        return self.value or VALUE_CLASSICAL

    @property
    def moves_left_kind(self) -> int:
        return self.moves_left or MOVES_LEFT_NONE

    @property
    def activation(self) -> int:
        return self.default_activation or ACTIVATION_RELU

    @property
    def is_attention(self) -> bool:
        return self.network_kind in ATTENTION_NETWORKS or self.policy_kind == POLICY_ATTENTION


@dataclass
class ConvBlock:
    """A convolution with its batch-norm statistics; `variances` is Lc0's `bn_stddivs`."""

    weights: Tensor | None = None
    biases: Tensor | None = None
    means: Tensor | None = None
    variances: Tensor | None = None
    gammas: Tensor | None = None
    betas: Tensor | None = None

    FIELDS = ("weights", "biases", "means", "variances", "gammas", "betas")
    BN_FIELDS = ("means", "variances", "gammas", "betas")

    @property
    def out_channels(self) -> int | None:
        for name in ("means", "variances", "biases", "betas", "gammas"):
            t = getattr(self, name)
            if t is not None:
                return t.size
        return None

    @property
    def has_bn(self) -> bool:
        return self.means is not None or self.variances is not None

    @property
    def present(self) -> tuple[str, ...]:
        return tuple(f for f in self.FIELDS if getattr(self, f) is not None)

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        for f in self.FIELDS:
            t = getattr(self, f)
            if t is not None:
                yield f, t

    def replace(self, **changes) -> "ConvBlock":
        return dataclasses.replace(self, **changes)


@dataclass
class SEUnit:
    """Squeeze-excitation: w1 [se][C], b1 [se], w2 [2C][se], b2 [2C]."""

    w1: Tensor | None = None
    b1: Tensor | None = None
    w2: Tensor | None = None
    b2: Tensor | None = None

    FIELDS = ("w1", "b1", "w2", "b2")

    @property
    def channels(self) -> int:
        return self.b1.size if self.b1 is not None else 0

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        for f in self.FIELDS:
            t = getattr(self, f)
            if t is not None:
                yield f, t


@dataclass
class Residual:
    conv1: ConvBlock = field(default_factory=ConvBlock)
    conv2: ConvBlock = field(default_factory=ConvBlock)
    se: SEUnit | None = None


@dataclass
class Source:
    """Where a network came from; used in messages, `inspect`, and by writers."""

    path: str = "<memory>"
    kind: str = "memory"  # "pb", "text", "checkpoint", "memory"
    compressed: bool = False
    text_version: int | None = None
    size_bytes: int | None = None
    # SHA-256 of the uncompressed bytes read (protobuf and text files): a writer whose output has the
    # same digest writes the input's own bytes instead of compressing again (pipeline.write_file).
    payload_digest: bytes | None = None


@dataclass
class Network:
    family: Family = Family.CHESS
    format: NetFormat = field(default_factory=NetFormat)
    min_version: tuple[int, int, int] | None = None
    weights_encoding: int | None = None  # Format.weights_encoding (1 = LINEAR16), None if absent
    license: str | None = None

    input: ConvBlock = field(default_factory=ConvBlock)
    residual: list[Residual] = field(default_factory=list)
    policy1: ConvBlock | None = None
    policy: ConvBlock | None = None
    ip_pol_w: Tensor | None = None
    ip_pol_b: Tensor | None = None
    value: ConvBlock | None = None
    ip1_val_w: Tensor | None = None
    ip1_val_b: Tensor | None = None
    ip2_val_w: Tensor | None = None
    ip2_val_b: Tensor | None = None
    moves_left: ConvBlock | None = None
    ip1_mov_w: Tensor | None = None
    ip1_mov_b: Tensor | None = None
    ip2_mov_w: Tensor | None = None
    ip2_mov_b: Tensor | None = None

    # Leela Zero text v2 stores the value from black's side (ELF nets).
    go_value_from_black: bool = False
    # Batch-norm epsilon the statistics were computed with (training side).
    epsilon: float = 1e-5
    source: Source = field(default_factory=Source)
    # Opaque: the Lc0 reader keeps the parsed message here so fields lcconvert
    # does not model (attention layers, ONNX, unknown fields) survive a rewrite.
    pb_template: object | None = field(default=None, repr=False)
    # Set by readers when the file has attention-body or ONNX content.
    attention_body: bool = False
    # The attention-era layers (Weights fields 17-45: embeddings, encoders, attention policy, multi-head
    # heads) as tensors, when the file has any; None for convolution-only networks and ONNX.
    attention: AttentionWeights | None = None

    # -- derived architecture ------------------------------------------------
    @property
    def filters(self) -> int:
        c = self.input.out_channels
        if c is None:
            raise NetworkError(self.source.path, "input block has no biases, means or variances: cannot tell its filters")
        return c

    @property
    def blocks(self) -> int:
        return len(self.residual)

    @property
    def se_channels(self) -> int:
        for r in self.residual:
            if r.se is not None:
                return r.se.channels
        return 0

    @property
    def input_planes(self) -> int:
        return INPUT_PLANES[self.family]

    @property
    def board_size(self) -> int:
        return BOARD_SIZE[self.family]

    @property
    def squares(self) -> int:
        return self.board_size ** 2

    @property
    def policy_outputs(self) -> int:
        return POLICY_OUTPUTS[self.family]

    @property
    def value_outputs(self) -> int:
        return 3 if self.format.value_kind == VALUE_WDL else 1

    @property
    def has_attention_body(self) -> bool:
        """An attention body (encoders, no convolution input), as opposed to a convolution body that
        carries an attention policy head (network 4 + POLICY_ATTENTION) or no attention at all."""
        att = self.attention
        return att is not None and (self.format.network_kind in ATTENTION_NETWORKS or att.repeated("encoder") > 0
                                    or not self.input.present)

    @property
    def has_moves_left(self) -> bool:
        return self.format.moves_left_kind == MOVES_LEFT_V1 and self.moves_left is not None

    # -- traversal -----------------------------------------------------------
    def conv_blocks(self) -> Iterator[tuple[str, ConvBlock]]:
        """Every ConvBlock in network order, named e.g. `residual.3.conv2`."""
        yield "input", self.input
        for i, r in enumerate(self.residual):
            yield f"residual.{i}.conv1", r.conv1
            yield f"residual.{i}.conv2", r.conv2
        for slot in HEAD_CONV_SLOTS:
            block = getattr(self, slot)
            if block is not None:
                yield slot, block

    def bn_blocks(self) -> Iterator[tuple[str, ConvBlock]]:
        """ConvBlocks that carry batch-norm statistics (the conv policy's last conv has none)."""
        for name, block in self.conv_blocks():
            if block.has_bn:
                yield name, block

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """Every tensor in network order, named e.g. `residual.0.se.w1`, `input.means`, `ip_pol_w`."""
        for f, t in self.input.tensors():
            yield f"input.{f}", t
        for i, r in enumerate(self.residual):
            for conv in ("conv1", "conv2"):
                for f, t in getattr(r, conv).tensors():
                    yield f"residual.{i}.{conv}.{f}", t
            if r.se is not None:
                for f, t in r.se.tensors():
                    yield f"residual.{i}.se.{f}", t
        for slot, fcs in HEAD_LAYOUT:
            block = getattr(self, slot)
            if block is not None:
                for f, t in block.tensors():
                    yield f"{slot}.{f}", t
            for fc in fcs:
                t = getattr(self, fc)
                if t is not None:
                    yield fc, t
        if self.attention is not None:
            yield from self.attention.tensors.items()

    @property
    def parameters(self) -> int:
        return sum(t.size for _, t in self.tensors())

    @property
    def encodings(self) -> list[str]:
        return sorted({t.encoding.name for _, t in self.tensors()})

    def copy(self) -> "Network":
        """A new structure sharing the (immutable) tensors."""
        return _structural_copy(self)


def _structural_copy(net: Network) -> Network:
    new = dataclasses.replace(net)
    new.format = dataclasses.replace(net.format)
    new.source = dataclasses.replace(net.source)
    new.input = net.input.replace()
    new.residual = [
        Residual(r.conv1.replace(), r.conv2.replace(), dataclasses.replace(r.se) if r.se else None)
        for r in net.residual
    ]
    for slot in HEAD_CONV_SLOTS:
        block = getattr(net, slot)
        setattr(new, slot, block.replace() if block is not None else None)
    if net.attention is not None:
        new.attention = net.attention.copy()
    return new
