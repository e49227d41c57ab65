"""The Go board and its 18 planes against a real leelaz build's (reference/lz-*.leelaz.npz), and the capture rule."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import LZ_0K, LZ_RANDOM, REFERENCE
from lcconvert import forward, go_board, io


@pytest.mark.parametrize("path,ref", [(LZ_0K, "lz-0k.leelaz.npz"), (LZ_RANDOM, "lz-random-2x16.leelaz.npz")])
def test_planes_and_outputs_match_leelaz(path, ref):
    data = np.load(REFERENCE / ref)
    planes = np.stack([go_board.play_moves(go_board.parse_move_list(str(m))).planes() for m in data["moves"]])
    assert (planes == data["planes"]).all()
    out = forward.evaluate(io.load(str(path)), planes)
    # leelaz's float32 (-ffast-math) sits within ~1e-5 relative of a float64 evaluation (data README).
    assert np.abs(out.policy - data["policy"]).max() < 1e-5
    assert np.abs(out.winrate - data["winrate"]).max() < 1e-5


def _board(text):
    return go_board.play_moves(go_board.parse_move_list(text))


def test_capture_removes_stones_and_shows_in_history():
    # White A1 is surrounded by black A2 and B1: black B1 captures it.
    b = _board("B A2 W A1 B B1")
    a1 = go_board.parse_vertex("A1")
    assert b.points[a1] == go_board.EMPTY
    planes = b.planes()  # white to move: "ours" = white
    assert planes[0, a1] == 0 and planes[1, a1] == 1  # T=0 captured; T=-1 white stone still there
    assert planes[17].all() and not planes[16].any()
    # A two-stone group in the corner.
    b = _board("B A3 W A1 B B2 W A2 B B1")
    assert b.points[go_board.parse_vertex("A1")] == b.points[go_board.parse_vertex("A2")] == go_board.EMPTY


def test_suicide_occupied_and_ko_are_refused():
    with pytest.raises(go_board.IllegalGoMove, match=r"move 3 \(W A1\) is illegal: suicide"):
        _board("B A2 B B1 W A1")
    with pytest.raises(go_board.IllegalGoMove, match="occupied"):
        _board("B D4 W D4")
    # Ko: black captures at C2... a classic ko shape on the first line.
    ko = "B B1 W C1 B A2 W D2 B B3 W C3 B pass W B2 B C2"  # black C2 captures white B2
    b = _board(ko)
    assert b.points[go_board.parse_vertex("B2")] == go_board.EMPTY
    with pytest.raises(go_board.IllegalGoMove, match="ko"):
        _board(ko + " W B2")
    _board(ko + " W T19 B T1 W B2")  # after a move elsewhere the retake is legal
    assert go_board.parse_vertex("pass") is None
    with pytest.raises(ValueError):
        go_board.parse_vertex("I5")
    assert go_board.vertex_name(go_board.parse_vertex("Q16")) == "Q16" and go_board.vertex_name(361) == "pass"


def test_legal_points_equal_trial_play_on_played_games():
    from lcconvert import position_sets

    boards = position_sets.played_go_boards(6, seed=5)
    assert any(len(go_board.legal_points(b)) < 362 - int((b.points != 0).sum()) for b in boards)  # some refused
    for b in boards:
        trial = []
        for p in np.flatnonzero(b.points == go_board.EMPTY):
            t = go_board.GoBoard(b.size, b.points.copy(), b.to_move, b.ko)
            try:
                t.play(b.to_move, int(p))
            except ValueError:
                continue
            trial.append(int(p))
        assert go_board.legal_points(b) == trial + [361]
