"""Seeded, realistic input planes for checking a network without a chess or Go engine.

Why realistic rather than uniform noise: a comparison of two networks is only
meaningful on inputs like those engines feed. Random real-valued planes drive
activations far outside anything the batch-norm statistics were measured on
(and a rule50 plane of noise hides the ÷99 input-format convention), so a fold
that is wrong only in the ranges real positions reach could pass. These inputs
are binary piece/stone planes with plausible material, a history that changes
by one move per ply, and auxiliary planes as the engines encode them:

Chess (lc0 encoder facts, FORMATS.md §2): 8 history blocks of 13 planes (our
P N B R Q K, their P N B R Q K, repetition), castling planes 104–107 (all-ones
flags for input format 1; rook-square bits for the later formats), plane 108 side
to move (all ones when black; the en-passant square bit for canonical formats ≥ 3),
plane 109 the rule50 count (raw plies for input formats < 4, plies/100 for ≥ 4),
plane 110 zeros (ones for black in the armageddon formats), plane 111 ones.
Go (FORMATS.md §5): planes 0–7 side-to-move stones at T = 0..−7, 8–15 the
opponent's, 16 ones if black is to move, 17 ones if white is.
"""
from __future__ import annotations

import numpy as np

from lcconvert.constants import Family
from lcconvert.network import Network

HISTORY = 8
PLANES_PER_BOARD = 13
AUX = PLANES_PER_BOARD * HISTORY  # 104
HECTOPLIES_FORMATS = (4, 5, 132, 133)
CANONICAL_FORMATS = (3, 4, 5, 132, 133)
ARMAGEDDON_FORMATS = (132, 133)
# Piece kinds in plane order with (max count, lowest row, highest row) for a side seen from its own back rank.
PIECES = ((8, 1, 6), (2, 0, 7), (2, 0, 7), (2, 0, 7), (1, 0, 7))  # pawns, knights, bishops, rooks, queens
KING = 5


def random_planes(net: Network, n: int, seed: int = 0) -> np.ndarray:
    """float32 [n, planes, squares] inputs for `net` (chess [n,112,64], Go [n,18,361]), seeded."""
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = np.random.default_rng(seed)
    if net.family is Family.GO:
        return np.stack([_go_position(rng, net.board_size) for _ in range(n)])
    return np.stack([_chess_position(rng, net.format.input or 1) for _ in range(n)])


# -- chess -------------------------------------------------------------------

def _chess_board(rng: np.random.Generator) -> np.ndarray:
    """[2, 6, 64] bool: side (0 = to move, seen from its own side; 1 = opponent), piece kind, square."""
    board = np.zeros((2, 6, 64), dtype=bool)
    occupied = np.zeros(64, dtype=bool)
    material = rng.uniform(0.15, 1.0)  # game phase: fraction of the starting material left
    for side in (0, 1):
        # Kings first, on distinct squares; the opponent's pieces are placed mirrored (rows from its back rank).
        free = np.flatnonzero(~occupied)
        sq = rng.choice(free)
        board[side, KING, sq] = occupied[sq] = True
        for kind, (most, lo, hi) in enumerate(PIECES):
            count = rng.binomial(most, material)
            for _ in range(count):
                rows = np.arange(lo, hi + 1) if side == 0 else 7 - np.arange(lo, hi + 1)
                candidates = [r * 8 + f for r in rows for f in range(8) if not occupied[r * 8 + f]]
                if not candidates:
                    break
                sq = rng.choice(candidates)
                board[side, kind, sq] = occupied[sq] = True
    return board


def _step_back(rng: np.random.Generator, board: np.ndarray, side: int) -> np.ndarray:
    """The board one ply earlier: one piece of `side` (the one that moved) stood elsewhere."""
    prev = board.copy()
    kinds, squares = np.nonzero(prev[side])
    i = rng.integers(len(kinds))
    occupied = prev.any(axis=(0, 1))
    free = np.flatnonzero(~occupied)
    if kinds[i] == 0:  # a pawn came from a row nearer its own back rank
        free = [s for s in free if 1 <= s // 8 <= 6]
    if len(free):
        prev[side, kinds[i], squares[i]] = False
        prev[side, kinds[i], rng.choice(free)] = True
    return prev


def _chess_position(rng: np.random.Generator, input_format: int) -> np.ndarray:
    planes = np.zeros((112, 64), dtype=np.float32)
    board = _chess_board(rng)
    # Short histories (game start) are zero-filled as older lc0 does; most positions have all 8.
    length = HISTORY if rng.random() < 0.8 else int(rng.integers(1, HISTORY + 1))
    current = board
    for t in range(length):
        base = t * PLANES_PER_BOARD
        planes[base:base + 6] = current[0]
        planes[base + 6:base + 12] = current[1]
        if rng.random() < 0.03:
            planes[base + 12] = 1.0  # repetition
        # The move that led to position t was made by the opponent of whoever is to move there.
        mover = 1 if t % 2 == 0 else 0
        current = _step_back(rng, current, mover)

    rights = rng.random(4) < 0.5 * (board.sum() / 32.0 + 0.2)  # we 0-0-0, we 0-0, they 0-0-0, they 0-0
    black = rng.random() < 0.5
    if input_format == 1:
        for i in range(4):
            planes[AUX + i] = float(rights[i])
    else:  # rook squares: queenside rook on file a, kingside on file h (standard chess)
        for plane, file, ours, theirs in ((AUX, 0, rights[0], rights[2]), (AUX + 1, 7, rights[1], rights[3])):
            planes[plane, file] = float(ours)
            planes[plane, 56 + file] = float(theirs)
    if input_format in CANONICAL_FORMATS:
        if rng.random() < 0.1:
            planes[AUX + 4, 56 + rng.integers(8)] = 1.0  # en-passant file, marked on the last row
    elif black:
        planes[AUX + 4] = 1.0
    plies = int(min(99, rng.geometric(0.12) - 1))
    planes[AUX + 5] = plies / 100.0 if input_format in HECTOPLIES_FORMATS else float(plies)
    if input_format in ARMAGEDDON_FORMATS and black:
        planes[AUX + 6] = 1.0
    planes[AUX + 7] = 1.0
    return planes


# -- Go ------------------------------------------------------------------------

def _go_position(rng: np.random.Generator, size: int) -> np.ndarray:
    points = size * size
    moves = int(rng.integers(0, int(points * 0.6)))
    order = rng.permutation(points)[:moves]  # stone i was played by black when i is even (no captures)
    black_to_move = moves % 2 == 0
    planes = np.zeros((18, points), dtype=np.float32)
    for t in range(HISTORY):
        played = order[:max(0, moves - t)]
        black, white = played[0::2], played[1::2]
        ours, theirs = (black, white) if black_to_move else (white, black)
        planes[t, ours] = 1.0
        planes[8 + t, theirs] = 1.0
    planes[16 if black_to_move else 17] = 1.0
    return planes
