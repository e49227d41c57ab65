"""gzip as engines read it: every member of a stream, compressed at the levels lczero-training writes.

Engines read networks through zlib, so plain and gzip-compressed bytes are both
accepted whatever the file is called (FORMATS.md §10).
"""
from __future__ import annotations

import importlib
import os
import zlib

from lcconvert.errors import FormatError

GZIP_MAGIC = b"\x1f\x8b"
# Level 9 is what lczero-training's gzip.open() writes for protobuf networks; the
# benchmark floor uses the same. Text weights are ~6× larger and compress ~20× slower
# at level 9 (111 s for a 20×256 net) for a few percent of size, so they get gzip's
# own default, 6.
DEFAULT_LEVEL = 9
TEXT_LEVEL = 6
MAX_INFLATE_ENV = "LCCONVERT_MAX_INFLATE"
DEFAULT_MAX_INFLATE = 4 << 30
CHUNK = 4 << 20  # inflate 4 MiB at a time: few Python steps, small overshoot past the cap


def level_for(kind: str) -> int:
    return TEXT_LEVEL if kind == "text" else DEFAULT_LEVEL


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def max_inflated() -> int:
    """The most bytes a gzip stream may inflate to: LCCONVERT_MAX_INFLATE (bytes, or with K/M/G/T) or 4 GiB.

    Why a cap: a few kilobytes of deflate can claim 10 GiB of zeros, and inflating
    that whole would exhaust memory before any check could run. Why 4 GiB: the
    largest real network (40 blocks × 512 filters, 196 M parameters) is ~0.4 GB as
    LINEAR16 protobuf and ~2.1 GB as text weights; the cap sits above both.
    """
    text = os.environ.get(MAX_INFLATE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_INFLATE
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.rstrip("KMGTkmgtiIbB"), text[len(text.rstrip("KMGTkmgtiIbB")):].upper()
    unit = unit.replace("IB", "").replace("B", "")
    try:
        value = int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise FormatError(None, f"{MAX_INFLATE_ENV}={text!r}: expected a number of bytes such as 8G") from None
    if value <= 0:
        raise FormatError(None, f"{MAX_INFLATE_ENV}={text!r}: must be positive")
    return value


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


def gunzip(data: bytes, path: str, limit: int | None = None) -> bytearray:
    """Decompress every gzip member, in bounded pieces; truncated, corrupt or oversized streams are errors.

    Output grows CHUNK at a time and stops with an error as soon as it passes
    `limit` (default `max_inflated()`), so memory never grows much past the cap.
    """
    limit = max_inflated() if limit is None else limit
    out = bytearray()
    view, pos, end = memoryview(data), 0, len(data)
    decompressobj, errors = _inflater(end)
    try:
        while pos < end:
            d = decompressobj(wbits=31)
            while not d.eof:
                # Input goes in CHUNK-sized pieces too: handing the whole rest of the stream to
                # every call made zlib copy it into `unconsumed_tail` each time — quadratic, 16 s
                # of a 0.34 GB file's 19 s.
                fed = d.unconsumed_tail
                if not fed and pos < end:
                    fed = view[pos:pos + CHUNK]
                    pos += len(fed)
                piece = d.decompress(fed, CHUNK)
                out += piece
                if len(out) > limit:
                    raise FormatError(path, f"gzip stream inflates to more than {_size(limit)}, the limit for one "
                                            f"file (set {MAX_INFLATE_ENV}, e.g. 8G, to raise it)")
                if not d.eof and not fed and not piece:
                    raise FormatError(path, "truncated gzip stream")
            pos -= len(d.unused_data)  # bytes past this member's end were fed with its last piece
            if pos < end and not is_gzip(bytes(view[pos:pos + 2])):
                raise FormatError(path, "trailing garbage after the gzip stream")
    except errors as e:
        raise FormatError(path, f"corrupt gzip stream ({e})") from None
    # The bytearray itself, not a bytes copy of it: readers take either, and a copy would cost
    # 0.2 s and a second 0.4 GB at the peak of reading a 40×512 network.
    return out


def _inflater(compressed_size: int):
    """(decompressobj, the errors it raises) for a stream of `compressed_size` bytes: ISA-L's inflate
    (same interface, same checks: CRC, length, header CRC) for streams ≥ ISAL_MIN_BYTES, zlib below.
    Measured on a 44 MB realistic 20×256 network: 0.20–0.24 s against 0.31–0.36 s (1.5× faster);
    small files keep zlib, whose error messages the fuzz corpus and tests were written against."""
    isal_zlib = _optional("isal.isal_zlib") if compressed_size >= ISAL_MIN_BYTES else None
    if isal_zlib is not None:
        return isal_zlib.decompressobj, (zlib.error, isal_zlib.error)
    return zlib.decompressobj, zlib.error


# Fast deflate for big protobuf payloads: ISA-L (the `isal` package) at its level 2, in
# 1 MiB blocks compressed on every core and written as ONE gzip member, so no reader needs
# to handle concatenated members (lc0 and Leela Zero read through zlib's gzread, which
# would; we do not rely on it). The blocks cost nothing measurable: one thread and two
# write the same bytes, as large as a single-stream ISA-L level 2 (within 0.03%).
# Measured against zlib -9 of the same payload (benchmarks/bench_big.py, realistic
# networks): 20×256 fold-bias output (50.9 MB) 0.36–0.41 s against 2.0–9.5 s, +0.67%;
# 40×512 fold-bias output (393 MB) +1.14% (zlib levels 4–9 write the same size there, at
# ~3.5 s per 100 MB; ISA-L levels 1–3 and memory levels 1–9 all stay 1.0–1.2% above).
# ISA-L finds fewer long repeats than zlib: on maia-1100 (whose value FC layer is half
# dead) it writes 3.9% more, which is why payloads below ISAL_MIN_BYTES (where zlib -9
# costs under half a second) keep zlib.
ISAL_LEVEL = 2
ISAL_MIN_BYTES = 16 << 20
ISAL_BLOCK = 1 << 20


def _optional(module: str):
    """The module, or None where its package is not installed (then zlib serves instead)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _isal():
    return _optional("isal.igzip_threaded")


def compressor(data_size: int, level: int = DEFAULT_LEVEL) -> str:
    """Which deflate `gzip_bytes` uses for a payload of `data_size` bytes at `level`."""
    if level == DEFAULT_LEVEL and data_size >= ISAL_MIN_BYTES and _isal() is not None:
        return "isal"
    return "zlib"


# ISA-L's excess over zlib -9 depends on the network: +0.6% on the 20×256 fold output, +1.17% on the
# 40×512 one. It is estimated on a sample (SAMPLE_PIECES evenly spaced pieces of SAMPLE_PIECE bytes,
# compressed by both: +0.3–0.7% estimated at 20×256, +1.0–1.2% at 40×512, ~0.5 s); above ISAL_MAX_EXCESS
# the payload goes to zlib-ng (`zlib-ng`, the same maintainers' binding, same threaded interface) at
# NG_LEVEL, which wrote +0.66% at 40×512 (+0.40% at 20×256) — levels 2–6 the same size and time, ~5×
# ISA-L's time (40×512 under load: 14–16 s against 2.7 s; zlib -9 itself 37 s). The output size stays
# within 1% of gzip -9, paying zlib-ng's time only where ISA-L would miss that.
ISAL_MAX_EXCESS = 1.008
SAMPLE_PIECES, SAMPLE_PIECE = 8, 512 << 10
NG_LEVEL = 6


def _zlib_ng():
    return _optional("zlib_ng.gzip_ng_threaded")


def isal_excess(data: bytes) -> float:
    """ISA-L level ISAL_LEVEL's size over zlib -9's on a sample of `data` (see ISAL_MAX_EXCESS)."""
    from isal import isal_zlib

    n = len(data)
    starts = [i * (n - SAMPLE_PIECE) // (SAMPLE_PIECES - 1) for i in range(SAMPLE_PIECES)]
    sample = b"".join(data[s:s + SAMPLE_PIECE] for s in starts)
    return len(isal_zlib.compress(sample, ISAL_LEVEL)) / len(zlib.compress(sample, 9))


def codec_for(data: bytes, level: int = DEFAULT_LEVEL) -> str:
    """"zlib", "isal" or "zlib-ng": what `gzip_bytes` compresses `data` with at `level`."""
    kind = compressor(len(data), level)
    if kind == "isal" and len(data) >= SAMPLE_PIECES * SAMPLE_PIECE and _zlib_ng() is not None \
            and isal_excess(data) > ISAL_MAX_EXCESS:
        return "zlib-ng"
    return kind


def gzip_bytes(data: bytes, level: int = DEFAULT_LEVEL, threads: int | None = None, codec: str | None = None) -> bytes:
    """`data` as one gzip member: zlib at `level`, or for big level-9 payloads ISA-L or zlib-ng in blocks
    on every core (`codec_for`; `codec` forces one)."""
    codec = codec or codec_for(data, level)
    if codec in ("isal", "zlib-ng"):
        import io as _io

        writer, compresslevel = (_isal(), ISAL_LEVEL) if codec == "isal" else (_zlib_ng(), NG_LEVEL)
        buf = _io.BytesIO()
        threads = threads or max(1, min(len(data) // ISAL_BLOCK, os.cpu_count() or 1))
        with writer.open(buf, "wb", compresslevel=compresslevel, threads=threads, block_size=ISAL_BLOCK) as f:
            f.write(data)
        return buf.getvalue()
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()
