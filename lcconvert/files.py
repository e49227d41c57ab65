"""Files as lcconvert reads and writes them: one-line errors, stdin/stdout as `-`, atomic output.

Why one module: every command that writes (a network, a CSV, a plot, an .npz)
must follow the same rules — never the input file, an existing file only with
--force, `-` for standard output, and a temporary file in the destination folder
renamed into place only when complete, so a failure never leaves a partial file.
It sits at the bottom of the house beside `errors`: readers, the pipeline and the
CLI all use it, and it knows nothing of networks.
"""
from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

from lcconvert.errors import FormatError, OutputError


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


def refuse_terminal(out: str, force: bool) -> None:
    """Binary output to standard output when that is a terminal is refused unless forced (as gzip does):
    it would fill the screen with bytes and is never what was meant."""
    if out == "-" and not force and sys.stdout.isatty():
        raise OutputError("-", "standard output is a terminal: binary output refused (redirect it to a file or "
                               "a pipe, or use --force)")


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
    _write_atomic(path, lambda f: f.write(data))


def copy_atomic(path: str, src: str) -> int:
    """`src`'s bytes written to `path` by `write_atomic`'s rules, copied by the kernel (sendfile) where it
    can: a 334 MB network is not read into memory and written back out. Returns the bytes copied."""
    if path == "-" or _is_stream(path):
        data = read_file(src)
        write_atomic(path, data)
        return len(data)

    def fill(f) -> None:
        f.flush()
        try:
            source = open(src, "rb")
        except OSError as e:
            raise FormatError(src, f"cannot read: {e.strerror or e}") from None
        with source:
            offset, size = 0, os.fstat(source.fileno()).st_size
            try:
                while offset < size:  # the kernel copies; nothing passes through this process
                    sent = os.sendfile(f.fileno(), source.fileno(), offset, size - offset)
                    if not sent:
                        break
                    offset += sent
            except (OSError, AttributeError):  # no sendfile between these two: copy through memory
                if offset:
                    raise
                shutil.copyfileobj(source, f)

    _write_atomic(path, fill)
    return os.path.getsize(os.path.realpath(path))


def _write_atomic(path: str, fill) -> None:
    if path == "-":
        fill(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    if _is_stream(path):
        with open(path, "wb") as f:
            fill(f)
        return
    # A symbolic link stays a link: its target is what gets replaced.
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    mode = _output_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".lcconvert-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            # mkstemp creates 0600; give the result the mode a plain open() would.
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
