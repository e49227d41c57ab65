"""Engine versions: what `min_version` a file needs for its architecture and encodings.

The table `required()` applies, and where each entry comes from:

  feature                                   lowest lc0   source
  protobuf network (any)                    0.16         lczero-training tf/net.py (2018-07, LC0_MINOR = 16);
                                                         lc0 changelog v0.16.0 "format of network files changed"
  SE residual blocks                        0.20         lczero-training "SE needs lc0 version 20" (2018-12);
                                                         lc0 changelog v0.20.0-rc1 "SE networks are now supported"
  head formats: convolution policy, WDL     0.21         lczero-training LC0_MINOR = 21 (2019-02, conv policy /
  value, *_WITH_HEADFORMAT network enums                 WDL commit), written for every net since then
  input formats 2, 3 (castling, canonical)  0.25         lczero-training set_input (format 2 was buggy before
                                                         3 shipped, so it gets 3's version)
  input formats 4, 132 (hectoplies)         0.26         lczero-training LC0_MINOR_WITH_INPUT_TYPE_4
  input formats 5, 133 (canonical v2)       0.27         lczero-training LC0_MINOR_WITH_INPUT_TYPE_5
  mish default activation                   0.29         lczero-training LC0_MINOR_WITH_MISH
  attention policy head (POLICY_ATTENTION)  0.29         lc0 changelog v0.29.0-rc1 "Full attention policy support"
  attention body, smolgen/ffn activations   0.30         lczero-training LC0_MINOR_WITH_ATTN_BODY
  multi-head format (network 7, 134;        0.31         lc0 changelog v0.31.0-rc1 "support for multihead
  policy_heads / value_heads)                            network architecture"; lczero-training's JAX export
                                                         writes 0.31
  any layer not LINEAR16 (Layer.encoding)   0.33         lc0 net.proto Layer.encoding; every release up to
                                                         v0.32 decodes all layers as LINEAR16 (FORMATS.md §1)

Deliberately *not* requirements:
  - moves-left head (MOVES_LEFT_V1): lc0 uses it from 0.25.0 (changelog: "Support for Moves Left Head
    based networks"), but older engines skip the unknown fields and run policy and value correctly;
    lczero-training never raises min_version for it. `MOVES_LEFT` records the version for reports.
  - batch-norm γ/β: every protobuf engine loads them, but lc0 ≤ 0.19 ignores them silently and 0.20
    loses the sign of negative γ (fixed in 0.21, lc0 #779; changelog v0.21.0). A file that still has
    γ/β effect is only *correct* from `GAMMA_BETA_CORRECT` on — which is what `fold-bias` removes, so
    the folded file needs only what the table above says.
"""
from __future__ import annotations

from lcconvert.constants import (
    ACTIVATION_MISH,
    NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT,
    NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT,
    NETWORK_SE,
    NETWORK_SE_WITH_HEADFORMAT,
    POLICY_ATTENTION,
)
from lcconvert.network import Network

Version = tuple[int, int, int]
MULTIHEAD_NETWORKS = (NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT, NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT)

FIRST_PROTOBUF: Version = (0, 16, 0)
SE_BODY: Version = (0, 20, 0)
HEAD_FORMATS: Version = (0, 21, 0)
INPUT_FORMAT: dict[int, Version] = {2: (0, 25, 0), 3: (0, 25, 0), 4: (0, 26, 0), 132: (0, 26, 0),
                                    5: (0, 27, 0), 133: (0, 27, 0)}
MISH: Version = (0, 29, 0)
ATTENTION_POLICY: Version = (0, 29, 0)
ATTENTION_BODY: Version = (0, 30, 0)
MULTIHEAD: Version = (0, 31, 0)
LAYER_ENCODINGS: Version = (0, 33, 0)
# Last engine releases that ignore batch-norm gamma/beta (FORMATS.md §3).
IGNORES_GAMMA_BETA: Version = (0, 19, 0)
# First release that applies γ/β correctly for any sign of γ (lc0 #779, changelog v0.21.0).
GAMMA_BETA_CORRECT: Version = (0, 21, 0)
# First release that uses a moves-left head; not a requirement (see the module docstring).
MOVES_LEFT: Version = (0, 25, 0)


def fmt(version: Version | None) -> str:
    return "none" if version is None else ".".join(str(v) for v in version)


def required(net: Network, encodings: bool = True) -> Version:
    """The lowest engine version able to run `net` as stored (table above).

    encodings=False: what the architecture alone needs, for a network whose
    layers are not yet in their final encoding (a checkpoint read as floats).
    """
    need = FIRST_PROTOBUF
    f = net.format
    if f.network in (NETWORK_SE, NETWORK_SE_WITH_HEADFORMAT) or net.se_channels:
        need = max(need, SE_BODY)
    if f.network is not None and f.network >= 3 or f.policy_kind == 2 or f.value_kind == 2:
        need = max(need, HEAD_FORMATS)
    need = max(need, INPUT_FORMAT.get(f.input or 1, FIRST_PROTOBUF))
    if f.activation == ACTIVATION_MISH:
        need = max(need, MISH)
    if f.policy_kind == POLICY_ATTENTION:
        need = max(need, ATTENTION_POLICY)
    if net.attention_body and (net.attention is None or net.has_attention_body):
        need = max(need, ATTENTION_BODY)
    att = net.attention
    if f.network in MULTIHEAD_NETWORKS or (att is not None and (att.has("policy_heads") or att.has("value_heads"))):
        need = max(need, MULTIHEAD)
    if encodings and any(not t.encoding.legacy_readable for _, t in net.tensors()):
        need = max(need, LAYER_ENCODINGS)
    return need
