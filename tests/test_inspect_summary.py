"""`lcconvert inspect`: what it reports about real maia-1100 (FORMATS.md §2 facts) and synthetic nets."""
from __future__ import annotations

import gzip
import json

import pytest
from conftest import MAIA

from lcconvert._proto import net_pb2
from lcconvert.codecs import Encoding
from lcconvert.synth import make_network, write_pb


def _inspect_json(run_cli, path) -> dict:
    r = run_cli("inspect", "--json", path)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def _layer_values(msg) -> int:
    """Parameters counted straight from the protobuf: every Layer's byte count / bytes per value."""
    total = 0
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            if field.message_type.full_name == "pblczero.Weights.Layer":
                enc = item.encoding if item.HasField("encoding") else 1
                total += len(item.params) // (4 if enc == 4 else 2)
            else:
                total += _layer_values(item)
    return total


def test_maia_json_reports_the_known_facts(run_cli):
    info = _inspect_json(run_cli, MAIA)
    assert info["family"] == "chess"
    assert info["board"] == "8x8" and info["input_planes"] == 112
    assert info["format"] == {
        "input": "INPUT_CLASSICAL_112_PLANE", "output": "OUTPUT_WDL", "network": "NETWORK_SE_WITH_HEADFORMAT",
        "policy": "POLICY_CONVOLUTION", "value": "VALUE_WDL", "moves_left": "MOVES_LEFT_NONE",
        "default_activation": "DEFAULT_ACTIVATION_RELU",
    }
    assert info["min_version"] == "0.21.0"
    assert (info["blocks"], info["filters"], info["se_channels"]) == (6, 64, 8)
    assert (info["policy"], info["value"], info["moves_left"]) == ("CONVOLUTION", "WDL", False)
    assert info["encodings"] == ["LINEAR16"]
    assert info["compressed"] is True and info["file_size"] == MAIA.stat().st_size
    msg = net_pb2.Net.FromString(gzip.decompress(MAIA.read_bytes()))
    assert info["parameters"] == _layer_values(msg) == 868_355
    # Every BN block has learned gammas and betas and no biases; the conv policy's last conv is plain.
    fields = info["conv_fields"]
    assert fields.pop("policy") == ["weights", "biases"]
    assert len(fields) == 1 + 2 * 6 + 2  # input, 12 residual convs, policy1, value
    assert all(f == ["weights", "means", "variances", "gammas", "betas"] for f in fields.values())


def test_maia_text_output(run_cli):
    r = run_cli("inspect", MAIA)
    assert r.exit_code == 0, r.stderr
    text = r.stdout
    for expected in ("NETWORK_SE_WITH_HEADFORMAT", "6 blocks x 64 filters, SE 8 channels",
                     "policy convolution, value wdl, no moves-left", "0.21.0", "LINEAR16", "868,355",
                     "1,313,193 bytes"):
        assert expected in text, (expected, text)


@pytest.mark.parametrize("kw, expected", [
    (dict(policy="classical", value="classical", moves_left=True, se_ratio=None, activation="mish"),
     dict(policy="CLASSICAL", value="CLASSICAL", moves_left=True, se_channels=0, activation="MISH",
          min_version="0.29.0", network="NETWORK_CLASSICAL_WITH_HEADFORMAT", encodings=["LINEAR16"])),
    (dict(blocks=3, filters=32, se_ratio=8, moves_left=True, encoding=Encoding.FLOAT16),
     dict(policy="CONVOLUTION", value="WDL", moves_left=True, se_channels=4, activation="RELU",
          min_version="0.33.0", network="NETWORK_SE_WITH_HEADFORMAT", encodings=["FLOAT16"])),
], ids=["classical-ml-mish", "float16-se"])
def test_synthetic_nets_report_their_heads(tmp_path, run_cli, kw, expected):
    net = make_network(**kw)
    path = tmp_path / "synth.pb.gz"
    write_pb(net, path)
    info = _inspect_json(run_cli, path)
    assert info["blocks"] == net.blocks and info["filters"] == net.filters
    assert info["parameters"] == net.parameters == _layer_values(net_pb2.Net.FromString(gzip.decompress(path.read_bytes())))
    for key in ("policy", "value", "moves_left", "se_channels", "activation", "min_version", "encodings"):
        assert info[key] == expected[key], key
    assert info["format"]["network"] == expected["network"]
    assert info["format"]["moves_left"] == ("MOVES_LEFT_V1" if kw.get("moves_left") else "MOVES_LEFT_NONE")
    r = run_cli("inspect", path)
    assert r.exit_code == 0 and "moves-left V1" in r.stdout


def test_go_network_is_reported_as_go(tmp_path, run_cli):
    path = tmp_path / "go.pb"
    write_pb(make_network(family="go", blocks=1, filters=8), path)
    info = _inspect_json(run_cli, path)
    assert (info["family"], info["board"], info["input_planes"]) == ("go", "19x19", 18)
    assert info["compressed"] is False
    assert (info["blocks"], info["filters"], info["se_channels"]) == (1, 8, 0)
