"""What makes big networks fast, lean and visible (issue 14), each proved on real data or with known answers.

- `convert` of an untouched network writes IN's own bytes (no inflate-deflate round trip);
- big protobuf payloads are gzipped by ISA-L in parallel blocks as ONE gzip member
  (no reader has to handle concatenated members), with a zlib fallback;
- verification skips the REF-vs-REF-re-encoded pass when re-encoding keeps every tensor,
  whose floor is then exactly 0;
- progress goes to stderr only when it is a terminal and not --quiet.
"""
from __future__ import annotations

import gzip
import io as pyio
import sys
import zlib

import numpy as np
import pytest
from conftest import DATA, MAIA

from lcconvert import io, pipeline, progress, verify
from lcconvert.codecs import Encoding
from lcconvert.errors import FormatError
from lcconvert.formats import gz
from lcconvert.transforms import reencode


def test_untouched_convert_writes_the_input_bytes(tmp_path, run_cli):
    out = tmp_path / "out.pb.gz"
    written = pipeline.write_file(str(MAIA), str(out))
    assert written.copied_input
    assert out.read_bytes() == MAIA.read_bytes()
    # Same payload, other compression form: the payload is written, not the input file.
    plain = tmp_path / "out.pb"
    written = pipeline.write_file(str(MAIA), str(plain))
    assert not written.copied_input
    assert plain.read_bytes() == gzip.decompress(MAIA.read_bytes())
    # A real change (re-encoding) is serialized and compressed again.
    f16 = tmp_path / "f16.pb.gz"
    written = pipeline.write_file(str(MAIA), str(f16), encoding=Encoding.FLOAT16)
    assert not written.copied_input and f16.read_bytes() != MAIA.read_bytes()


def test_unchanged_message_is_copied_without_serializing(tmp_path, monkeypatch):
    """convert with nothing to change never serializes (upb takes seconds on a 40×512 payload): the message
    the writer would build equals the one IN was read from, so IN's bytes are the output."""
    net = io.load(str(MAIA))
    assert not io.rewrites_input(net, io.PB)
    assert not io.rewrites_input(net, io.PB, Encoding.LINEAR16)  # every layer already LINEAR16: same bytes
    assert io.rewrites_input(net, io.PB, Encoding.FLOAT16)
    assert io.rewrites_input(net, io.TEXT)
    changed = net.copy()
    changed.license = "changed"
    assert io.rewrites_input(changed, io.PB)

    def refuse(*_a, **_k):
        raise AssertionError("serialized although nothing changes")

    monkeypatch.setattr(io, "serialize", refuse)
    out = tmp_path / "out.pb.gz"
    written = pipeline.write_file(str(MAIA), str(out), encoding=Encoding.LINEAR16)
    assert written.copied_input and out.read_bytes() == MAIA.read_bytes()


def test_text_weights_are_copied_by_digest(tmp_path):
    """Text payloads are identified by their digest (protobuf ones by their message): a text file written
    back unchanged is IN's bytes, copied."""
    src = tmp_path / "net.txt.gz"
    pipeline.write_file(str(DATA / "lz-random-2x16.txt.gz"), str(src))  # lcconvert's own text formatting
    net = io.load(str(src))
    assert net.source.payload_digest == io.payload_digest(gzip.decompress(src.read_bytes()))
    assert io.load(str(MAIA)).source.payload_digest is None
    out = tmp_path / "again.txt.gz"
    written = pipeline.write_file(str(src), str(out))
    assert written.copied_input and out.read_bytes() == src.read_bytes()


def _payload(size: int) -> bytes:
    """Compressible bytes like a LINEAR16 payload: 16-bit values of a narrow distribution."""
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(32768, 900, size // 2), 0, 65535).astype("<u2").tobytes()


def _members(data: bytes) -> int:
    count, rest = 0, data
    while rest:
        d = zlib.decompressobj(wbits=31)
        d.decompress(rest)
        assert d.eof
        rest, count = d.unused_data, count + 1
    return count


@pytest.mark.slow
def test_big_payloads_are_one_isal_member_within_one_percent_of_zlib9():
    pytest.importorskip("isal")
    data = _payload(gz.ISAL_MIN_BYTES + 3 * gz.ISAL_BLOCK + 12345)
    assert gz.compressor(len(data)) == "isal"
    packed = gz.gzip_bytes(data, threads=2)
    assert _members(packed) == 1
    assert gz.gunzip(packed, "<test>") == data
    assert gz.gzip_bytes(data, threads=1) == packed  # the thread count does not change the bytes
    level9 = len(gzip.compress(data, 9))
    assert len(packed) <= 1.01 * level9


def test_big_streams_inflate_with_isal_and_the_same_checks(monkeypatch):
    """Streams ≥ ISAL_MIN_BYTES inflate through ISA-L: every member, and the same refusals as zlib's —
    truncation, a damaged CRC, the inflate cap, trailing garbage."""
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    data = np.random.default_rng(0).integers(0, 256, gz.ISAL_MIN_BYTES // 2 + 7, dtype=np.uint8).tobytes()
    packed = gzip.compress(data, 1) + gzip.compress(data[::-1], 1)  # two members, ≥ ISAL_MIN_BYTES in all
    assert len(packed) >= gz.ISAL_MIN_BYTES and gz._inflater(len(packed))[0] is isal_zlib.decompressobj
    assert gz.gunzip(packed, "<big>") == data + data[::-1]
    with pytest.raises(FormatError, match="truncated gzip stream"):
        gz.gunzip(packed[:-100], "<big>")
    damaged = bytearray(packed)
    damaged[-8] ^= 1  # the second member's CRC
    with pytest.raises(FormatError, match="corrupt gzip stream"):
        gz.gunzip(bytes(damaged), "<big>")
    with pytest.raises(FormatError, match="trailing garbage"):
        gz.gunzip(packed + b"junk", "<big>")
    with pytest.raises(FormatError, match="inflates to more than"):
        gz.gunzip(packed, "<big>", limit=len(data))


@pytest.mark.slow
def test_zlib_ng_where_isal_would_miss_one_percent(monkeypatch):
    """Where ISA-L's estimated excess over zlib -9 passes ISAL_MAX_EXCESS, zlib-ng writes the payload: one
    gzip member, the same bytes back, within 1% of zlib -9."""
    pytest.importorskip("zlib_ng")
    data = _payload(gz.ISAL_MIN_BYTES + 3 * gz.ISAL_BLOCK + 12345)
    monkeypatch.setattr(gz, "isal_excess", lambda _d: 1.02)
    assert gz.codec_for(data) == "zlib-ng"
    monkeypatch.setattr(gz, "isal_excess", lambda _d: 1.001)
    assert gz.codec_for(data) == "isal"
    monkeypatch.setattr(gz, "_zlib_ng", lambda: None)
    assert gz.codec_for(data) == "isal"  # zlib-ng not installed: ISA-L
    monkeypatch.undo()
    packed = gz.gzip_bytes(data, threads=2, codec="zlib-ng")
    assert _members(packed) == 1 and gz.gunzip(packed, "<test>") == data
    assert len(packed) <= 1.01 * len(gzip.compress(data, 9))
    assert 0.95 < gz.isal_excess(data) < 1.05  # a ratio of two sizes of the same sample


def test_small_payloads_and_no_isal_use_zlib(monkeypatch):
    data = _payload(1 << 16)
    assert gz.compressor(len(data)) == "zlib"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    assert gz.gzip_bytes(data) == c.compress(data) + c.flush()
    monkeypatch.setattr(gz, "_isal", lambda: None)
    assert gz.compressor(gz.ISAL_MIN_BYTES) == "zlib"
    assert gz.compressor(gz.ISAL_MIN_BYTES, level=6) == "zlib"


def test_identical_reencode_floor_is_skipped_and_exactly_zero():
    ref = io.load(str(MAIA))
    same, _ = reencode(ref, Encoding.LINEAR16)
    assert verify._same_tensors(same, ref)
    other, _ = reencode(ref, Encoding.FLOAT16)
    assert not verify._same_tensors(other, ref)
    report = verify.compare(ref, ref, positions=4)
    assert report.passed
    assert all(h.floor_reencode == 0.0 for h in report.heads)
    assert all(h.max_abs == 0.0 for h in report.heads)


class _Terminal(pyio.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(sys, "stderr", pyio.StringIO())
    assert not progress.enabled()
    assert list(progress.steps(range(3), "folding blocks")) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert progress.enabled()
    assert list(progress.steps(range(3), "folding blocks")) == [0, 1, 2]
    assert "folding blocks" in term.getvalue()
    progress.quiet(True)
    try:
        assert not progress.enabled()
    finally:
        progress.quiet(False)
    monkeypatch.setenv(progress.ENV, "0")
    assert not progress.enabled()


def test_cli_quiet_and_no_bars_when_not_a_terminal(tmp_path, run_cli):
    out = tmp_path / "folded.pb.gz"
    result = run_cli("--quiet", "fold-bias", MAIA, out)
    assert result.exit_code == 0, result.output
    assert "folding blocks" not in result.output and "it/s" not in result.output
    assert not progress.enabled()
    progress.quiet(False)
    result = run_cli("fold-bias", MAIA, tmp_path / "again.pb.gz")
    assert result.exit_code == 0
    assert "folding blocks" not in result.output


def test_a_read_network_holds_its_payload_once():
    """The parsed message kept as the writer's template holds no layer bytes, the tensors hold views of the
    one inflated payload (no copies), and a tensor whose bytes changed is seen as a change by the message
    comparison."""
    net = io.load(str(MAIA))
    assert net.pb_template.weights.input.weights.params == b""
    w = net.input.weights
    assert len(w.raw) == 2 * w.size and isinstance(w.raw, memoryview)
    assert w.raw.obj is net.residual[0].conv1.weights.raw.obj  # one buffer under every layer
    data, _ = io.serialize(net, io.PB)
    assert data == gzip.decompress(MAIA.read_bytes())  # the writer puts every layer's bytes back
    changed = net.copy()
    w = net.input.weights
    changed.input = net.input.replace(weights=w.__class__(w.encoding, bytes(w.raw), w.min_val, w.max_val,
                                                          layer_meta=dict(w.layer_meta)))
    # Equal bytes in a new object count as a change (the writer knows bytes by identity): serialized, they
    # are the input's payload again.
    assert io.rewrites_input(changed, io.PB)
    assert io.serialize(changed, io.PB)[0] == data
    flipped = bytearray(w.raw)
    flipped[0] ^= 1
    changed.input = net.input.replace(weights=w.__class__(w.encoding, bytes(flipped), w.min_val, w.max_val,
                                                          layer_meta=dict(w.layer_meta)))
    assert io.rewrites_input(changed, io.PB)


def test_lazy_models_compute_the_same_and_keep_no_decode():
    from lcconvert import forward
    from lcconvert.positions import random_planes

    net = io.load(str(MAIA))
    planes = random_planes(net, 4, 0)
    lazy = forward.Model(net, "modern", np.float64, lazy=True)(planes)
    assert not net.residual[0].conv1.weights.decoded
    eager = forward.Model(net, "modern", np.float64)(planes)
    assert np.array_equal(lazy.policy, eager.policy) and np.array_equal(lazy.value, eager.value)


def test_big_frees_go_back_to_the_system():
    """With the fixed mmap threshold (memory.py), freeing big arrays returns their pages at once, even
    after earlier frees (which otherwise raise glibc's threshold and keep later ones in the heap: measured
    here without the fix, all 127 MB of the freed 2 MB arrays stayed in the process)."""
    import subprocess

    code = (
        "import numpy as np, sys\n"
        "from lcconvert import memory\n"
        "ok = memory.return_big_frees() if sys.argv[1] == 'fixed' else None\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "a = np.ones(2 << 20); del a\n"  # a 16 MB mapping freed: glibc raises its threshold to 16 MB
        "base = rss(); xs = [np.ones(1 << 18) for _ in range(64)]; held = rss() - base\n"  # 64 × 2 MB
        "keep = xs[-1]; del xs; back = rss() - base\n"
        "print(ok, held >> 20, back >> 20)\n")
    out = subprocess.run([sys.executable, "-c", code, "fixed"], capture_output=True, text=True,
                         check=True).stdout.split()
    if out[0] != "True":
        pytest.skip("no glibc mallopt here")
    held, back = int(out[1]), int(out[2])
    assert held >= 120 and back <= 8, (held, back)


def test_copy_atomic_copies_by_the_writers_rules(tmp_path):
    """IN's bytes copied to OUT (convert with nothing to change): the content, a plain file's mode, a
    symbolic link's target replaced and the link kept, no temporary file left, devices written in place."""
    import os

    from lcconvert import files

    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 4099)
    out = tmp_path / "out.bin"
    assert files.copy_atomic(str(out), str(src)) == src.stat().st_size
    assert out.read_bytes() == src.read_bytes()
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    target, link = tmp_path / "target.bin", tmp_path / "link.bin"
    target.write_bytes(b"old")
    link.symlink_to(target)
    files.copy_atomic(str(link), str(src))
    assert link.is_symlink() and target.read_bytes() == src.read_bytes()
    assert files.copy_atomic(os.devnull, str(src)) == src.stat().st_size
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lcconvert-")]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
