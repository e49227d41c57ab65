"""Facts of the Lc0 and Leela Zero schemas: enum numbers, plane counts, head slots, epsilons.

Why one module: every layer needs some of these (readers to build a network,
the model to check its shapes, the forward pass to evaluate it, reports to name
them), and a fact written once cannot disagree with itself. This is the bottom
of the house: it imports nothing of lcconvert, so anything may import it.
Numbers and names are those of lczero-common's `net.proto` (FORMATS.md §1) and
of Leela Zero's engine (FORMATS.md §4, §5).
"""
from __future__ import annotations

import enum


class Family(str, enum.Enum):
    CHESS = "chess"
    GO = "go"


# Facts per family (FORMATS.md §2, §4, §5).
INPUT_PLANES = {Family.CHESS: 112, Family.GO: 18}
BOARD_SIZE = {Family.CHESS: 8, Family.GO: 19}
POLICY_OUTPUTS = {Family.CHESS: 1858, Family.GO: 362}
CONV_POLICY_PLANES = 80  # lc0 convolution policy: 80 planes, the first 73 mapped to 1858 moves
GO_BLACK_TO_MOVE_PLANE = 16  # Leela Zero: planes 16/17 say black/white to move

# Batch-norm epsilon of every lc0 and Leela Zero build, and of lczero-training (FORMATS.md §3).
ENGINE_EPSILON = 1e-5

# NetworkFormat enum numbers (FORMATS.md §1).
INPUT_CLASSICAL_112_PLANE = 1
KNOWN_INPUT_FORMATS = (1, 2, 3, 4, 5, 132, 133)
OUTPUT_CLASSICAL, OUTPUT_WDL = 1, 2
NETWORK_CLASSICAL, NETWORK_SE = 1, 2
NETWORK_CLASSICAL_WITH_HEADFORMAT, NETWORK_SE_WITH_HEADFORMAT = 3, 4
NETWORK_ONNX = 5
ATTENTION_NETWORKS = (6, 7, 134)
POLICY_CLASSICAL, POLICY_CONVOLUTION, POLICY_ATTENTION = 1, 2, 3
VALUE_CLASSICAL, VALUE_WDL, VALUE_PARAM = 1, 2, 3
MOVES_LEFT_NONE, MOVES_LEFT_V1 = 0, 1
ACTIVATION_RELU, ACTIVATION_MISH = 0, 1
NETWORK_ATTENTIONBODY_WITH_HEADFORMAT, NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT = 6, 7
NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT = 134
# NetworkFormat.ActivationFunction (smolgen_activation, ffn_activation): a different enum from
# default_activation's DefaultActivation (RELU = 0, MISH = 1) above.
ACTIVATION_FUNCTIONS = {0: "default", 1: "mish", 2: "relu", 3: "none", 4: "tanh", 5: "sigmoid", 6: "selu",
                        7: "swish", 8: "relu_2", 9: "softmax"}
ACTIVATION_FN_DEFAULT, ACTIVATION_FN_RELU_2, ACTIVATION_FN_SWISH = 0, 8, 7
# NetworkFormat.InputEmbeddingFormat.
INPUT_EMBEDDING_NONE, INPUT_EMBEDDING_PE_MAP, INPUT_EMBEDDING_PE_DENSE = 0, 1, 2
# Head names lc0's backends accept for their `policy_head` / `value_head` options, in the order
# lc0's MultiHeadWeights reads them (src/neural/network_legacy.cc), with the protobuf field of each.
POLICY_HEADS = {"vanilla": "vanilla", "optimistic": "optimistic_st", "soft": "soft", "opponent": "opponent"}
VALUE_HEADS = {"winner": "winner", "q": "q", "st": "st"}
DEFAULT_POLICY_HEAD, DEFAULT_VALUE_HEAD = "vanilla", "winner"
# Format.weights_encoding = LINEAR16: lc0 before v0.33 refuses any other value.
LINEAR16_FORMAT = 1

# lczero-training's names for NetworkFormat values in its YAML (tfprocess.py).
TRAINING_INPUT_FORMATS = {
    "classic": 1,
    "frc_castling": 2,
    "canonical": 3,
    "canonical_100": 4,
    "canonical_armageddon": 132,
    "canonical_v2": 5,
    "canonical_v2_armageddon": 133,
}
TRAINING_POLICY_FORMATS = {"classical": POLICY_CLASSICAL, "convolution": POLICY_CONVOLUTION}
TRAINING_VALUE_FORMATS = {"classical": VALUE_CLASSICAL, "wdl": VALUE_WDL}
TRAINING_MOVES_LEFT_FORMATS = {"none": MOVES_LEFT_NONE, "v1": MOVES_LEFT_V1}
TRAINING_ACTIVATIONS = {"relu": ACTIVATION_RELU, "mish": ACTIVATION_MISH}

# Top-level ConvBlocks and FC layers, in network order, named as in Lc0's schema.
HEAD_CONV_SLOTS = ("policy1", "policy", "value", "moves_left")
# Each head: its ConvBlock slot and the fully connected layers that follow it.
HEAD_LAYOUT = (
    ("policy1", ()),
    ("policy", ("ip_pol_w", "ip_pol_b")),
    ("value", ("ip1_val_w", "ip1_val_b", "ip2_val_w", "ip2_val_b")),
    ("moves_left", ("ip1_mov_w", "ip1_mov_b", "ip2_mov_w", "ip2_mov_b")),
)
FC_SLOTS = tuple(fc for _, fcs in HEAD_LAYOUT for fc in fcs)
