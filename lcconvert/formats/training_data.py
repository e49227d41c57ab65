"""lc0 training data: gzip chunks of fixed-size records, decoded to the 112 planes lc0 feeds the network.

Why here: batch-norm recalibration measures statistics on the positions a network
was trained on, so it needs those positions exactly as the engine encodes them.
Layout (FORMATS.md §9; lc0 `src/trainingdata/trainingdata_v6.h`, `_v7.h`, and the
V3→V6 upgrade in lc0's training-data reader): one uint32 version first, then

  V3 8,276 B   probabilities[1858] f32, planes[104] u64, castling ×4, side to move,
               rule50, move count, result (int8, side to move's view)
  V4 8,292 B   V3 + root_q, best_q, root_d, best_d
  V5 8,308 B   input_format u32 after the version; the V4 body; root_m, best_m, plies_left
  V6 8,356 B   V5 with the result byte unused, + result_q, result_d, played_q/d/m,
               orig_q/d/m, visits u32, played_idx u16, best_idx u16, policy_kld, reserved
  V7 8,396 B   V6 (reserved → q_st) + d_st, opp_played_idx, next_played_idx, 8 reserved floats

Two facts that decide whether the planes are right (both measured on the real
chunks in the tests):
- lc0 writes each plane mask through `ReverseBitsInBytes`, so unpacking each
  little-endian byte most-significant bit first gives squares a1 … h8.
- The rule-50 plane holds the raw ply count for input formats below 4 (what lc0's
  encoder feeds; a `.pb` exported by lczero-training divides that plane's *weights*
  by 99 instead), and plies/100 for the hectoplies formats 4, 5, 132, 133.

Auxiliary planes 104–111 follow lc0's `PlanesFromTrainingData` for the record's
input format — without undoing canonical transforms, since the network was fed the
transformed planes: format 1 castling planes all-ones flags; formats ≥ 2 rook-file
bits (ours on rank 1, theirs on rank 8) in planes 104/105 and 106/107 empty; plane
108 side to move (all ones when black) or, canonical formats, the en-passant file
bits on rank 8; 109 rule 50; 110 zeros (ones for black in the armageddon formats);
111 ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lcconvert import files
from lcconvert.constants import KNOWN_INPUT_FORMATS
from lcconvert.errors import FormatError
from lcconvert.formats import gz

RECORD_SIZES = {3: 8276, 4: 8292, 5: 8308, 6: 8356, 7: 8396}
POLICY = 1858
HISTORY_PLANES = 104
PLANES = 112
CANONICAL_FORMATS = (3, 4, 5, 132, 133)
HECTOPLIES_FORMATS = (4, 5, 132, 133)
ARMAGEDDON_FORMATS = (132, 133)


def _fields(version: int) -> list[tuple]:
    """numpy structured-dtype fields of one record (little-endian, packed)."""
    head = [("version", "<u4")]
    if version >= 5:
        head.append(("input_format", "<u4"))
    body = [("probabilities", "<f4", (POLICY,)), ("planes", "u1", (HISTORY_PLANES, 8)),
            ("castling", "u1", (4,)), ("stm_or_ep", "u1"), ("rule50", "u1"), ("invariance", "u1"),
            ("result_byte", "i1")]
    if version >= 4:
        body += [("root_q", "<f4"), ("best_q", "<f4"), ("root_d", "<f4"), ("best_d", "<f4")]
    if version >= 5:
        body += [("root_m", "<f4"), ("best_m", "<f4"), ("plies_left", "<f4")]
    if version >= 6:
        body += [("result_q", "<f4"), ("result_d", "<f4"), ("played_q", "<f4"), ("played_d", "<f4"),
                 ("played_m", "<f4"), ("orig_q", "<f4"), ("orig_d", "<f4"), ("orig_m", "<f4"),
                 ("visits", "<u4"), ("played_idx", "<u2"), ("best_idx", "<u2"), ("policy_kld", "<f4"),
                 ("reserved", "<u4")]
    if version >= 7:
        body += [("d_st", "<f4"), ("opp_played_idx", "<u2"), ("next_played_idx", "<u2"), ("tail", "u1", (32,))]
    return head + body


DTYPES = {v: np.dtype(_fields(v)) for v in RECORD_SIZES}
assert all(DTYPES[v].itemsize == size for v, size in RECORD_SIZES.items())


@dataclass
class Chunk:
    """The records of one training-data file, as arrays over its N positions."""

    path: str
    version: int
    input_format: np.ndarray  # [N] uint32 (1 for V3/V4, which predate the field)
    probabilities: np.ndarray  # [N, 1858] float32, −1 for illegal moves
    masks: np.ndarray  # [N, 104, 8] uint8: each plane's 8 little-endian bytes as stored
    castling: np.ndarray  # [N, 4] uint8: us ooo, us oo, them ooo, them oo
    stm_or_ep: np.ndarray  # [N] uint8
    rule50: np.ndarray  # [N] uint8
    invariance: np.ndarray  # [N] uint8
    result_q: np.ndarray  # [N] float32, side to move's view: 1 win, −1 loss
    result_d: np.ndarray  # [N] float32, 1 for a draw
    played_idx: np.ndarray | None  # [N] uint16 (V6+)

    def __len__(self) -> int:
        return int(self.input_format.shape[0])

    def planes(self, rows=None) -> np.ndarray:
        """float32 [n, 112, 64] input planes of the records `rows` (default all), as lc0 feeds them."""
        sel = slice(None) if rows is None else np.asarray(rows)
        return encode_planes(self.masks[sel], self.castling[sel], self.stm_or_ep[sel], self.rule50[sel],
                             self.invariance[sel], self.input_format[sel])

    def take(self, rows) -> Chunk:
        rows = np.asarray(rows)
        pick = lambda a: None if a is None else a[rows]
        return Chunk(self.path, self.version, *(pick(getattr(self, f)) for f in
                                                ("input_format", "probabilities", "masks", "castling",
                                                 "stm_or_ep", "rule50", "invariance", "result_q",
                                                 "result_d", "played_idx")))


def parse(data: bytes, path: str) -> Chunk:
    """Decode a whole decompressed chunk; FormatError naming the record for anything malformed."""
    if not data:
        raise FormatError(path, "no training records (empty after decompression)")
    if len(data) < 4:
        raise FormatError(path, f"record 0: truncated ({len(data)} bytes, not even a version number)")
    version = int.from_bytes(data[:4], "little")
    if version not in RECORD_SIZES:
        raise FormatError(path, f"record 0: unknown training data version {version} "
                                f"(known: {', '.join(map(str, RECORD_SIZES))})")
    size = RECORD_SIZES[version]
    whole, rest = divmod(len(data), size)
    if rest:
        raise FormatError(path, f"record {whole}: truncated ({rest} of {size} bytes of a V{version} record)")
    rec = np.frombuffer(data, dtype=DTYPES[version])
    bad = np.flatnonzero(rec["version"] != version)
    if bad.size:
        i = int(bad[0])
        raise FormatError(path, f"record {i}: version {int(rec['version'][i])} in a file of V{version} records")
    n = len(rec)
    if version >= 5:
        fmt = rec["input_format"].astype(np.uint32)
        bad = np.flatnonzero(~np.isin(fmt, KNOWN_INPUT_FORMATS))
        if bad.size:
            i = int(bad[0])
            raise FormatError(path, f"record {i}: unknown input format {int(fmt[i])}")
    else:
        fmt = np.ones(n, dtype=np.uint32)
    if version >= 6:
        result_q, result_d = rec["result_q"].copy(), rec["result_d"].copy()
        played = rec["played_idx"].copy()
        bad = np.flatnonzero(played >= POLICY)
        if bad.size:
            i = int(bad[0])
            raise FormatError(path, f"record {i}: played move index {int(played[i])} is not below {POLICY}")
    else:  # the result byte: −1, 0, 1 from the side to move's view (as lc0's V5→V6 upgrade reads it)
        r = rec["result_byte"].astype(np.float32)
        result_q, result_d, played = r, (r == 0).astype(np.float32), None
    for name, values in (("result_q", result_q), ("result_d", result_d)):
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > 1))
        if bad.size:
            i = int(bad[0])
            raise FormatError(path, f"record {i}: {name} {float(values[i])} is not in [-1, 1]")
    probs = rec["probabilities"]
    bad = np.flatnonzero(~np.all(np.isfinite(probs) & (probs <= 1) & ((probs >= 0) | (probs == -1)), axis=1))
    if bad.size:
        i = int(bad[0])
        raise FormatError(path, f"record {i}: search probabilities outside [0, 1] (−1 marks illegal moves)")
    return Chunk(path, version, fmt, probs.copy(), rec["planes"].copy(), rec["castling"].copy(),
                 rec["stm_or_ep"].copy(), rec["rule50"].copy(), rec["invariance"].copy(),
                 result_q, result_d, played)


def read(path: str) -> Chunk:
    """Read and decode one chunk file (gzip or plain)."""
    raw = files.read_file(path, what="a training data file")
    if not raw:
        raise FormatError(path, "empty file")
    return parse(gz.gunzip(raw, path) if gz.is_gzip(raw) else raw, path)


def encode_planes(masks, castling, stm_or_ep, rule50, invariance, input_format) -> np.ndarray:
    """float32 [n, 112, 64] from the stored fields (module docstring for the rules)."""
    n = masks.shape[0]
    out = np.zeros((n, PLANES, 64), dtype=np.float32)
    # Stored bytes are bit-reversed: most-significant bit first gives a1 … h8.
    out[:, :HISTORY_PLANES] = np.unpackbits(masks, axis=-1, bitorder="big").reshape(n, HISTORY_PLANES, 64)
    fmt = np.asarray(input_format).astype(np.int64)
    classic = fmt == 1
    ones = np.ones(64, dtype=np.float32)
    # Format 1: castling flags as whole planes.
    out[classic, 104:108] = (castling[classic, :, None] != 0) * ones
    # Formats ≥ 2: rook-file bits, ours on rank 1, theirs on rank 8; planes 106/107 empty.
    rook = ~classic
    if rook.any():
        bits = np.unpackbits(castling[rook][:, :, None], axis=-1, bitorder="little").astype(np.float32)  # [m,4,8]
        out[rook, 104, 0:8] = bits[:, 0]
        out[rook, 104, 56:64] = bits[:, 2]
        out[rook, 105, 0:8] = bits[:, 1]
        out[rook, 105, 56:64] = bits[:, 3]
    canonical = np.isin(fmt, CANONICAL_FORMATS)
    out[~canonical, 108] = (stm_or_ep[~canonical, None] != 0) * ones
    if canonical.any():
        out[canonical, 108, 56:64] = np.unpackbits(stm_or_ep[canonical][:, None], axis=-1, bitorder="little")
    r50 = rule50.astype(np.float32)
    hecto = np.isin(fmt, HECTOPLIES_FORMATS)
    out[:, 109] = np.where(hecto, r50 / np.float32(100.0), r50)[:, None]
    armageddon_black = np.isin(fmt, ARMAGEDDON_FORMATS) & (invariance >= 128)
    out[armageddon_black, 110] = 1.0
    out[:, 111] = 1.0
    return out
