"""lc0 training chunks → input planes, checked against lc0's own planes and against replayed games.

The chain of evidence: (1) an independent python-chess encoder written here
reproduces lc0's planes bit for bit on the reference positions lc0 encoded
(../shared/data/reference); (2) replaying each of the 120 real games from its
`played_idx` moves, that encoder's planes equal the decoder's for every one of
the 9,607 records; (3) the start position decodes to exactly lc0's planes.
"""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import DATA, REFERENCE

from lcconvert.errors import FormatError
from lcconvert.formats import training_data as td
from lcconvert.policy_map import moves

chess = pytest.importorskip("chess")

TRAINING = DATA / "training"
START = chess.STARTING_FEN


def _mover_view(board: chess.Board, white_view: bool) -> tuple[list[int], list[int]]:
    """(our piece squares per kind, their piece squares per kind) seen from the side `white_view`."""
    flip = (lambda s: s) if white_view else (lambda s: s ^ 56)
    ours = chess.WHITE if white_view else chess.BLACK
    planes = []
    for colour in (ours, not ours):
        for kind in (chess.PAWN, chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, chess.KING):
            planes.append([flip(s) for s in board.pieces(kind, colour)])
    return planes


def encode_format1(boards: list[chess.Board]) -> np.ndarray:
    """lc0's classical (format 1) planes for the last position of a game given as its boards from the
    start position: 8 history positions from the current mover's view, no fill before the start."""
    now = boards[-1]
    white = now.turn == chess.WHITE
    keys = [b._transposition_key() for b in boards]
    out = np.zeros((112, 64), dtype=np.float32)
    for h in range(8):
        t = len(boards) - 1 - h
        if t < 0:
            break
        for k, squares in enumerate(_mover_view(boards[t], white)):
            out[13 * h + k, squares] = 1
        if keys[t] in keys[:t]:
            out[13 * h + 12] = 1
    us, them = (chess.WHITE, chess.BLACK) if white else (chess.BLACK, chess.WHITE)
    out[104] = now.has_queenside_castling_rights(us)
    out[105] = now.has_kingside_castling_rights(us)
    out[106] = now.has_queenside_castling_rights(them)
    out[107] = now.has_kingside_castling_rights(them)
    out[108] = not white
    out[109] = now.halfmove_clock
    out[111] = 1
    return out


def played_move(board: chess.Board, index: int) -> chess.Move:
    """The move `index` of the 1858 policy outputs (mover's view) on `board`: castling is king takes
    rook, a plain move of a pawn to the last rank is a knight promotion."""
    name = moves()[index]
    flip = (lambda s: s) if board.turn == chess.WHITE else (lambda s: s ^ 56)
    frm, to = flip(chess.parse_square(name[:2])), flip(chess.parse_square(name[2:4]))
    promo = {"q": chess.QUEEN, "r": chess.ROOK, "b": chess.BISHOP}.get(name[4:])
    piece = board.piece_at(frm)
    if piece.piece_type == chess.KING and board.piece_at(to) == chess.Piece(chess.ROOK, board.turn):
        to = chess.square(6 if chess.square_file(to) > chess.square_file(frm) else 2, chess.square_rank(frm))
    elif piece.piece_type == chess.PAWN and chess.square_rank(to) in (0, 7) and promo is None:
        promo = chess.KNIGHT
    move = chess.Move(frm, to, promotion=promo)
    assert move in board.legal_moves, (board.fen(), name)
    return move


def test_encoder_here_reproduces_lc0_planes():
    """The test's own encoder equals lc0's format-1 planes wherever lc0 played from the start position."""
    ref = np.load(REFERENCE / "planes" / "planes-format1.lc0.npz")
    checked = 0
    for fen, line, fill, planes in zip(ref["fens"], ref["moves"], ref["history_fill"], ref["planes"]):
        if fen != START or fill == "always":
            continue
        boards = [chess.Board()]
        for uci in line.split():
            b = boards[-1].copy()
            b.push_uci(uci)
            boards.append(b)
        assert np.array_equal(encode_format1(boards), planes.reshape(112, 64)), line
        checked += 1
    assert checked >= 5


def test_start_position_is_lc0s_planes():
    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    assert ref["fens"][0] == START and ref["moves"][0] == ""
    chunk = td.read(str(TRAINING / "game_000000.gz"))
    assert np.array_equal(chunk.planes([0])[0], ref["planes"][0].reshape(112, 64))


def test_every_real_record_matches_its_replayed_game():
    """All 120 games: replay played_idx with python-chess, re-encode, compare every plane of every record."""
    total = results = 0
    for path in sorted(TRAINING.glob("game_*.gz")):
        chunk = td.read(str(path))
        assert chunk.version == 6 and set(chunk.input_format.tolist()) == {1}
        planes = chunk.planes()
        boards = [chess.Board()]
        for i in range(len(chunk)):
            expect = encode_format1(boards)
            np.testing.assert_array_equal(planes[i], expect, err_msg=f"{path.name} record {i}")
            legal = chunk.probabilities[i] >= 0
            assert legal.sum() == boards[-1].legal_moves.count()
            b = boards[-1].copy()
            b.push(played_move(b, int(chunk.played_idx[i])))
            boards.append(b)
        # The game result, as the side to move of the first record sees it, is the final board's.
        outcome = boards[-1].outcome(claim_draw=True)
        if outcome is not None:
            z = 0.0 if outcome.winner is None else (1.0 if outcome.winner == chess.WHITE else -1.0)
            assert chunk.result_q[0] == z
            results += 1
        total += len(chunk)
    assert total == 9607
    assert results > 60  # games that end on the board (others end by adjudication or resignation)


def test_rule50_plane_is_the_raw_ply_count_below_format_4():
    chunk = td.read(str(TRAINING / "game_000000.gz"))
    planes = chunk.planes()
    assert chunk.rule50.max() > 1
    np.testing.assert_array_equal(planes[:, 109, 0], chunk.rule50.astype(np.float32))


def _record(version: int = 6, input_format: int = 1) -> bytearray:
    rec = np.zeros(1, dtype=td.DTYPES[version])
    rec["version"] = version
    if version >= 5:
        rec["input_format"] = input_format
    rec["probabilities"] = -1
    rec["probabilities"][0, 0] = 1
    return bytearray(rec.tobytes())


def test_later_input_formats_follow_lc0s_rules():
    """Formats ≥ 2 put rook files on ranks 1/8, canonical ones the en-passant file on rank 8, the
    hectoplies ones rule50/100, and the armageddon ones ones in plane 110 for black."""
    def planes(fmt, **fields):
        rec = np.frombuffer(bytes(_record(6, fmt)), dtype=td.DTYPES[6]).copy()
        for k, v in fields.items():
            rec[k] = v
        return td.parse(rec.tobytes(), "x").planes()[0]

    p = planes(1, castling=[1, 1, 0, 1], stm_or_ep=1, rule50=37)
    assert p[104].all() and p[105].all() and not p[106].any() and p[107].all() and p[108].all()
    assert (p[109] == 37).all() and not p[110].any() and p[111].all()
    p = planes(3, castling=[1 << 0, 1 << 7, 1 << 0, 0], stm_or_ep=1 << 4, rule50=37, invariance=128)
    assert p[104].nonzero()[0].tolist() == [0, 56] and p[105].nonzero()[0].tolist() == [7]
    assert not p[106].any() and not p[107].any()
    assert p[108].nonzero()[0].tolist() == [60] and (p[109] == 37).all() and not p[110].any()
    p = planes(132, rule50=37, invariance=128)
    assert (p[109] == np.float32(37) / np.float32(100)).all() and p[110].all()


@pytest.mark.parametrize("version", [3, 4, 5, 6, 7])
def test_every_record_version_is_read(tmp_path, version):
    data = bytes(_record(version)) * 3
    path = tmp_path / "c.gz"
    path.write_bytes(gzip.compress(data))
    chunk = td.read(str(path))
    assert len(chunk) == 3 and chunk.version == version and chunk.planes().shape == (3, 112, 64)


def test_corrupt_chunks_name_the_record(tmp_path):
    good = bytes(_record())
    cases = {
        "trunc": (good * 2 + good[:100], "record 2: truncated"),
        "version": (b"\x09\x00\x00\x00" + good[4:], "record 0: unknown training data version 9"),
        "mixed": (good + bytes(_record(7))[:8356], "record 1: version 7"),
        "format": (good[:4] + (42).to_bytes(4, "little") + good[8:], "record 0: unknown input format 42"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.gz"
        path.write_bytes(gzip.compress(data))
        with pytest.raises(FormatError, match=message):
            td.read(str(path))
