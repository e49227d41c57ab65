"""Bad input through the CLI: exit 2, one stderr line naming the file and the problem, nothing written.

Each case starts from the real maia-1100 payload (or a synthetic net where maia
lacks the head in question) and breaks exactly one thing, the way real files
break: truncated downloads, corrupt gzip, hand-edited or mis-exported layers.
Text-format cases live in tests/test_text.py.
"""
from __future__ import annotations

import functools
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from lcconvert._proto import net_pb2
from lcconvert.synth import make_network, write_pb
from conftest import MAIA, ROOT


@functools.lru_cache(maxsize=None)
def _maia_payload() -> bytes:
    return gzip.decompress(MAIA.read_bytes())


def _maia_msg():
    return net_pb2.Net.FromString(_maia_payload())


def _cut(layer, values: int = 1):
    """Drop `values` LINEAR16 values from the end of a layer."""
    layer.params = layer.params[: len(layer.params) - 2 * values]


def _mutated(edit, synth: dict | None = None):
    """A maker: maia's (or a synthetic net's) message, edited, written as .pb.gz."""

    def make(tmp_path):
        if synth is None:
            msg = _maia_msg()
        else:
            src = tmp_path / "synth-src.pb"
            write_pb(make_network(**synth), src)
            msg = net_pb2.Net.FromString(src.read_bytes())
            src.unlink()
        edit(msg)
        path = tmp_path / "bad.pb.gz"
        path.write_bytes(gzip.compress(msg.SerializeToString(), compresslevel=1))
        return path

    return make


def _raw(name: str, data_fn):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(data_fn())
        return path

    return make


def _set(**fields):
    def edit(msg):
        for dotted, value in fields.items():
            *parents, leaf = dotted.split("__")
            target = msg
            for p in parents:
                target = target[int(p)] if p.isdigit() else getattr(target, p)
            setattr(target, leaf, value)

    return edit


def _clear(*dotted_fields):
    def edit(msg):
        for dotted in dotted_fields:
            *parents, leaf = dotted.split(".")
            target = msg
            for p in parents:
                target = target[int(p)] if p.isdigit() else getattr(target, p)
            target.ClearField(leaf)

    return edit


def _corrupt_crc() -> bytes:
    data = bytearray(MAIA.read_bytes())
    data[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    return bytes(data)


def _corrupt_deflate() -> bytes:
    data = bytearray(MAIA.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)
    return bytes(data)


def _nonfinite_float32(msg):
    values = np.frombuffer(msg.weights.ip2_val_b.params, "<u2").astype(np.float32)
    values[1] = np.nan
    layer = msg.weights.ip2_val_b
    layer.params = values.astype("<f4").tobytes()
    layer.encoding = net_pb2.Weights.Layer.FLOAT32
    layer.ClearField("min_val")
    layer.ClearField("max_val")


def _big_float32(msg):
    layer = msg.weights.ip1_val_b
    values = np.full(len(layer.params) // 2, 1e6, "<f4")
    layer.params = values.tobytes()
    layer.encoding = net_pb2.Weights.Layer.FLOAT32


def _huge_float32(msg):
    layer = msg.weights.ip1_val_b
    values = np.full(len(layer.params) // 2, 3.39e38, "<f4")
    values[3] = 3.3962e38  # above max bfloat16 + half a step: rounds to infinity
    layer.params = values.tobytes()
    layer.encoding = net_pb2.Weights.Layer.FLOAT32


def _unknown_encoding(msg):
    # 9 is not a Layer.Encoding value: protobuf keeps it as unknown field 4.
    msg.weights.residual[0].conv2.bn_means.MergeFromString(bytes([0x20, 9]))


def _input_planes(msg, planes: int = 100):
    layer = msg.weights.input.weights
    layer.params = bytes(2 * planes * 9 * 64)


# (id, maker, fragments the one-line message must contain, extra convert options)
INPUT_CASES = [
    ("truncated-gzip", _raw("t.pb.gz", lambda: MAIA.read_bytes()[: MAIA.stat().st_size // 2]), ["truncated gzip"]),
    ("corrupt-gzip-crc", _raw("c.pb.gz", _corrupt_crc), ["corrupt gzip"]),
    ("corrupt-deflate-data", _raw("d.pb.gz", _corrupt_deflate), ["corrupt gzip"]),
    ("trailing-garbage-after-gzip", _raw("g.pb.gz", lambda: MAIA.read_bytes() + b"junk"), ["trailing garbage"]),
    ("random-bytes", _raw("r.pb", lambda: np.random.default_rng(1).bytes(5000)), ["not a network"]),
    ("gzip-of-random-bytes", _raw("r.pb.gz", lambda: gzip.compress(np.random.default_rng(2).bytes(5000))),
     ["not a network"]),
    ("wrong-magic", _raw("m.pb", lambda: b"\x0d\xc1\x01\x00\x00" + _maia_payload()[5:]), ["magic"]),
    ("empty-file", _raw("e.pb.gz", lambda: b""), ["empty file"]),
    ("empty-gzip", _raw("e.pb.gz", lambda: gzip.compress(b"")), ["empty"]),
    ("truncated-protobuf", _raw("t.pb", lambda: _maia_payload()[: len(_maia_payload()) // 2]),
     ["truncated"]),
    ("magic-only", _raw("m.pb", lambda: b"\x0d\xc0\x01\x00\x00"), ["no weights"]),
    ("odd-byte-count", _mutated(lambda m: setattr(m.weights.input.weights, "params",
                                                   m.weights.input.weights.params[:-1])),
     ["input.weights", "not a whole number"]),
    ("means-length", _mutated(lambda m: _cut(m.weights.residual[2].conv1.bn_means)),
     ["residual.2.conv1.means", "63 values, expected 64"]),
    ("means-without-variances", _mutated(_clear("weights.residual.4.conv2.bn_stddivs")),
     ["residual.4.conv2", "means without variances"]),
    ("linear16-without-min-max", _mutated(_clear("weights.policy1.weights.min_val", "weights.policy1.weights.max_val")),
     ["policy1.weights", "LINEAR16 layer without min_val/max_val"]),
    ("linear16-range-not-finite", _mutated(_set(weights__input__weights__min_val=float("inf"))),
     ["input.weights", "LINEAR16 range", "not finite"]),
    ("unknown-layer-encoding", _mutated(_unknown_encoding), ["residual.0.conv2.means", "unknown layer encoding 9"]),
    ("residual-missing-conv2", _mutated(_clear("weights.residual.1.conv2")), ["residual.1.conv2", "missing"]),
    ("se-w1-wrong-size", _mutated(lambda m: _cut(m.weights.residual[5].se.w1, 64)),
     ["residual.5.se.w1", "448 values, expected 512"]),
    ("conv-policy-wrong-size", _mutated(lambda m: _cut(m.weights.policy.weights, 9)),
     ["policy.weights", "expected 46080"]),
    ("policy-fc-wrong-size", _mutated(lambda m: _cut(m.weights.ip_pol_w, 1858),
                                      synth=dict(policy="classical", blocks=1, filters=8)),
     ["ip_pol_w", "expected 3805184"]),
    ("value-fc-wrong-size", _mutated(lambda m: _cut(m.weights.ip1_val_w, 5)), ["ip1_val_w", "expected 262144"]),
    ("value-declared-classical-but-wdl", _mutated(_set(format__network_format__value=1)),
     ["ip2_val_b", "declared classical"]),
    ("input-planes-neither-112-nor-18", _mutated(_input_planes), ["input.weights", "112", "18"]),
    ("no-input-statistics", _mutated(_clear("weights.input.bn_means", "weights.input.bn_stddivs",
                                            "weights.input.bn_gammas", "weights.input.bn_betas")),
     ["input"]),
]

# Damage that only shows when the layer must be re-encoded.
REENCODE_CASES = [
    ("nan-in-float32-layer", _mutated(_nonfinite_float32), ["ip2_val_b", "non-finite"], "linear16"),
    ("float16-overflow", _mutated(_big_float32), ["ip1_val_b", "overflows float16"], "float16"),
    ("bfloat16-overflow", _mutated(_huge_float32), ["ip1_val_b", "overflows bfloat16"], "bfloat16"),
]


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("case", INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_bad_input_file(tmp_path, run_cli, case, command):
    _, make, fragments = case
    src = make(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = src.read_bytes()
    if command == "convert":
        result = run_cli("convert", src, out_dir / "net.pb.gz")
    else:
        result = run_cli("inspect", "--json", src)
        assert result.stdout == ""
    _one_line_error(result, str(src), *fragments)
    assert _listing(out_dir) == []  # no output, no temporary file
    assert src.read_bytes() == before


@pytest.mark.parametrize("case", REENCODE_CASES, ids=[c[0] for c in REENCODE_CASES])
def test_bad_values_refused_when_reencoding(tmp_path, run_cli, case):
    _, make, fragments, encoding = case
    src = make(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("convert", src, out_dir / "net.pb.gz", "--encoding", encoding)
    _one_line_error(result, str(src), *fragments)
    assert _listing(out_dir) == []


def test_missing_file(tmp_path, run_cli):
    missing = tmp_path / "nope.pb.gz"
    for args in (("convert", missing, tmp_path / "out.pb.gz"), ("inspect", missing)):
        _one_line_error(run_cli(*args), str(missing), "no such file")
    assert _listing(tmp_path) == []


def test_directory_as_input(tmp_path, run_cli):
    folder = tmp_path / "folder.pb.gz"
    folder.mkdir()
    for args in (("convert", folder, tmp_path / "out.pb.gz"), ("inspect", folder)):
        _one_line_error(run_cli(*args), str(folder), "directory")
    assert _listing(tmp_path) == ["folder.pb.gz"]


def test_output_into_missing_folder(tmp_path, run_cli):
    out = tmp_path / "no" / "such" / "net.pb.gz"
    _one_line_error(run_cli("convert", MAIA, out), str(out), "does not exist")
    assert _listing(tmp_path) == []


def test_output_is_a_directory(tmp_path, run_cli):
    _one_line_error(run_cli("convert", MAIA, tmp_path, "--force"), str(tmp_path), "directory")
    assert _listing(tmp_path) == []


def test_output_equal_to_input(tmp_path, run_cli):
    src = tmp_path / "net.pb.gz"
    src.write_bytes(MAIA.read_bytes())
    _one_line_error(run_cli("convert", src, src), str(src), "input")
    assert src.read_bytes() == MAIA.read_bytes()
    assert _listing(tmp_path) == ["net.pb.gz"]


def test_existing_output_without_force(tmp_path, run_cli):
    out = tmp_path / "out.pb.gz"
    out.write_bytes(b"keep me")
    _one_line_error(run_cli("convert", MAIA, out), str(out), "already exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert _listing(tmp_path) == ["out.pb.gz"]


def test_empty_stdin(run_cli, tmp_path):
    _one_line_error(run_cli("convert", "-", tmp_path / "out.pb"), "-: ", "empty")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("case_id", ["truncated-gzip", "odd-byte-count", "residual-missing-conv2"])
def test_real_process_prints_one_line(tmp_path, case_id):
    """The installed entry point, in a real process: one stderr line, exit 2, nothing on stdout."""
    make = dict((c[0], c[1]) for c in INPUT_CASES)[case_id]
    src = make(tmp_path)
    out = tmp_path / "out.pb.gz"
    proc = subprocess.run([sys.executable, "-m", "lcconvert.cli", "convert", str(src), str(out)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lcconvert: {src}: "), proc.stderr
    assert not out.exists()
