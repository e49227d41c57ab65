"""The positions `verify` evaluates: generated ones, real games, or the user's file.

Why a mix by default: generated planes (`positions.random_planes`) reach corners of
the input space real play rarely does, and real positions carry the correlations
(castling rights with piece placement, en passant, repetitions, long histories)
that generated ones only imitate; a fold or conversion that is wrong in either
range must fail. The real chess positions are the 120 games of lc0 self-play
shipped in `lcconvert/data/selfplay.pgn` (maia-1100 against itself, reconstructed
from lc0's own training records: every record's 104 history planes equal the
encoder's, see tests/test_position_sets.py). For Go no game records are shipped;
its second half are positions of seeded legal games played on `go_board` with
captures, which the generated planes never contain.
"""
from __future__ import annotations

import gzip
import importlib.resources
import struct

import chess
import numpy as np

from lcconvert import encoder, go_board
from lcconvert.constants import Family
from lcconvert.errors import FormatError
from lcconvert.files import read_file
from lcconvert.network import Network
from lcconvert.position_files import ChessPosition, epd_positions, pgn_positions, read_pgn, read_sgf
from lcconvert.positions import random_planes

SELFPLAY = "selfplay.pgn"
# lc0 training records (FORMATS.md §9): V6 8,356 bytes, V7 8,396; played_idx is a uint16 at byte 8,344 in both.
RECORD_SIZES = {6: 8356, 7: 8396}
PLAYED_IDX_OFFSET = 8344


def training_game(path: str) -> ChessPosition:
    """The game of one lc0 training file (start position, input format 1) as UCI moves, from `played_idx`."""
    try:
        raw = gzip.decompress(read_file(path, "an lc0 training file"))
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FormatError(path, f"not a gzipped lc0 training file ({e})") from None
    if len(raw) < 8:
        raise FormatError(path, "no training records")
    version, input_format = struct.unpack_from("<II", raw, 0)
    size = RECORD_SIZES.get(version)
    if size is None or len(raw) % size:
        raise FormatError(path, f"training data version {version} with {len(raw)} bytes: expected V6 or V7 records")
    if input_format != 1:
        raise FormatError(path, f"input format {input_format}: only format-1 games (no transform) are replayed")
    board, moves = chess.Board(), []
    for k in range(len(raw) // size):
        played = struct.unpack_from("<H", raw, k * size + PLAYED_IDX_OFFSET)[0]
        found = [m for m in board.legal_moves if encoder.policy_index(board, m) == played]
        if len(found) != 1:
            raise FormatError(path, f"record {k + 1}: played move index {played} is not one legal move")
        moves.append(board.uci(found[0]))
        board.push(found[0])
    return ChessPosition(path, chess.STARTING_FEN, tuple(moves))


def selfplay_games() -> list[ChessPosition]:
    """The shipped real games."""
    ref = importlib.resources.files("lcconvert") / "data" / SELFPLAY
    with importlib.resources.as_file(ref) as path:
        return [pos for _n, pos, _line in read_pgn(str(path))]


def real_chess_positions(n: int, seed: int) -> list[ChessPosition]:
    """`n` positions at seeded random plies of the shipped self-play games (history included)."""
    rng = np.random.default_rng(seed)
    games = selfplay_games()
    out = []
    for g in rng.choice(len(games), size=n, replace=n > len(games)):
        game = games[int(g)]
        ply = int(rng.integers(0, len(game.moves) + 1))
        out.append(ChessPosition(f"selfplay game {int(g) + 1} ply {ply}", game.fen, game.moves[:ply]))
    return out


def played_go_boards(n: int, seed: int, size: int = 19) -> list[go_board.GoBoard]:
    """`n` positions of seeded legal games (captures played out), 0 to ~1.3·size² moves long."""
    rng = np.random.default_rng(seed)
    boards = []
    for _ in range(n):
        board = go_board.GoBoard(size)
        length = int(rng.integers(0, int(1.3 * size * size)))
        for _ in range(length):
            empty = np.flatnonzero(board.points == go_board.EMPTY)
            for p in rng.permutation(empty)[:20]:  # a legal point among a few tries, else pass
                try:
                    board.play(board.to_move, int(p))
                    break
                except ValueError:
                    continue
            else:
                board.play(board.to_move, None)
        boards.append(board)
    return boards


def chess_planes(net: Network, positions: list[ChessPosition], fill: str = encoder.DEFAULT_FILL) -> np.ndarray:
    fmt = net.format.input or 1
    out = []
    for pos in positions:
        try:
            out.append(encoder.encode(encoder.build_history(pos.fen, pos.moves), fmt, fill)[0])
        except ValueError as e:
            raise FormatError(pos.label, str(e)) from None
    return np.stack(out)


def default_planes(net: Network, n: int, seed: int) -> tuple[np.ndarray, str]:
    """Half generated (rounded up), half real-game (chess) or played (Go) positions, and what they are."""
    real = n // 2
    generated = random_planes(net, n - real, seed)
    if real == 0:
        return generated, f"{n} generated"
    if net.family is Family.GO:
        played = np.stack([b.planes() for b in played_go_boards(real, seed, net.board_size)])
        return np.concatenate([generated, played]), f"{n - real} generated + {real} from seeded legal Go games"
    planes = chess_planes(net, real_chess_positions(real, seed))
    return np.concatenate([generated, planes.astype(generated.dtype)]), \
        f"{n - real} generated + {real} from real lc0 self-play games"


def file_planes(net: Network, path: str) -> tuple[np.ndarray, str]:
    """Every position of a .pgn (each ply of each game), .epd (each line), .sgf (each move) or lc0 training .gz."""
    lower = path.lower()
    if lower.endswith(".sgf"):
        if net.family is not Family.GO:
            raise FormatError(path, f"Go positions, but this is a {net.family.value} network")
        game = read_sgf(path)
        if game.size != net.board_size:
            raise FormatError(path, f"a {game.size}×{game.size} game for a {net.board_size}×{net.board_size} network")
        try:
            board = go_board.play_moves([], game.size, game.setup, game.player)
        except go_board.IllegalGoMove as e:
            raise FormatError(f"{path}:{game.setup_lines[e.index - 1]}", str(e)) from None
        planes = [board.planes()]
        for i, ((colour, vertex), line) in enumerate(zip(game.moves, game.lines), 1):
            try:
                board.play(go_board.parse_color(colour), go_board.parse_vertex(vertex, game.size))
            except ValueError as e:
                raise FormatError(f"{path}:{line}", f"move {i} ({colour} {vertex}) is illegal: {e}") from None
            planes.append(board.planes())
        return np.stack(planes), f"{len(planes)} from {path}"
    if net.family is not Family.CHESS:
        raise FormatError(path, f"chess positions, but this is a {net.family.value} network")
    if lower.endswith(".pgn"):
        positions = pgn_positions(path)
    elif lower.endswith(".epd"):
        positions = epd_positions(path)
    elif lower.endswith(".gz"):
        game = training_game(path)
        positions = [ChessPosition(path, game.fen, game.moves[:k]) for k in range(len(game.moves) + 1)]
    else:
        raise FormatError(path, "positions must be a .pgn, .epd, .sgf or lc0 training .gz file")
    return chess_planes(net, positions), f"{len(positions)} from {path}"
