"""Lc0 protobuf networks through `lcconvert convert`, on the real maia-1100.pb.gz (FORMATS.md §1).

What must hold: an untouched conversion reproduces the decompressed payload byte for
byte; re-encodings decode to the original values within the encoding's rounding and
raise min_version to 0.33 with a note; LINEAR16 → FLOAT32 → LINEAR16 gives back every
uint16; fields lcconvert does not know survive; the input file is never touched.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest
from conftest import MAIA
from google.protobuf import unknown_fields

from lcconvert import codecs, io
from lcconvert._proto import net_pb2
from lcconvert.codecs import Encoding

MAGIC_PREFIX = b"\x0d\xc0\x01\x00\x00"


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def maia_is_never_modified():
    before = _sha(MAIA), os.stat(MAIA).st_mtime_ns
    yield
    assert (_sha(MAIA), os.stat(MAIA).st_mtime_ns) == before


@pytest.fixture(scope="module")
def maia_payload() -> bytes:
    return gzip.decompress(MAIA.read_bytes())


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result


def test_untouched_convert_reproduces_the_payload(tmp_path, run_cli, maia_payload):
    out = tmp_path / "copy.pb.gz"
    r = _ok(run_cli("convert", MAIA, out))
    assert "wrote" in r.stderr
    data = out.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    payload = gzip.decompress(data)
    assert payload[:5] == MAGIC_PREFIX
    assert payload == maia_payload


def test_reencoding_to_the_same_encoding_changes_nothing(tmp_path, run_cli, maia_payload):
    out = tmp_path / "same.pb.gz"
    r = _ok(run_cli("convert", MAIA, out, "--encoding", "linear16"))
    assert "note:" not in r.stderr
    assert gzip.decompress(out.read_bytes()) == maia_payload


def test_uncompressed_pb_output(tmp_path, run_cli, maia_payload):
    out = tmp_path / "copy.pb"
    _ok(run_cli("convert", MAIA, out))
    assert out.read_bytes() == maia_payload
    # Read back by content: the uncompressed file is a network too.
    again = tmp_path / "again.pb.gz"
    _ok(run_cli("convert", out, again))
    assert gzip.decompress(again.read_bytes()) == maia_payload


@pytest.mark.parametrize("encoding", [Encoding.FLOAT16, Encoding.BFLOAT16, Encoding.FLOAT32], ids=lambda e: e.label)
def test_reencoding_keeps_values_within_rounding(tmp_path, run_cli, maia, encoding):
    out = tmp_path / f"maia-{encoding.label}.pb.gz"
    r = _ok(run_cli("convert", MAIA, out, "--encoding", encoding.label))
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "0.33" in notes[0], r.stderr
    back = io.load(str(out))
    assert back.min_version >= (0, 33, 0)
    assert back.format == maia.format
    count = 0
    for (name, orig), (name2, t) in zip(maia.tensors(), back.tensors(), strict=True):
        assert name == name2 and t.encoding is encoding, name
        x = orig.values
        # Exactly what encoding the float32 decode of the original gives ...
        raw, _, _ = codecs.encode(x, encoding)
        assert t.raw == raw, name
        # ... which is within the encoding's rounding of the original value.
        err = np.abs(t.values.astype(np.float64) - x)
        assert np.all(err <= codecs.rounding_bound(x, encoding)), (name, float(err.max()))
        if encoding is Encoding.FLOAT32:
            np.testing.assert_array_equal(t.values, x)
        count += t.size
    assert count == maia.parameters
    # The layers say their encoding, so a v0.33+ engine decodes them right.
    msg = net_pb2.Net.FromString(gzip.decompress(out.read_bytes()))
    assert msg.weights.input.weights.encoding == int(encoding)
    assert not msg.weights.input.weights.HasField("min_val")


def test_linear16_float32_linear16_reproduces_every_uint16(tmp_path, run_cli, maia):
    f32 = tmp_path / "maia-f32.pb.gz"
    l16 = tmp_path / "maia-l16.pb.gz"
    _ok(run_cli("convert", MAIA, f32, "--encoding", "float32"))
    r = run_cli("convert", f32, l16, "--encoding", "linear16")
    _ok(r)
    back = io.load(str(l16))
    # All LINEAR16 again: min_version goes back to what the architecture needs, and the user is told.
    assert io.load(str(f32)).min_version == (0, 33, 0)
    assert back.min_version == maia.min_version == (0, 21, 0)
    assert "0.33.0 -> 0.21.0" in r.stderr
    for (name, orig), (_, t) in zip(maia.tensors(), back.tensors(), strict=True):
        assert t.encoding is Encoding.LINEAR16, name
        assert t.raw == orig.raw, name
        assert np.float32(t.min_val) == np.float32(orig.min_val), name
        assert np.float32(t.max_val) == np.float32(orig.max_val), name


def _add_unknown(msg, field_number: int, value: int) -> None:
    """Append a varint field unknown to the schema to `msg` (as a newer writer would)."""
    tag = field_number << 3  # wire type 0
    extra = bytearray()
    for v in (tag, value):
        while True:
            byte = v & 0x7F
            v >>= 7
            extra.append(byte | (0x80 if v else 0))
            if not v:
                break
    msg.MergeFromString(bytes(extra))


def _unknown(msg) -> set[tuple[int, int]]:
    return {(f.field_number, f.data) for f in unknown_fields.UnknownFieldSet(msg)}


@pytest.fixture
def maia_with_unknowns(tmp_path, maia_payload):
    msg = net_pb2.Net.FromString(maia_payload)
    _add_unknown(msg, 1000, 7)
    _add_unknown(msg.weights, 900, 8)
    _add_unknown(msg.weights.residual[3].conv1.weights, 77, 9)
    _add_unknown(msg.format.network_format, 500, 10)
    payload = msg.SerializeToString()
    path = tmp_path / "maia-unknown.pb.gz"
    path.write_bytes(gzip.compress(payload))
    return path, payload


def _assert_unknowns(payload: bytes):
    msg = net_pb2.Net.FromString(payload)
    assert (1000, 7) in _unknown(msg)
    assert (900, 8) in _unknown(msg.weights)
    assert (77, 9) in _unknown(msg.weights.residual[3].conv1.weights)
    assert (500, 10) in _unknown(msg.format.network_format)


def test_unknown_fields_survive_an_untouched_convert(tmp_path, run_cli, maia_with_unknowns):
    src, payload = maia_with_unknowns
    _assert_unknowns(payload)
    out = tmp_path / "out.pb.gz"
    _ok(run_cli("convert", src, out))
    assert gzip.decompress(out.read_bytes()) == payload


@pytest.mark.parametrize("encoding", ["float16", "linear16"])
def test_unknown_fields_survive_a_reencoding(tmp_path, run_cli, maia_with_unknowns, encoding):
    src, _ = maia_with_unknowns
    out = tmp_path / "out.pb"
    _ok(run_cli("convert", src, out, "--encoding", encoding))
    _assert_unknowns(out.read_bytes())


def test_stdin_and_stdout(tmp_path, run_cli, maia_payload):
    r = _ok(run_cli("convert", MAIA, "-"))
    assert gzip.decompress(r.stdout_bytes) == maia_payload
    out = tmp_path / "from-stdin.pb"
    _ok(run_cli("convert", "-", out, input=MAIA.read_bytes()))
    assert out.read_bytes() == maia_payload
    # Uncompressed bytes on stdin are read too.
    out2 = tmp_path / "from-stdin-raw.pb"
    _ok(run_cli("convert", "-", out2, input=maia_payload))
    assert out2.read_bytes() == maia_payload


def _refused(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_output_equal_to_input_is_refused(tmp_path, run_cli, monkeypatch):
    src = tmp_path / "net.pb.gz"
    shutil.copy(MAIA, src)
    before = _sha(src)
    _refused(run_cli("convert", src, src, "--force"), str(src), "input")
    # The same file under another spelling, and through a symlink.
    monkeypatch.chdir(tmp_path)
    _refused(run_cli("convert", src, "./net.pb.gz", "--force"), "input")
    (tmp_path / "link.pb.gz").symlink_to(src)
    _refused(run_cli("convert", src, tmp_path / "link.pb.gz", "--force"), "input")
    assert _sha(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pb.gz", "net.pb.gz"]


def test_existing_output_needs_force(tmp_path, run_cli, maia_payload):
    out = tmp_path / "out.pb.gz"
    out.write_bytes(b"precious")
    _refused(run_cli("convert", MAIA, out), str(out), "--force")
    assert out.read_bytes() == b"precious"
    _ok(run_cli("convert", MAIA, out, "--force"))
    assert gzip.decompress(out.read_bytes()) == maia_payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pb.gz"]  # no temporary file left


def test_output_permissions_are_those_of_a_plain_file(tmp_path, run_cli):
    """Written through a 0600 temporary file, the result must still get the umask's mode
    (a new file) or keep the mode of the file it replaces (--force)."""
    umask = os.umask(0o022)
    try:
        out = tmp_path / "new.pb"
        _ok(run_cli("convert", MAIA, out))
        assert out.stat().st_mode & 0o777 == 0o644
        out.chmod(0o640)
        _ok(run_cli("convert", MAIA, out, "--force"))
        assert out.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def test_writer_splices_layer_bytes_into_the_serialized_message():
    """The writer serializes the message with placeholders and splices each layer's bytes in on the wire:
    the result is what protobuf itself serializes, for a network read from a file (byte-identical to the
    file's payload), a changed one, and one with unknown fields around the layers."""
    from pathlib import Path

    from lcconvert import io as lio
    from lcconvert._proto import net_pb2
    from lcconvert.codecs import Encoding
    from lcconvert.formats import lc0_proto

    example = Path(__file__).resolve().parents[1] / "examples" / "example-4x32-se.pb.gz"

    for path in (MAIA, example):
        net = lio.load(str(path))
        assert lc0_proto.write(net) == gzip.decompress(path.read_bytes())
        f16 = lc0_proto.write(net, Encoding.FLOAT16)
        msg = net_pb2.Net()
        msg.ParseFromString(f16)
        assert msg.SerializeToString() == f16  # protobuf's own serialization of the same message
        assert lc0_proto.read(f16).input.weights.encoding is Encoding.FLOAT16
    # Unknown fields (a field 77 inside a Layer, a top-level field 111) stay where protobuf puts them.
    msg = net_pb2.Net()
    msg.ParseFromString(gzip.decompress(example.read_bytes()))
    layer = msg.weights.input.weights.SerializeToString() + b"\xe8\x04\x07"  # field 77, varint 7
    msg.weights.input.weights.ParseFromString(layer)
    data = msg.SerializeToString() + b"\xfa\x06\x02hi"  # and a top-level field 111, length-delimited
    net = lc0_proto.read(data)
    assert lc0_proto.write(net) == data
