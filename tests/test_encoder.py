"""The chess encoder against a real lc0's own planes, transforms and top moves (reference/planes/)."""
from __future__ import annotations

import chess
import numpy as np
import pytest

from conftest import REFERENCE
from lcconvert import encoder

PLANES = REFERENCE / "planes"
FORMATS = (1, 2, 3, 4, 5, 132, 133)


def _ref(fmt):
    return np.load(PLANES / f"planes-format{fmt}.lc0.npz")


def _history(ref, i):
    return encoder.build_history(str(ref["fens"][i]), str(ref["moves"][i]).split())


@pytest.mark.parametrize("fmt", FORMATS)
def test_planes_bit_identical_to_lc0(fmt):
    ref = _ref(fmt)
    assert int(ref["input_format"]) == fmt
    assert len(ref["fens"]) >= 23
    for i in range(len(ref["fens"])):
        planes, transform = encoder.encode(_history(ref, i), fmt, str(ref["history_fill"][i]))
        expected = ref["planes"][i].reshape(112, 64)
        assert planes.dtype == np.float32
        bad = sorted(set(np.nonzero(planes != expected)[0]))
        assert not bad, f"format {fmt} position {i}: planes {bad} differ"
        assert transform == int(ref["transform"][i]), f"format {fmt} position {i}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_top_legal_moves_as_lc0_names_them(fmt):
    """lc0's logits read through our legal-move mapping give lc0's own top moves (castling, promotions, black)."""
    ref = _ref(fmt)
    for i in range(len(ref["fens"])):
        history = _history(ref, i)
        _, transform = encoder.encode(history, fmt, str(ref["history_fill"][i]))
        logits = ref["logits"][i]
        moves = encoder.legal_moves(history.board, transform)
        top = [m for m, _ in sorted(moves, key=lambda m: -logits[m[1]])[:5]]
        assert top == [m for m in ref["top_moves"][i] if m], f"format {fmt} position {i}"


def test_lc0_transpose_policy_mapping_is_what_the_engine_uses():
    """With a transpose, lc0 flips rank and file of move squares (not a transpose); a true transpose disagrees."""
    assert encoder.transform_square(chess.G2, encoder.TRANSPOSE) == chess.B7
    ref = _ref(3)
    i = next(k for k in range(len(ref["fens"])) if ref["transform"][k] & encoder.TRANSPOSE)
    history = _history(ref, i)
    board = history.board
    logits = ref["logits"][i]

    def true_transpose(sq):
        return (7 - sq % 8) * 8 + (7 - sq // 8)

    best = max(board.legal_moves, key=lambda m: logits[encoder.policy_index(board, m, 4)])
    assert board.uci(best) == ref["top_moves"][i][0]
    names = {}
    for m in board.legal_moves:
        frm, to, promo = encoder.lc0_move(board, m)
        names[board.uci(m)] = logits[encoder.move_index()[
            encoder.square_name(true_transpose(frm)) + encoder.square_name(true_transpose(to)) + promo]]
    assert max(names, key=names.get) != ref["top_moves"][i][0]


def test_maia_reference_planes():
    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    for i in range(len(ref["fens"])):
        history = encoder.build_history(str(ref["fens"][i]), str(ref["moves"][i]).split())
        planes, _ = encoder.encode(history, 1)
        assert (planes == ref["planes"][i].reshape(112, 64)).all(), i


def test_black_promotion_names_real_squares():
    """The issue's example: black to move, its best promotion is g2g1q, indexed as g7g8q in lc0's frame."""
    board = chess.Board("8/2P5/8/8/8/8/5kp1/3K4 b - - 0 60")
    idx = dict(encoder.legal_moves(board))
    assert idx["g2g1q"] == encoder.move_index()["g7g8q"]
    assert idx["g2g1n"] == encoder.move_index()["g7g8"]  # knight promotion = the plain move
    board = chess.Board("r3k2r/8/8/8/8/8/8/R3K2R w KQkq - 0 1")
    idx = dict(encoder.legal_moves(board))
    assert idx["e1g1"] == encoder.move_index()["e1h1"] and idx["e1c1"] == encoder.move_index()["e1a1"]
    board.push_uci("e1g1")
    idx = dict(encoder.legal_moves(board))
    assert idx["e8c8"] == encoder.move_index()["e1a1"]
    assert "e8a8" in dict(encoder.legal_moves(board, chess960=True))


def test_repetitions_and_en_passant_flags():
    h = encoder.build_history(chess.STARTING_FEN, ["g1f3", "g8f6", "f3g1", "f6g8"] * 2)
    assert [s.repetitions for s in h.snapshots] == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    # A double push with no enemy pawn beside it sets no flag in lc0 (python-chess would name e3).
    h = encoder.build_history(chess.STARTING_FEN, ["e2e4"])
    assert h.snapshots[-1].ep_file is None
    h = encoder.build_history("4k3/8/8/8/5p2/8/4P3/4K3 w - - 0 1", ["e2e4"])
    assert h.snapshots[-1].ep_file == 4


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="illegal FEN"):
        encoder.parse_fen("8/8/8/8/8/8/8/8 w - - 0 1")
    with pytest.raises(ValueError, match="bad FEN"):
        encoder.parse_fen("not a fen")
    with pytest.raises(encoder.IllegalMove) as e:
        encoder.build_history(chess.STARTING_FEN, ["e2e4", "e7e5", "e1e3"])
    assert e.value.index == 3 and "move 3 (e1e3)" in str(e.value)
    with pytest.raises(ValueError, match="input format"):
        encoder.encode(encoder.build_history(chess.STARTING_FEN), 6)


def test_v2_history_that_never_ends_in_lc0_is_refused():
    """reference `no_result`: lc0 crashes on these for formats 5/133; we refuse them with a message."""
    ref = _ref(5)
    assert len(ref["no_result"]) == 8
    for entry in ref["no_result"]:
        fen, moves, fill = (part.strip() for part in str(entry).split("|"))
        history = encoder.build_history(fen, moves.split())
        with pytest.raises(ValueError, match="history-fill no"):
            encoder.encode(history, 5, fill)
        encoder.encode(history, 5, "no")  # lc0 encodes these with no fill


@pytest.mark.parametrize("name", ["attention/attn-body-headformat", "attention/attn-multihead",
                                  "attention/conv-attnpolicy", "legacy/se-mixed", "legacy/classic-plain"])
def test_other_lc0_references_planes(name):
    """The attention-era (formats 3 and 4) and legacy references: planes and transform as lc0 made them."""
    from conftest import DATA
    from lcconvert import io

    ref = np.load(DATA / f"{name}.lc0.npz")
    fmt = io.load(str(DATA / f"{name}.pb.gz")).format.input or 1
    for i in range(len(ref["fens"])):
        history = encoder.build_history(str(ref["fens"][i]), str(ref["moves"][i]).split())
        planes, transform = encoder.encode(history, fmt)
        assert (planes == ref["planes"][i].reshape(112, 64)).all(), (name, i)
        if "transform" in ref.files:
            assert transform == ref["transform"][i]
        moves = encoder.legal_moves(history.board, transform)
        assert len({idx for _, idx in moves}) == len(moves)  # every legal move has its own policy output
