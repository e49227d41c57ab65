"""A tensor that remembers how it was encoded.

Readers wrap each stored layer in a `Tensor` holding the encoded bytes; the
float values are decoded on first read and cached. A writer asking for the
tensor's own encoding gets the original bytes back, so a round trip is
bit-exact and a transform that never touches a tensor never pays to decode or
re-quantize it.
"""
from __future__ import annotations

import numpy as np

from lcconvert import codecs
from lcconvert.codecs import Encoding


class Tensor:
    """One flat vector of parameters plus the encoding it came in.

    `raw`/`min_val`/`max_val` are the stored form (None for tensors made from
    floats until first encoded); `values` is the float32 decode, made lazily.
    `layer_meta` carries protobuf details that only matter for an exact rewrite
    (whether the Layer had an explicit `encoding` field, its `dims`).
    """

    __slots__ = ("encoding", "raw", "min_val", "max_val", "_values", "layer_meta", "_recomputable")

    def __init__(
        self,
        encoding: Encoding,
        raw: bytes | None = None,
        min_val: float | None = None,
        max_val: float | None = None,
        values: np.ndarray | None = None,
        layer_meta: dict | None = None,
    ):
        if raw is None and values is None:
            raise ValueError("a Tensor needs bytes or values")
        self.encoding = Encoding(encoding)
        self.raw = raw
        self.min_val = min_val
        self.max_val = max_val
        self._values = None
        self._recomputable = False
        if values is not None:
            v = np.array(values, dtype=np.float32).ravel()
            v.setflags(write=False)
            self._values = v
        self.layer_meta = layer_meta or {}

    def __getstate__(self):
        """Slots as a dict, the stored bytes as bytes: a tensor read from a file holds a read-only view of
        the file's payload (lc0_proto.read, `share`), which pickle cannot carry (Dask ships networks)."""
        state = {name: getattr(self, name) for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())
                 if hasattr(self, name)}
        if isinstance(state.get("raw"), memoryview):
            state["raw"] = state["raw"].tobytes()
            meta = state["layer_meta"] = dict(state["layer_meta"])
            meta["read_params"] = state["raw"]
        return state

    def __setstate__(self, state):
        for name, value in state.items():
            setattr(self, name, value)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_values(cls, values, encoding: Encoding = Encoding.FLOAT32) -> "Tensor":
        """A tensor made of floats; it is stored in `encoding` when written."""
        return cls(encoding, values=values)

    # -- reading -------------------------------------------------------------
    @property
    def size(self) -> int:
        if self._values is not None:
            return int(self._values.size)
        return len(self.raw) // self.encoding.bytes_per_value

    def __len__(self) -> int:
        return self.size

    @property
    def decoded(self) -> bool:
        return self._values is not None

    @property
    def values(self) -> np.ndarray:
        """float32 vector, read-only, decoded once (kept until `forget_decode`)."""
        if self._values is None:
            v = self.peek()
            v.setflags(write=False)
            self._values = v
            self._recomputable = True  # made here from what the tensor holds: it can be made again
        return self._values

    def forget_decode(self) -> None:
        """Drop a decode that was made from the stored bytes (it is made again when asked for): a big
        network then holds its bytes only. Values a tensor was built from are kept — they are not
        what its bytes decode to."""
        if self._recomputable:
            self._values = None
            self._recomputable = False

    def stored(self) -> "Tensor":
        """This tensor as its stored bytes alone (self when it has no decode to drop); only for a
        tensor whose bytes are what will be written, since values it was built from are dropped."""
        if self.raw is None or self._values is None:
            return self
        if self._recomputable:  # a decode of these very bytes: the same tensor, its cache dropped
            self.forget_decode()
            return self
        return Tensor(self.encoding, self.raw, self.min_val, self.max_val, layer_meta=dict(self.layer_meta))

    def peek(self) -> np.ndarray:
        """The float32 values without keeping a decode: a pass over a whole big network that reads each
        tensor once (a lazily prepared forward model) then holds no second copy of the network."""
        if self._values is not None:
            return self._values
        return codecs.decode(self.raw, self.encoding, self.min_val or 0.0, self.max_val or 0.0)

    def nonfinite(self) -> tuple[int, int | None]:
        """(how many values are NaN or ±inf, index of the first), read from the stored bytes when the
        tensor is still encoded: checking a whole network must not pay for decoding it."""
        if self.decoded or self.raw is None:
            bad = ~np.isfinite(self.values)
        elif self.encoding is Encoding.LINEAR16:
            # min·(1 − θ) + max·θ is finite for every θ ∈ [0, 1] when min and max are.
            finite = np.isfinite([self.min_val or 0.0, self.max_val or 0.0]).all()
            return (0, None) if finite else (self.size, 0)
        elif self.encoding is Encoding.FLOAT32:
            bad = ~np.isfinite(np.frombuffer(self.raw, "<f4"))
        else:  # FLOAT16 and BFLOAT16: the exponent bits all ones mean inf or NaN
            mask = 0x7C00 if self.encoding is Encoding.FLOAT16 else 0x7F80
            bad = (np.frombuffer(self.raw, "<u2") & mask) == mask
        count = int(np.count_nonzero(bad))
        return count, (int(np.argmax(bad)) if count else None)

    def array(self, shape) -> np.ndarray:
        return self.values.reshape(shape)

    # -- writing -------------------------------------------------------------
    def encoded(self, encoding: Encoding | None = None) -> tuple[bytes, float | None, float | None]:
        """Bytes, min, max in `encoding` (default: the tensor's own).

        The tensor's own bytes are returned untouched when they exist, which is
        what makes an untouched round trip byte-identical.
        """
        target = self.encoding if encoding is None else Encoding(encoding)
        if target is self.encoding and self.raw is not None:
            return self.raw, self.min_val, self.max_val
        raw, lo, hi = codecs.encode(self.values, target)
        if target is self.encoding:
            self.raw, self.min_val, self.max_val = raw, lo, hi
        return raw, lo, hi

    def reencoded(self, encoding: Encoding) -> "Tensor":
        """A new tensor holding exactly what a reader of `encoding` would decode."""
        encoding = Encoding(encoding)
        if encoding is self.encoding and self.raw is not None:
            return self
        raw, lo, hi = codecs.encode(self.values, encoding)
        return Tensor(encoding, raw, lo, hi, layer_meta=dict(self.layer_meta))

    def __repr__(self) -> str:
        state = "decoded" if self.decoded else "encoded"
        return f"Tensor({self.encoding.name}, size={self.size}, {state})"


class Derived(Tensor):
    """A float32 tensor computed from another (`make(base)`) when it is read, and not kept when read
    with `peek`: a forward pass that reads each weight once (forward.Model, lazy) then never holds a
    derived copy of a whole network — a rounded reference (verify) or an engine's own decode
    (engines) of a 40×512 network is 0.8 GB."""

    __slots__ = ("_base", "_make")

    def __init__(self, base: Tensor, make):
        # Tensor's own fields, as a FLOAT32 tensor made of floats that are not made yet.
        self.encoding, self.raw, self.min_val, self.max_val = Encoding.FLOAT32, None, None, None
        self._values, self._recomputable, self.layer_meta = None, False, {}
        self._base, self._make = base, make

    @property
    def size(self) -> int:
        return self._base.size

    def peek(self) -> np.ndarray:
        if self._values is not None:
            return self._values
        return np.asarray(self._make(self._base), dtype=np.float32)
