"""verify's positions: the shipped self-play games are lc0's own (record by record), --positions FILE."""
from __future__ import annotations

import gzip
import itertools
import json
import struct

import chess
import numpy as np
import pytest

from conftest import DATA, LZ_0K, MAIA, REFERENCE
from lcconvert import encoder, go_board, io, position_sets

TRAINING = DATA / "training"
V6 = 8356


def _records(path):
    raw = gzip.decompress(path.read_bytes())
    return [raw[k * V6:(k + 1) * V6] for k in range(len(raw) // V6)]


@pytest.mark.parametrize("number", range(0, 120, 10))
def test_shipped_games_are_the_training_games_and_encode_as_lc0_wrote_them(number):
    """Every record's 104 history planes (stored bit-reversed per byte) and aux bytes equal our encoding."""
    path = TRAINING / f"game_{number:06d}.gz"
    game = position_sets.training_game(str(path))
    assert position_sets.selfplay_games()[number].moves == game.moves
    records = _records(path)
    assert len(records) == len(game.moves)
    for k, rec in enumerate(records):
        planes, _ = encoder.encode(encoder.build_history(chess.STARTING_FEN, game.moves[:k]), 1)
        stored = struct.unpack_from("<104Q", rec, 8 + 4 * 1858)
        bits = np.packbits(planes[:104].astype(np.uint8), axis=1, bitorder="little")
        mine = [int.from_bytes(row.tobytes(), "little") for row in bits]
        assert mine == [encoder.reverse_bits_in_bytes(v) for v in stored], (number, k)
        us_ooo, us_oo, them_ooo, them_oo, stm, rule50 = struct.unpack_from("<6B", rec, 8272)
        assert [us_ooo, us_oo, them_ooo, them_oo, stm] == [int(planes[104 + i, 0]) for i in range(5)]
        assert rule50 == planes[109, 0]


def test_default_positions_mix_generated_and_real():
    net = io.load(str(MAIA))
    planes, described = position_sets.default_planes(net, 10, seed=3)
    assert planes.shape == (10, 112, 64) and "5 generated + 5 from real lc0 self-play games" == described
    real = position_sets.real_chess_positions(5, 3)
    for p, pos in zip(planes[5:], real):
        assert (p == encoder.encode(encoder.build_history(pos.fen, pos.moves), 1)[0]).all()
    again, _ = position_sets.default_planes(net, 10, seed=3)
    assert (again == planes).all()


def test_played_go_positions_have_captures():
    boards = position_sets.played_go_boards(6, seed=1)
    captured = 0
    for b in boards:  # a stone that stood on a point and is gone one move later was captured
        seq = b.history + [b.points]
        captured += sum(int(((before != 0) & (after == 0)).sum()) for before, after in itertools.pairwise(seq))
    assert captured > 0
    planes, described = position_sets.default_planes(io.load(str(LZ_0K)), 4, seed=1)
    assert planes.shape == (4, 18, 361) and "legal Go games" in described


def test_verify_on_position_files(run_cli, tmp_path):
    pgn = tmp_path / "g.pgn"
    pgn.write_text('[Event "x"]\n\n1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. O-O *\n')
    res = run_cli("verify", MAIA, "--against", MAIA, "--positions", pgn, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["positions"] == f"8 from {pgn}" and out["against"]["passed"]
    epd = tmp_path / "p.epd"
    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    epd.write_text("\n".join(str(f) for f in ref["fens"]) + "\n")
    res = run_cli("verify", MAIA, "--against", MAIA, "--positions", epd)
    assert "positions: 8 from" in res.output and "pass" in res.output
    res = run_cli("verify", MAIA, "--positions", str(TRAINING / "game_000005.gz"), "--json")
    assert json.loads(res.output)["positions"].startswith(f"{len(_records(TRAINING / 'game_000005.gz')) + 1} from")
    sgf = tmp_path / "g.sgf"
    sgf.write_text("(;SZ[19];B[pd];W[dp];B[pq])")
    res = run_cli("verify", LZ_0K, "--against", LZ_0K, "--positions", sgf, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["positions"] == f"4 from {sgf}"


def test_verify_positions_bad_input(run_cli, tmp_path):
    sgf = tmp_path / "g.sgf"
    sgf.write_text("(;SZ[19];B[pd];W[dp];B[pq])")
    res = run_cli("verify", MAIA, "--positions", sgf)
    assert res.exit_code == 2 and "Go positions, but this is a chess network" in res.stderr
    txt = tmp_path / "p.txt"
    txt.write_text("x")
    res = run_cli("verify", MAIA, "--positions", txt)
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    res = run_cli("verify", MAIA, "--positions", "0")
    assert res.exit_code == 2
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x06\x00\x00\x00\x01\x00\x00\x00" + b"\x00" * 100))
    res = run_cli("verify", MAIA, "--positions", bad)
    assert res.exit_code == 2 and "V6 or V7" in res.stderr
    assert go_board.parse_vertex("A1") == 0
