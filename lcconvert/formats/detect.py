"""What kind of network a path holds, decided by content, never by name."""
from __future__ import annotations

import os

from lcconvert.formats.lc0_proto import looks_like_lc0

PB, TEXT = "pb", "text"


def is_checkpoint_path(path: str) -> bool:
    """A TF checkpoint: a folder with a `checkpoint` file, a prefix with `.index`, or the `.index` file."""
    if path == "-":
        return False
    if os.path.isdir(path):
        return os.path.exists(os.path.join(path, "checkpoint"))
    if path.endswith(".index") and os.path.isfile(path):
        return True
    return not os.path.exists(path) and os.path.exists(path + ".index")


def sniff(data: bytes) -> str | None:
    """PB or TEXT for decompressed bytes, None if neither."""
    if looks_like_lc0(data):
        return PB
    head = data[:32].lstrip(b" \t")
    digits = len(head) - len(head.lstrip(b"0123456789"))
    if digits and head[digits:].lstrip(b" \t")[:1] in (b"\n", b"\r"):
        return TEXT
    return None
