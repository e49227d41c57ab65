"""Freed memory goes back to the system as soon as a big buffer is freed (glibc's malloc).

Why: glibc serves a big allocation from its own mapping only until the first such mapping is
freed; from then on it raises that threshold (up to 32 MiB) and serves blocks of that size from
the heap, where freed memory stays in the process. A fold frees one block's weights after another
(2.4 MB each at 20×256, 9.4 MB at 40×512): measured on a realistic 20×256 network, the fold's peak
RSS was 328 MB with 231 MB in use, and 271 MB with the threshold fixed at 256 KiB — the bytes the
program holds, not what the allocator kept. A fixed threshold (mallopt M_MMAP_THRESHOLD) also turns
off that raising. Cost: a fresh mapping's pages are zeroed on first touch (about 1 ms per 16 MB
product of the forward pass, against ~100 ms of arithmetic).
"""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 256 << 10


def return_big_frees() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD; False where there is no glibc (nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
