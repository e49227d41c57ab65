"""Engine versions: what `min_version` a file needs for its architecture and encodings.

Sources (FORMATS.md §1): min_version written by lczero-training is 0.16 for the
first protobuf networks, 0.20 for SE, 0.21 for head formats (convolution policy,
WDL value), 0.25 / 0.26 / 0.27 for input formats 2–3 / 4 / 5, 0.29 for mish,
0.30 for attention bodies; any layer not in LINEAR16 needs 0.33 (every release up
to v0.32 decodes all layers as LINEAR16).
"""
from __future__ import annotations

from lcconvert.network import (
    ACTIVATION_MISH,
    NETWORK_SE,
    NETWORK_SE_WITH_HEADFORMAT,
    Network,
)

Version = tuple[int, int, int]

FIRST_PROTOBUF: Version = (0, 16, 0)
SE_BODY: Version = (0, 20, 0)
HEAD_FORMATS: Version = (0, 21, 0)
INPUT_FORMAT: dict[int, Version] = {2: (0, 25, 0), 3: (0, 25, 0), 4: (0, 26, 0), 132: (0, 26, 0),
                                    5: (0, 27, 0), 133: (0, 27, 0)}
MISH: Version = (0, 29, 0)
ATTENTION_BODY: Version = (0, 30, 0)
LAYER_ENCODINGS: Version = (0, 33, 0)
# Last engine releases that ignore batch-norm gamma/beta (FORMATS.md §3).
IGNORES_GAMMA_BETA: Version = (0, 19, 0)


def fmt(version: Version | None) -> str:
    return "none" if version is None else ".".join(str(v) for v in version)


def required(net: Network) -> Version:
    """The lowest engine version able to run `net` as stored (table above)."""
    need = FIRST_PROTOBUF
    f = net.format
    if f.network in (NETWORK_SE, NETWORK_SE_WITH_HEADFORMAT) or net.se_channels:
        need = max(need, SE_BODY)
    if f.network is not None and f.network >= 3 or f.policy_kind == 2 or f.value_kind == 2:
        need = max(need, HEAD_FORMATS)
    need = max(need, INPUT_FORMAT.get(f.input or 1, FIRST_PROTOBUF))
    if f.activation == ACTIVATION_MISH:
        need = max(need, MISH)
    if net.attention_body:
        need = max(need, ATTENTION_BODY)
    if any(not t.encoding.legacy_readable for _, t in net.tensors()):
        need = max(need, LAYER_ENCODINGS)
    return need
