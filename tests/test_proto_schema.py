"""The committed Lc0 schema: generated code in sync with proto/net.proto, field numbers as published.

A wrong field number reads real files as garbage without any error, so every
number of FORMATS.md §1 (and the attention-era Weights fields 17–45 of lc0's
proto/net.proto) is checked against the descriptor the package actually uses.
"""
from __future__ import annotations

import importlib.util

import pytest
from google.protobuf import descriptor, descriptor_pb2

from lcconvert._proto import net_pb2
from conftest import ROOT

PROTO = ROOT / "proto" / "net.proto"
GENERATED = ROOT / "lcconvert" / "_proto" / "net_pb2.py"


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools (the test extra) is needed to regenerate the code")
def test_generated_module_matches_the_proto(tmp_path):
    from grpc_tools import protoc

    args = ["protoc", f"-I{PROTO.parent}", f"--python_out={tmp_path}", str(PROTO)]
    assert protoc.main(args) == 0, "protoc failed on proto/net.proto"
    fresh = (tmp_path / "net_pb2.py").read_text()
    committed = GENERATED.read_text()
    assert fresh == committed, (
        "lcconvert/_proto/net_pb2.py is out of date: regenerate it with "
        "`python -m grpc_tools.protoc -Iproto --python_out=lcconvert/_proto proto/net.proto`")


EXPECTED_FIELDS = {
    "pblczero.Net": {"magic": 1, "license": 2, "min_version": 3, "format": 4, "training_params": 5,
                     "weights": 10, "onnx_model": 11, "backend_cache": 12},
    "pblczero.EngineVersion": {"major": 1, "minor": 2, "patch": 3},
    "pblczero.TrainingParams": {"training_steps": 1, "learning_rate": 2, "mse_loss": 3, "policy_loss": 4,
                                "accuracy": 5, "lc0_params": 6},
    "pblczero.Format": {"weights_encoding": 1, "network_format": 2},
    "pblczero.NetworkFormat": {"input": 1, "output": 2, "network": 3, "policy": 4, "value": 5,
                               "moves_left": 6, "default_activation": 7, "smolgen_activation": 8,
                               "ffn_activation": 9, "input_embedding": 10},
    "pblczero.Weights": {
        "input": 1, "residual": 2, "policy": 3, "ip_pol_w": 4, "ip_pol_b": 5, "value": 6, "ip1_val_w": 7,
        "ip1_val_b": 8, "ip2_val_w": 9, "ip2_val_b": 10, "policy1": 11, "moves_left": 12, "ip1_mov_w": 13,
        "ip1_mov_b": 14, "ip2_mov_w": 15, "ip2_mov_b": 16,
        # attention era (lc0 proto/net.proto)
        "ip2_pol_w": 17, "ip2_pol_b": 18, "ip3_pol_w": 19, "ip3_pol_b": 20, "pol_encoder": 21, "ip4_pol_w": 22,
        "pol_headcount": 24, "ip_emb_w": 25, "ip_emb_b": 26, "encoder": 27, "headcount": 28, "ip_val_w": 29,
        "ip_val_b": 30, "ip_mov_w": 31, "ip_mov_b": 32, "ip_mult_gate": 33, "ip_add_gate": 34,
        "smolgen_w": 35, "smolgen_b": 36, "ip_emb_preproc_w": 37, "ip_emb_preproc_b": 38,
        "ip_emb_ln_gammas": 39, "ip_emb_ln_betas": 40, "ip_emb_ffn": 41, "ip_emb_ffn_ln_gammas": 42,
        "ip_emb_ffn_ln_betas": 43, "value_heads": 44, "policy_heads": 45,
    },
    "pblczero.Weights.Layer": {"min_val": 1, "max_val": 2, "params": 3, "encoding": 4, "dims": 5},
    "pblczero.Weights.ConvBlock": {"weights": 1, "biases": 2, "bn_means": 3, "bn_stddivs": 4,
                                   "bn_gammas": 5, "bn_betas": 6},
    "pblczero.Weights.Residual": {"conv1": 1, "conv2": 2, "se": 3},
    "pblczero.Weights.SEunit": {"w1": 1, "b1": 2, "w2": 3, "b2": 4},
}

EXPECTED_ENUMS = {
    "pblczero.Weights.Layer.Encoding": {"UNKNOWN_ENCODING": 0, "LINEAR16": 1, "FLOAT16": 2, "BFLOAT16": 3,
                                        "FLOAT32": 4},
    "pblczero.Format.Encoding": {"UNKNOWN": 0, "LINEAR16": 1},
    "pblczero.NetworkFormat.InputFormat": {
        "INPUT_UNKNOWN": 0, "INPUT_CLASSICAL_112_PLANE": 1, "INPUT_112_WITH_CASTLING_PLANE": 2,
        "INPUT_112_WITH_CANONICALIZATION": 3, "INPUT_112_WITH_CANONICALIZATION_HECTOPLIES": 4,
        "INPUT_112_WITH_CANONICALIZATION_HECTOPLIES_ARMAGEDDON": 132, "INPUT_112_WITH_CANONICALIZATION_V2": 5,
        "INPUT_112_WITH_CANONICALIZATION_V2_ARMAGEDDON": 133},
    "pblczero.NetworkFormat.OutputFormat": {"OUTPUT_UNKNOWN": 0, "OUTPUT_CLASSICAL": 1, "OUTPUT_WDL": 2},
    "pblczero.NetworkFormat.NetworkStructure": {
        "NETWORK_UNKNOWN": 0, "NETWORK_CLASSICAL": 1, "NETWORK_SE": 2, "NETWORK_CLASSICAL_WITH_HEADFORMAT": 3,
        "NETWORK_SE_WITH_HEADFORMAT": 4, "NETWORK_ONNX": 5, "NETWORK_ATTENTIONBODY_WITH_HEADFORMAT": 6,
        "NETWORK_ATTENTIONBODY_WITH_MULTIHEADFORMAT": 7, "NETWORK_AB_LEGACY_WITH_MULTIHEADFORMAT": 134},
    "pblczero.NetworkFormat.PolicyFormat": {"POLICY_UNKNOWN": 0, "POLICY_CLASSICAL": 1, "POLICY_CONVOLUTION": 2,
                                            "POLICY_ATTENTION": 3},
    "pblczero.NetworkFormat.ValueFormat": {"VALUE_UNKNOWN": 0, "VALUE_CLASSICAL": 1, "VALUE_WDL": 2,
                                           "VALUE_PARAM": 3},
    "pblczero.NetworkFormat.MovesLeftFormat": {"MOVES_LEFT_NONE": 0, "MOVES_LEFT_V1": 1},
    "pblczero.NetworkFormat.DefaultActivation": {"DEFAULT_ACTIVATION_RELU": 0, "DEFAULT_ACTIVATION_MISH": 1},
}

POOL = net_pb2.DESCRIPTOR.pool
F = descriptor.FieldDescriptor


@pytest.mark.parametrize("message", sorted(EXPECTED_FIELDS))
def test_field_numbers(message):
    desc = POOL.FindMessageTypeByName(message)
    assert {f.name: f.number for f in desc.fields} == EXPECTED_FIELDS[message]


@pytest.mark.parametrize("enum", sorted(EXPECTED_ENUMS))
def test_enum_numbers(enum):
    desc = POOL.FindEnumTypeByName(enum)
    assert {v.name: v.number for v in desc.values} == EXPECTED_ENUMS[enum]


def test_wire_types_that_readers_depend_on():
    net = net_pb2.Net.DESCRIPTOR
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(net_pb2.DESCRIPTOR.serialized_pb)
    assert file_proto.package == "pblczero"
    assert file_proto.syntax in ("", "proto2")  # protoc leaves proto2's syntax field empty
    assert net.fields_by_name["magic"].type == F.TYPE_FIXED32  # files start 0d c0 01 00 00
    assert net.fields_by_name["weights"].message_type.full_name == "pblczero.Weights"
    layer = net_pb2.Weights.Layer.DESCRIPTOR
    assert layer.fields_by_name["min_val"].type == F.TYPE_FLOAT
    assert layer.fields_by_name["max_val"].type == F.TYPE_FLOAT
    assert layer.fields_by_name["params"].type == F.TYPE_BYTES
    enc = layer.fields_by_name["encoding"]
    assert enc.type == F.TYPE_ENUM and enc.enum_type.full_name == "pblczero.Weights.Layer.Encoding"
    dims = layer.fields_by_name["dims"]
    assert dims.type == F.TYPE_UINT32 and dims.is_repeated
    for name in ("major", "minor", "patch"):
        assert net_pb2.EngineVersion.DESCRIPTOR.fields_by_name[name].type == F.TYPE_UINT32
    weights = net_pb2.Weights.DESCRIPTOR
    assert weights.fields_by_name["residual"].is_repeated
    conv = "pblczero.Weights.ConvBlock"
    for name in ("input", "policy", "value", "policy1", "moves_left"):
        assert weights.fields_by_name[name].message_type.full_name == conv
    for name in ("ip_pol_w", "ip1_val_w", "ip2_mov_b"):
        assert weights.fields_by_name[name].message_type.full_name == "pblczero.Weights.Layer"
    # proto2 optional fields: presence is tracked, which is how lcconvert keeps "absent" absent.
    assert all(f.has_presence for f in net_pb2.Weights.ConvBlock.DESCRIPTOR.fields)


def test_magic_serializes_first():
    msg = net_pb2.Net(magic=0x1C0)
    msg.min_version.minor = 21
    assert msg.SerializeToString()[:5] == b"\x0d\xc0\x01\x00\x00"
