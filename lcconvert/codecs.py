"""Layer encodings of Lc0 network files: LINEAR16, FLOAT16, BFLOAT16, FLOAT32.

Facts from FORMATS.md §1 "Layer encodings". Every function here works on whole
layers at once with NumPy, because networks hold tens of millions of values.
"""
from __future__ import annotations

import enum

import numpy as np


class Encoding(enum.IntEnum):
    """Values equal the protobuf `Layer.Encoding` numbers."""

    LINEAR16 = 1
    FLOAT16 = 2
    BFLOAT16 = 3
    FLOAT32 = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Encoding":
        return cls[text.upper()]

    @property
    def bytes_per_value(self) -> int:
        return 4 if self is Encoding.FLOAT32 else 2

    @property
    def legacy_readable(self) -> bool:
        """Every lc0 release before v0.33 decodes every layer as LINEAR16."""
        return self is Encoding.LINEAR16


LINEAR16_STEPS = 65535
# float32 bit pattern 0x7F7F8000: halfway between max bfloat16 (0x7F7F) and infinity; rounds to inf.
BFLOAT16_OVERFLOW = float(np.array([0x7F7F8000], dtype=np.uint32).view(np.float32)[0])


def decode(raw: bytes, encoding: Encoding, min_val: float, max_val: float) -> np.ndarray:
    """Decode one layer's bytes to a float32 vector.

    LINEAR16 uses lc0's form min·(1−θ) + max·θ in float32, which maps q = 0 and
    q = 65535 exactly onto min and max, so re-encoding the decoded values with the
    training rule (min = min(x), max = max(x)) reproduces every uint16.
    """
    if encoding is Encoding.LINEAR16:
        q = np.frombuffer(raw, dtype="<u2")
        theta = q.astype(np.float32) * np.float32(1.0 / LINEAR16_STEPS)
        lo, hi = np.float32(min_val), np.float32(max_val)
        return lo * (np.float32(1.0) - theta) + hi * theta
    if encoding is Encoding.FLOAT16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if encoding is Encoding.BFLOAT16:
        upper = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << np.uint32(16)
        return upper.view(np.float32)
    if encoding is Encoding.FLOAT32:
        return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=True)
    raise ValueError(f"unknown encoding {encoding!r}")


def encode(values: np.ndarray, encoding: Encoding) -> tuple[bytes, float | None, float | None]:
    """Encode a float vector; returns (bytes, min_val, max_val) — min/max only for LINEAR16.

    LINEAR16 follows the training code's rule (FORMATS.md §1): float32 arithmetic,
    min = min(x), max = max(x); a single element stores min = 0 and max = x (max = 1
    when x == 0); q = round-half-even((x − min)/(max − min)·65535), q = 0 when max == min.
    Callers check finiteness first (see `check_encodable`).
    """
    x = np.ascontiguousarray(values, dtype=np.float32).ravel()
    if encoding is Encoding.LINEAR16:
        if x.size == 1:
            lo = np.float32(0.0)
            hi = x[0] if x[0] != 0 else np.float32(1.0)
        elif x.size == 0:
            return b"", 0.0, 0.0
        else:
            lo, hi = x.min(), x.max()
        if hi == lo:
            q = np.zeros(x.size, dtype="<u2")
        else:
            scaled = (x - lo) / (hi - lo) * np.float32(LINEAR16_STEPS)
            q = np.rint(scaled).astype("<u2")
        return q.tobytes(), float(lo), float(hi)
    if encoding is Encoding.FLOAT16:
        return x.astype("<f2").tobytes(), None, None
    if encoding is Encoding.BFLOAT16:
        bits = x.view(np.uint32)
        # round to nearest even on the dropped 16 bits, as bfloat16 conversions do
        rounding = ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
        upper = ((bits + rounding) >> np.uint32(16)).astype("<u2")
        return upper.tobytes(), None, None
    if encoding is Encoding.FLOAT32:
        return x.astype("<f4").tobytes(), None, None
    raise ValueError(f"unknown encoding {encoding!r}")


def rounding_bound(values: np.ndarray, encoding: Encoding) -> np.ndarray | float:
    """Largest error that encoding `values` may introduce (per element for floats).

    LINEAR16: half a step, (max − min)/131070, plus float32 arithmetic slack.
    FLOAT16 / BFLOAT16: half a unit in the last place (relative 2^-11 / 2^-8).
    """
    x = np.asarray(values, dtype=np.float32)
    if encoding is Encoding.LINEAR16:
        span = float(x.max() - x.min()) if x.size else 0.0
        magnitude = float(np.abs(x).max()) if x.size else 0.0
        return span / (2 * LINEAR16_STEPS) + 4 * np.finfo(np.float32).eps * magnitude
    if encoding is Encoding.FLOAT16:
        return np.maximum(np.abs(x) * 2.0**-11, 2.0**-25)
    if encoding is Encoding.BFLOAT16:
        return np.abs(x) * 2.0**-8
    return np.zeros_like(x)


def check_encodable(values: np.ndarray, encoding: Encoding) -> str | None:
    """Return why `values` cannot be stored in `encoding`, or None when they can."""
    x = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        return "non-finite values"
    if encoding is Encoding.FLOAT16 and x.size and float(np.abs(x).max()) > 65504.0:
        return f"value {float(np.abs(x).max()):.6g} overflows float16 (max 65504)"
    # The largest float32 below the bfloat16 rounding threshold to infinity (max bfloat16 3.3895e38
    # plus half its last step); beyond it round-to-nearest-even gives inf.
    if encoding is Encoding.BFLOAT16 and x.size and float(np.abs(x).max()) >= BFLOAT16_OVERFLOW:
        return f"value {float(np.abs(x).max()):.6g} overflows bfloat16 (max 3.3895e38)"
    return None
