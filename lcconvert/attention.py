"""The attention-era layers of an Lc0 network, held as tensors exactly as stored.

Why a table of paths rather than one dataclass per message: the attention part of
lc0's schema (`Weights` fields 17–45) nests five levels deep (Weights → PolicyHeads →
PolicyHead → EncoderLayer → MHA → Smolgen) and keeps growing (per-head encoders, head
maps, value-error layers lc0 never reads). Every `Layer` is kept here under its dotted
protobuf path — `encoder.0.mha.smolgen.dense1_w`, `policy_heads.vanilla.ip2_pol_w`,
`value_heads.q.ip_val_err_w` — so a reader can store every layer it finds, a writer can
put each back where it came from (byte for byte when untouched), a re-encoding maps
every tensor by name, and nothing the schema adds later is silently dropped. Repeated
messages get their index as a path element. The fields the convolution model already
holds (`input`, `residual`, `policy`, `ip_pol_w`, `ip1_val_w`, … `ip2_mov_b`) stay on the
`Network`; this holds the rest.

Beside the tensors: the integer fields an evaluator needs (`headcount`, `pol_headcount`,
per policy head `pol_headcount`), and which sub-messages are present at all, because
lc0 decides on presence (`mha.has_smolgen()`, `weights.has_policy_heads()`), not on
content. How the layers are *used* — lc0's defaults, fallbacks and format rewrites — is
the forward pass's business (`forward_attention.py`), not this module's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

from lcconvert.tensor import Tensor


@dataclass
class AttentionWeights:
    """Attention-era layers by dotted protobuf path, in file order."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    # Integer fields by dotted path: "headcount", "pol_headcount", "policy_heads.vanilla.pol_headcount".
    counts: dict[str, int] = field(default_factory=dict)
    # Dotted paths of every sub-message present in the file ("policy_heads", "encoder.0.mha.smolgen").
    messages: frozenset[str] = frozenset()

    def get(self, path: str) -> Tensor | None:
        return self.tensors.get(path)

    def has(self, path: str) -> bool:
        """Whether a layer or a sub-message exists at `path` (lc0's `has_…()`)."""
        return path in self.tensors or path in self.messages

    def count(self, path: str) -> int:
        return self.counts.get(path, 0)

    def repeated(self, path: str) -> int:
        """How many entries the repeated message at `path` has (e.g. `encoder`)."""
        n = 0
        while f"{path}.{n}" in self.messages:
            n += 1
        return n

    def under(self, prefix: str) -> Iterator[tuple[str, Tensor]]:
        """Every tensor whose path starts with `prefix.`, with the path relative to it."""
        start = prefix + "."
        for path, t in self.tensors.items():
            if path.startswith(start):
                yield path[len(start):], t

    def copy(self) -> "AttentionWeights":
        """A new table sharing the (immutable) tensors."""
        return dataclasses.replace(self, tensors=dict(self.tensors), counts=dict(self.counts))

    @property
    def parameters(self) -> int:
        return sum(t.size for t in self.tensors.values())
