"""A Go board with captures, and the 18 input planes Leela Zero builds from its history.

Why our own: Leela Zero networks see only stones, so the whole input is the board
history; getting it exactly as leelaz does (src/Network.cpp `gather_features`)
needs captures played out correctly, which is the rule written here:

- A stone is placed on an empty point; every opponent group adjacent to it that is
  left without a liberty is removed; if the placed stone's own group then has no
  liberty the move is suicide and refused (leelaz refuses suicide). Retaking a
  single stone immediately (simple ko) is refused too. `pass` changes nothing.
- The side to move is the opponent of whoever moved last (black at the start), so
  a move list may have one colour play twice, as GTP `play` allows.
- Planes (index y·19 + x, x from column A, y from row 1): 0–7 the side to move's
  stones at T = 0, −1, …, −7, 8–15 the opponent's at the same times, 16 all ones if
  black is to move, 17 all ones if white is. Times before the first move are empty
  boards (all zeros).
- GTP vertices: columns A–T without I, rows 1–19 from the bottom; `pass`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLUMNS = "ABCDEFGHJKLMNOPQRST"
HISTORY = 8
EMPTY, BLACK, WHITE = 0, 1, 2
PASS = "pass"


def vertex_name(index: int, size: int = 19) -> str:
    """Policy index (y·size + x, size·size = pass) → GTP vertex."""
    if index == size * size:
        return PASS
    return f"{COLUMNS[index % size]}{index // size + 1}"


def parse_vertex(text: str, size: int = 19) -> int | None:
    """GTP vertex → point index, None for pass; ValueError if not a vertex of this board."""
    t = text.strip().upper()
    if t == "PASS":
        return None
    if len(t) < 2 or t[0] not in COLUMNS[:size] or not t[1:].isdigit() or not 1 <= int(t[1:]) <= size:
        raise ValueError(f"{text!r} is not a vertex of a {size}×{size} board")
    return (int(t[1:]) - 1) * size + COLUMNS.index(t[0])


def parse_color(text: str) -> int:
    t = text.strip().lower()
    if t in ("b", "black"):
        return BLACK
    if t in ("w", "white"):
        return WHITE
    raise ValueError(f"{text!r} is not a colour (B or W)")


class IllegalGoMove(ValueError):
    """A move the rules refuse; `index` counts from 1."""

    def __init__(self, index: int, move: str, reason: str):
        super().__init__(f"move {index} ({move}) is illegal: {reason}")
        self.index = index


@dataclass
class GoBoard:
    size: int = 19
    points: np.ndarray = field(default=None)  # int8 [size·size]: EMPTY, BLACK, WHITE
    to_move: int = BLACK
    ko: int | None = None  # the point a single-stone recapture may not be played on
    history: list[np.ndarray] = field(default_factory=list)  # boards before each move, oldest first

    def __post_init__(self):
        if self.points is None:
            self.points = np.zeros(self.size * self.size, dtype=np.int8)

    def _neighbours(self, p: int):
        x, y = p % self.size, p // self.size
        if x > 0:
            yield p - 1
        if x < self.size - 1:
            yield p + 1
        if y > 0:
            yield p - self.size
        if y < self.size - 1:
            yield p + self.size

    def _group(self, p: int) -> tuple[set[int], bool]:
        """The chain containing `p` and whether it has a liberty."""
        color = self.points[p]
        chain, stack, free = {p}, [p], False
        while stack:
            q = stack.pop()
            for n in self._neighbours(q):
                c = self.points[n]
                if c == EMPTY:
                    free = True
                elif c == color and n not in chain:
                    chain.add(n)
                    stack.append(n)
        return chain, free

    def play(self, color: int, point: int | None) -> None:
        """Play (or pass with None); ValueError with the reason if illegal. The board is unchanged then."""
        if point is not None:
            if self.points[point] != EMPTY:
                raise ValueError("the point is occupied")
            if point == self.ko and color == self.to_move:
                raise ValueError("it retakes a ko at once")
        before = self.points.copy()
        ko = None
        if point is not None:
            self.points[point] = color
            captured = set()
            for n in self._neighbours(point):
                if self.points[n] not in (EMPTY, color):
                    chain, free = self._group(n)
                    if not free:
                        captured |= chain
            for q in captured:
                self.points[q] = EMPTY
            chain, free = self._group(point)
            if not free:
                self.points = before
                raise ValueError("suicide")
            if len(captured) == 1 and len(chain) == 1 and \
                    not any(self.points[n] == EMPTY for n in self._neighbours(point) if n not in captured):
                ko = next(iter(captured))
        self.history.append(before)
        self.ko = ko
        self.to_move = WHITE if color == BLACK else BLACK

    def planes(self) -> np.ndarray:
        """float32 [18, size·size] as leelaz feeds them."""
        n = self.size * self.size
        out = np.zeros((18, n), dtype=np.float32)
        boards = [self.points] + self.history[::-1]
        me = self.to_move
        them = WHITE if me == BLACK else BLACK
        for t, board in enumerate(boards[:HISTORY]):
            out[t] = board == me
            out[HISTORY + t] = board == them
        out[16 if me == BLACK else 17] = 1.0
        return out


def play_moves(moves: list[tuple[str, str]], size: int = 19, setup: list[tuple[str, str]] = (),
               first: str | None = None) -> GoBoard:
    """A board after (colour, vertex) moves from the empty board; IllegalGoMove names the first bad one.

    `setup` stones are played first as moves (as leelaz loads an SGF's AB/AW), a stone already of its colour
    skipped; then `first` ('B'/'W'), if given, is the side to move.
    """
    board = GoBoard(size)
    for i, (color, vertex) in enumerate(setup, 1):
        point = parse_vertex(vertex, size)
        if point is not None and board.points[point] == parse_color(color):
            continue
        try:
            board.play(parse_color(color), point)
        except ValueError as e:
            raise IllegalGoMove(i, f"setup {color} {vertex}", str(e)) from None
    if first is not None:
        board.to_move = parse_color(first)
    for i, (color, vertex) in enumerate(moves, 1):
        try:
            board.play(parse_color(color), parse_vertex(vertex, size))
        except ValueError as e:
            raise IllegalGoMove(i, f"{color} {vertex}", str(e)) from None
    return board


def parse_move_list(text: str) -> list[tuple[str, str]]:
    """'B Q16 W D4 B pass' → [('B', 'Q16'), ('W', 'D4'), ('B', 'pass')]; ValueError if not pairs."""
    words = text.split()
    if len(words) % 2:
        raise ValueError(f"moves must be colour/vertex pairs, got {len(words)} words")
    return [(words[i], words[i + 1]) for i in range(0, len(words), 2)]


def legal_points(board: GoBoard) -> list[int]:
    """Policy indices of every legal move of the side to move (pass = size·size)."""
    out = []
    for p in np.flatnonzero(board.points == EMPTY):
        p = int(p)
        # A point with an empty neighbour is always legal (never suicide, and never the ko point, whose
        # neighbours were all the capturer's stones).
        if any(board.points[n] == EMPTY for n in board._neighbours(p)):
            out.append(p)
            continue
        trial = GoBoard(board.size, board.points.copy(), board.to_move, board.ko)
        try:
            trial.play(board.to_move, int(p))
        except ValueError:
            continue
        out.append(int(p))
    return out + [board.size * board.size]
