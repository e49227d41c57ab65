"""Reading possibly-gzipped files and writing output atomically.

Engines read networks through zlib, so plain and gzip-compressed bytes are both
accepted whatever the file is called. Output goes to a temporary file in the
destination folder and is renamed into place only when complete, so a failure
never leaves a partial file.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
import zlib

from lcconvert.errors import FormatError, OutputError

GZIP_MAGIC = b"\x1f\x8b"
# Level 9 is what lczero-training's gzip.open() writes for protobuf networks; the
# benchmark floor uses the same. Text weights are ~6× larger and compress ~20× slower
# at level 9 (111 s for a 20×256 net) for a few percent of size, so they get gzip's
# own default, 6.
DEFAULT_LEVEL = 9
TEXT_LEVEL = 6


def level_for(kind: str) -> int:
    return TEXT_LEVEL if kind == "text" else DEFAULT_LEVEL


def read_file(path: str, what: str = "a network file") -> bytes:
    """The file's bytes ('-' = standard input), with a one-line error for every failure."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FormatError(path, "no such file") from None
    except IsADirectoryError:
        raise FormatError(path, f"is a directory, not {what}") from None
    except PermissionError:
        raise FormatError(path, "permission denied") from None
    except OSError as e:
        raise FormatError(path, f"cannot read: {e.strerror or e}") from None


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


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(out: str, inputs: list[str], force: bool) -> None:
    """Refuse to overwrite an input, or an existing file without --force."""
    if out == "-":
        return
    for inp in inputs:
        if inp != "-" and same_file(inp, out):
            raise OutputError(out, "output is the input file; lcconvert never modifies its input")
    if os.path.isdir(out):
        raise OutputError(out, "is a directory")
    if os.path.exists(out) and not force:
        raise OutputError(out, "already exists (use --force to replace it)")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise OutputError(out, f"folder {folder} {problem}")


def _is_stream(path: str) -> bool:
    """An existing character/block device or FIFO (/dev/null, a pipe): written in place, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)


def _output_mode(path: str) -> int:
    """The replaced file's permissions, or 0666 minus the umask for a new file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str, data: bytes) -> None:
    """Write via a temporary file in the same folder, then rename over `path`.

    Devices and pipes are written in place (renaming over /dev/null would replace
    it with a regular file); a symbolic link's target is replaced, not the link.
    """
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if _is_stream(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    # A symbolic link stays a link: its target is what gets replaced.
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    mode = _output_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".lcconvert-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            # mkstemp creates 0600; give the result the mode a plain open() would.
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
