"""gzip as engines read it: every member of a stream, compressed at the levels lczero-training writes.

Engines read networks through zlib, so plain and gzip-compressed bytes are both
accepted whatever the file is called (FORMATS.md §10).
"""
from __future__ import annotations

import zlib

from lcconvert.errors import FormatError

GZIP_MAGIC = b"\x1f\x8b"
# Level 9 is what lczero-training's gzip.open() writes for protobuf networks; the
# benchmark floor uses the same. Text weights are ~6× larger and compress ~20× slower
# at level 9 (111 s for a 20×256 net) for a few percent of size, so they get gzip's
# own default, 6.
DEFAULT_LEVEL = 9
TEXT_LEVEL = 6


def level_for(kind: str) -> int:
    return TEXT_LEVEL if kind == "text" else DEFAULT_LEVEL


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def gunzip(data: bytes, path: str) -> bytes:
    """Decompress every gzip member; truncated or corrupt streams are errors."""
    out = []
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=31)
            out.append(d.decompress(rest))
            if not d.eof:
                raise FormatError(path, "truncated gzip stream")
            rest = d.unused_data
            if rest and not is_gzip(rest):
                raise FormatError(path, "trailing garbage after the gzip stream")
    except zlib.error as e:
        raise FormatError(path, f"corrupt gzip stream ({e})") from None
    return b"".join(out)


def gzip_bytes(data: bytes, level: int = DEFAULT_LEVEL) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()
