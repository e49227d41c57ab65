"""Lc0's chess move encoding: the 1858 policy outputs and the 73×8×8 convolution-policy map.

Why generated rather than tabulated: both tables follow from a few facts about
lc0's move encoding (checked against lczero-training `tf/policy_index.py` and
`tf/lc0_az_policy_map.py`, which produce lc0's `src/neural/tables/policy_map.h`),
and generating them keeps those facts visible and testable:

- Squares are numbered a1 = 0 … h8 = 63 (rank·8 + file), from the side to move.
- The 1858 outputs are, first, every queen-line or knight move from each square
  (from-square ascending, destination ascending) — 1792 moves — then the 66
  promotions from rank 7 to rank 8 (from-square, destination, then q, r, b).
  A knight promotion has no entry of its own: it is the plain move.
- The convolution policy has 80 planes of 64 squares (index plane·64 + square);
  planes 0–55 are queen moves, 7 distances per direction N, NE, E, SE, S, SW, W,
  NW; planes 56–63 knight moves in the order (+1,+2) (+2,+1) (+2,−1) (+1,−2)
  (−1,−2) (−2,−1) (−2,+1) (−1,+2) as (file, rank) steps; planes 64–72 promotions
  by direction NW, N, NE, each to r, b, q; planes 73–79 are unused. A plane
  entry whose move leaves the board maps to nothing.
"""
from __future__ import annotations

import functools

import numpy as np

FILES = "abcdefgh"
QUEEN_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))  # N NE E SE S SW W NW
KNIGHT_STEPS = ((1, 2), (2, 1), (2, -1), (1, -2), (-1, -2), (-2, -1), (-2, 1), (-1, 2))
PROMOTION_DIRECTIONS = (-1, 0, 1)  # file step of NW, N, NE
CONV_PROMOTION_PIECES = "rbq"  # per direction, in plane order
INDEX_PROMOTION_PIECES = "qrb"  # per destination, in 1858-index order
POLICY_OUTPUTS = 1858
CONV_PLANES = 80
MAPPED_PLANES = 73
SQUARES = 64


def square_name(square: int) -> str:
    return FILES[square % 8] + str(square // 8 + 1)


def parse_square(name: str) -> int:
    return FILES.index(name[0]) + 8 * (int(name[1]) - 1)


def _on_board(file: int, rank: int) -> bool:
    return 0 <= file < 8 and 0 <= rank < 8


@functools.lru_cache(maxsize=None)
def moves() -> tuple[str, ...]:
    """The 1858 UCI move names in lc0 policy order (from the side to move's view)."""
    plain = []
    for sq in range(SQUARES):
        f, r = sq % 8, sq // 8
        targets = set()
        for df, dr in QUEEN_DIRECTIONS:
            for dist in range(1, 8):
                if _on_board(f + df * dist, r + dr * dist):
                    targets.add((r + dr * dist) * 8 + f + df * dist)
        for df, dr in KNIGHT_STEPS:
            if _on_board(f + df, r + dr):
                targets.add((r + dr) * 8 + f + df)
        plain += [square_name(sq) + square_name(t) for t in sorted(targets)]
    promotions = []
    for f in range(8):
        for df in PROMOTION_DIRECTIONS:
            if 0 <= f + df < 8:
                base = FILES[f] + "7" + FILES[f + df] + "8"
                promotions += [base + piece for piece in INDEX_PROMOTION_PIECES]
    result = tuple(plain + promotions)
    assert len(result) == POLICY_OUTPUTS, len(result)
    return result


@functools.lru_cache(maxsize=None)
def move_index() -> dict[str, int]:
    """UCI move → policy index; a knight promotion ("a7a8n") is the plain move's index."""
    index = {m: i for i, m in enumerate(moves())}
    for m in list(index):
        if len(m) == 5 and m[4] == "q":
            index[m[:4] + "n"] = index[m[:4]]
    return index


def _conv_plane_moves() -> list[tuple[int, int, str]]:
    """(plane, square, UCI move) for every on-board entry of the 73 mapped planes."""
    entries = []
    for d, (df, dr) in enumerate(QUEEN_DIRECTIONS):
        for dist in range(1, 8):
            plane = d * 7 + dist - 1
            for sq in range(SQUARES):
                f, r = sq % 8, sq // 8
                if _on_board(f + df * dist, r + dr * dist):
                    entries.append((plane, sq, square_name(sq) + square_name((r + dr * dist) * 8 + f + df * dist)))
    for k, (df, dr) in enumerate(KNIGHT_STEPS):
        for sq in range(SQUARES):
            f, r = sq % 8, sq // 8
            if _on_board(f + df, r + dr):
                entries.append((56 + k, sq, square_name(sq) + square_name((r + dr) * 8 + f + df)))
    for d, df in enumerate(PROMOTION_DIRECTIONS):
        for p, piece in enumerate(CONV_PROMOTION_PIECES):
            plane = 64 + d * 3 + p
            for f in range(8):
                if 0 <= f + df < 8:
                    sq = 6 * 8 + f
                    entries.append((plane, sq, square_name(sq) + square_name(7 * 8 + f + df) + piece))
    return entries


@functools.lru_cache(maxsize=None)
def conv_policy_map() -> np.ndarray:
    """int32 [80·64]: the policy index fed by each convolution-policy output, −1 where none (lc0's layout)."""
    table = np.full(CONV_PLANES * SQUARES, -1, dtype=np.int32)
    index = move_index()
    for plane, sq, move in _conv_plane_moves():
        table[plane * SQUARES + sq] = index[move]
    table.setflags(write=False)
    return table


def _gather(table: np.ndarray, what: str) -> np.ndarray:
    """The inverse of a head's map: for each of the 1858 policy indices, the head output that feeds it;
    a map that does not reach every index exactly once is a bug in the table, not in a file."""
    source = np.full(POLICY_OUTPUTS, -1, dtype=np.int64)
    mapped = np.flatnonzero(table >= 0)
    source[table[mapped]] = mapped
    if (source < 0).any() or len(mapped) != POLICY_OUTPUTS:
        raise AssertionError(f"{what} policy map does not reach every output exactly once")
    source.setflags(write=False)
    return source


@functools.lru_cache(maxsize=None)
def conv_policy_gather() -> np.ndarray:
    """int64 [1858]: for each policy index, the flat convolution-policy output (plane·64 + square) it reads."""
    return _gather(conv_policy_map(), "convolution")


# Attention policy (lc0 src/neural/tables/attention_policy_map.h, kAttnPolicyMap): 64·64 from→to
# logits, then 8·24 promotion logits at 4096 + 24·from_file + 3·to_file + piece (piece q, r, b) for
# the rank-7 → rank-8 moves. A from→to pair that is no move of the 1858 maps to nothing; a7a8 as a
# plain move (the knight promotion) is the from→to logit, as it is for every other plain move.
ATTENTION_POLICY_SIZE = SQUARES * SQUARES + 8 * 24


@functools.lru_cache(maxsize=None)
def attention_policy_map() -> np.ndarray:
    """int32 [4288]: the policy index fed by each attention-policy logit, −1 where none (lc0's layout)."""
    table = np.full(ATTENTION_POLICY_SIZE, -1, dtype=np.int32)
    index = {m: i for i, m in enumerate(moves())}
    for frm in range(SQUARES):
        for to in range(SQUARES):
            table[frm * SQUARES + to] = index.get(square_name(frm) + square_name(to), -1)
    for from_file in range(8):
        for to_file in range(8):
            for p, piece in enumerate(INDEX_PROMOTION_PIECES):
                move = f"{FILES[from_file]}7{FILES[to_file]}8{piece}"
                table[SQUARES * SQUARES + 24 * from_file + 3 * to_file + p] = index.get(move, -1)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=None)
def attention_policy_gather() -> np.ndarray:
    """int64 [1858]: for each policy index, the attention-policy logit (of the 4288) it reads."""
    return _gather(attention_policy_map(), "attention")
