"""Input-plane files for `eval`: a NumPy `.npy` array, or the `planes` array of an `.npz`.

Why not `np.load`: it trusts the file. A header may declare a shape of terabytes
(np.load allocates it before reading), an `.npz` member may be a deflate bomb or
fail its CRC with a `BadZipFile` traceback, and a malformed header surfaces as
Python internals. This reader parses the header itself, checks that the declared
shape matches the bytes actually present before allocating anything, reads zip
members in bounded pieces under the same cap as gzip streams, and answers every
failure with one line naming the file.
"""
from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from lcconvert.errors import FormatError
from lcconvert.formats import gz

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
MAX_HEADER = 10_000  # bytes of .npy header dictionary; NumPy's own default limit
ARRAY_NAME = "planes"


def read(data: bytes, path: str) -> np.ndarray:
    """The planes array in `data` (the bytes of a .npy or .npz file)."""
    if data.startswith(NPY_MAGIC):
        return parse_npy(data, path)
    if data.startswith(ZIP_MAGIC):
        return _npz_member(data, path)
    if not data:
        raise FormatError(path, "empty file, expected a .npy or .npz planes file")
    if gz.is_gzip(data):
        raise FormatError(path, "gzip-compressed: planes are read from an uncompressed .npy or an .npz")
    raise FormatError(path, f"not a NumPy .npy or .npz planes file (it starts with {data[:6].hex(' ')})")


def parse_npy(data: bytes, path: str, where: str = "") -> np.ndarray:
    """A numeric array from .npy bytes, refusing any header that does not match the bytes present."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER)
        else:
            raise FormatError(path, f"{where}unsupported .npy version {version[0]}.{version[1]}")
    except (ValueError, SyntaxError, TypeError, EOFError):
        raise FormatError(path, f"{where}malformed .npy header") from None
    if dtype.hasobject or not (np.issubdtype(dtype, np.number) or dtype == np.bool_) \
            or np.issubdtype(dtype, np.complexfloating):
        raise FormatError(path, f"{where}planes must be real numbers, not {dtype}")
    count = 1
    for n in shape:
        count *= int(n)
    present = len(data) - f.tell()
    if count * dtype.itemsize != present:
        raise FormatError(path, f"{where}the header declares shape {list(shape)} of {dtype} "
                                f"({count * dtype.itemsize:,} bytes) but the file holds {present:,} bytes of data")
    values = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
    return values.reshape(shape, order="F" if fortran else "C")


def _npz_member(data: bytes, path: str) -> np.ndarray:
    limit = gz.max_inflated()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = {name.removesuffix(".npy"): name for name in zf.namelist()}
            if ARRAY_NAME not in names:
                have = ", ".join(sorted(names)) or "nothing"
                raise FormatError(path, f"no '{ARRAY_NAME}' array in the .npz (it has: {have})")
            info = zf.getinfo(names[ARRAY_NAME])
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise FormatError(path, f"its '{ARRAY_NAME}' array uses zip compression method "
                                        f"{info.compress_type}; NumPy writes stored or deflated members")
            if info.file_size > limit:
                raise FormatError(path, f"its '{ARRAY_NAME}' array declares {info.file_size:,} bytes, above the "
                                        f"limit of {limit:,} (set {gz.MAX_INFLATE_ENV} to raise it)")
            member = bytearray()
            with zf.open(info) as f:
                while piece := f.read(gz.CHUNK):
                    member += piece
                    if len(member) > limit:
                        raise FormatError(path, f"its '{ARRAY_NAME}' array inflates past the limit of {limit:,} "
                                                f"bytes (set {gz.MAX_INFLATE_ENV} to raise it)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise FormatError(path, f"corrupt .npz ({e})") from None
    if not bytes(member[:6]) == NPY_MAGIC:
        raise FormatError(path, f"its '{ARRAY_NAME}' member is not a .npy array")
    return parse_npy(bytes(member), path, where=f"'{ARRAY_NAME}' array: ")
