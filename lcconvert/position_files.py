"""Readers for position files: PGN and EPD (chess), SGF (Go), and lc0 training games.

Why here, apart from the encoders: a bad line in a user's file must come back as
one line naming the file and the line (`FILE:LINE: problem`, exit 2), and that is
a property of reading text, not of encoding boards. Each reader returns plain
data (a FEN and UCI moves, or colour/vertex pairs) that `encoder` and `go_board`
turn into planes. python-chess parses PGN leniently and keeps its errors on the
game; they are raised here instead, with the game number and line.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import chess
import chess.pgn

from lcconvert.errors import FormatError
from lcconvert.files import read_file


class _StrictGameBuilder(chess.pgn.GameBuilder):
    """Raise the first error instead of logging it and reading on (python-chess's default)."""

    def handle_error(self, error: Exception) -> None:
        raise error


@dataclass(frozen=True)
class ChessPosition:
    """A position to evaluate: a start FEN and the UCI moves played from it (lc0 builds history from them)."""

    label: str  # where it came from, for reports: "FILE game 2 ply 14", "FILE:3", "--fen"
    fen: str
    moves: tuple[str, ...] = ()


@dataclass(frozen=True)
class SgfGame:
    size: int
    moves: tuple[tuple[str, str], ...]  # (colour, GTP vertex) along the main line
    lines: tuple[int, ...]  # the line of each move in the file
    setup: tuple[tuple[str, str], ...] = ()  # root AB then AW stones, played as moves as leelaz does
    setup_lines: tuple[int, ...] = ()
    player: str | None = None  # root PL: the side to move after the setup stones


def _text(path: str, what: str) -> str:
    raw = read_file(path, what)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def read_pgn(path: str) -> list[tuple[int, ChessPosition, int]]:
    """Every game as (number from 1, start position with all its moves, line of its first header/move).

    FormatError `FILE:LINE: game N: problem` for a game python-chess cannot read or whose moves are illegal.
    """
    text = _text(path, "a PGN file")
    stream = io.StringIO(text)
    games = []
    while True:
        start = stream.tell()
        number = len(games) + 1
        # The game's first line: skip blank lines between games.
        first = start + (len(text[start:]) - len(text[start:].lstrip()))
        try:
            game = chess.pgn.read_game(stream, Visitor=_StrictGameBuilder)
        except (ValueError, RuntimeError) as e:
            error = str(e)
            token = re.search(r"'([^']*)'", error)
            bad_line = _line_of(text, first)
            if token:
                found = re.search(r"(?<![\w])" + re.escape(token.group(1)) + r"(?![\w])", text[first:])
                if found:
                    bad_line = _line_of(text, first + found.start())
            raise FormatError(f"{path}:{bad_line}", f"game {number}: {error.split(' in ')[0]}") from None
        if game is None:
            break
        line = _line_of(text, first)
        board = game.board()
        fen = board.fen()
        moves = []
        for move in game.mainline_moves():
            moves.append(board.uci(move))
            board.push(move)
        if not moves and not game.headers.get("FEN") and not any(game.headers.values()):
            continue
        games.append((number, ChessPosition(f"{path} game {number}", fen, tuple(moves)), line))
    if not games:
        raise FormatError(path, "no games in this PGN file")
    return games


def pgn_positions(path: str, game: int | None = None, ply: int | None = None) -> list[ChessPosition]:
    """Positions of the selected games (all when `game` is None): after `ply` plies, or after every ply."""
    games = read_pgn(path)
    if game is not None:
        if not 1 <= game <= len(games):
            raise FormatError(path, f"no game {game} (the file has {len(games)})")
        games = [games[game - 1]]
    out = []
    for number, pos, _line in games:
        plies = range(len(pos.moves) + 1) if ply is None else [ply]
        for k in plies:
            if k > len(pos.moves):
                raise FormatError(path, f"game {number} has {len(pos.moves)} plies, not {k}")
            out.append(ChessPosition(f"{path} game {number} ply {k}", pos.fen, pos.moves[:k]))
    return out


def epd_positions(path: str) -> list[ChessPosition]:
    """One position per non-blank line (EPD, or a full FEN); '#' starts a comment line."""
    text = _text(path, "an EPD file")
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            board, _ops = chess.Board.from_epd(line)
        except ValueError as e:
            try:
                board = chess.Board(line)
            except ValueError:
                raise FormatError(f"{path}:{number}", f"not an EPD or FEN line ({e})") from None
        status = board.status()
        if status != chess.STATUS_VALID:
            problems = [n.lower().replace("_", " ") for n, f in chess.Status.__members__.items() if f and status & f]
            raise FormatError(f"{path}:{number}", f"illegal position: {', '.join(problems)}")
        out.append(ChessPosition(f"{path}:{number}", board.fen(en_passant="fen")))
    if not out:
        raise FormatError(path, "no positions in this EPD file")
    return out


_SGF_PROP = re.compile(r"([A-Z]+)\s*((?:\[(?:\\.|[^\]\\])*\]\s*)+)", re.DOTALL)
_SGF_VALUE = re.compile(r"\[((?:\\.|[^\]\\])*)\]", re.DOTALL)
COLUMNS = "ABCDEFGHJKLMNOPQRST"


def read_sgf(path: str) -> SgfGame:
    """The main line of an SGF game record (first variation at each branch) as GTP moves.

    Root setup stones follow leelaz's SGF loader (src/SGFTree.cpp): every AB stone, then every AW stone, is
    played as a move (so they fill the history planes), then PL sets the side to move. Setup stones in later
    nodes, and AE, are refused: leelaz ignores them, so its planes would not show the position the file means.
    """
    text = _text(path, "an SGF file")
    if "(" not in text or ";" not in text:
        raise FormatError(path, "not an SGF file (no game tree)")
    # The main line (first variation at every branch) ends at the first ')' outside a property value.
    main = []  # (offset in text, piece of text)
    i = text.index("(")
    while i < len(text) and text[i] != ")":
        if text[i] == "[":
            j = i + 1
            while j < len(text) and text[j] != "]":
                j += 2 if text[j] == "\\" else 1
            main.append((i, text[i:j + 1]))
            i = j + 1
        else:
            main.append((i, text[i]))
            i += 1
    flat = "".join(part for _, part in main)
    offsets = [pos + k for pos, part in main for k in range(len(part))]
    node_of, node = [], 0  # node number (1 = root) of every character of `flat`
    for _, part in main:
        node += part == ";"
        node_of.extend([node] * len(part))
    size = 19
    moves, lines, setup, player = [], [], {"AB": [], "AW": []}, None

    def vertex(name, value, line):
        value = value.strip()
        if value == "" or (value == "tt" and size <= 19):
            return "pass"
        if len(value) != 2 or not all("a" <= ch < chr(ord("a") + size) for ch in value):
            raise FormatError(f"{path}:{line}", f"bad point {name}[{value}] for a {size}×{size} board")
        x, y = ord(value[0]) - ord("a"), ord(value[1]) - ord("a")
        return f"{COLUMNS[x]}{size - y}"

    for m in _SGF_PROP.finditer(flat):
        name, values = m.group(1), _SGF_VALUE.findall(m.group(2))
        line = _line_of(text, offsets[m.start()])
        if name == "SZ":
            try:
                size = int(values[0].split(":")[0])
            except ValueError:
                raise FormatError(f"{path}:{line}", f"bad board size SZ[{values[0]}]") from None
            if not 2 <= size <= 19:
                raise FormatError(f"{path}:{line}", f"board size {size} is not supported (2 to 19)")
        elif name in ("AB", "AW") and node_of[m.start()] == 1:
            for value in values:
                if ":" in value:
                    raise FormatError(f"{path}:{line}", f"compressed point lists ({name}[{value}]) are not supported")
                setup[name].append((name[1], vertex(name, value, line), line))
        elif name in ("AB", "AW", "AE"):
            raise FormatError(f"{path}:{line}", f"setup stones ({name}) outside the root node are not supported "
                                                "(leelaz ignores them); give the moves instead")
        elif name == "PL" and node_of[m.start()] == 1:
            player = values[0].strip().upper()[:1]
            if player not in ("B", "W"):
                raise FormatError(f"{path}:{line}", f"bad player PL[{values[0]}]")
        elif name in ("B", "W"):
            moves.append((name, vertex(name, values[0], line)))
            lines.append(line)
    stones = setup["AB"] + setup["AW"]
    return SgfGame(size, tuple(moves), tuple(lines), tuple((c, v) for c, v, _ in stones),
                   tuple(line for _, _, line in stones), player)
