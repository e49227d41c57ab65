"""`eval` on positions: whole runs (encode → forward → legal moves) against a real lc0 and leelaz."""
from __future__ import annotations

import json

import chess
import chess.pgn
import numpy as np
import pytest

from conftest import LZ_0K, LZ_RANDOM, MAIA, REFERENCE
from lcconvert import analysis, io
from lcconvert.policy_map import move_index
from lcconvert.position_files import ChessPosition

PLANES = REFERENCE / "planes"
FORMATS = (1, 2, 3, 4, 5, 132, 133)
# lc0's own float32 outputs against our float32 forward pass on the tiny nets, measured: logits ≤ 2.2e-5
# (format 2), Q and WDL ≤ 2.3e-6, moves-left ≤ 5.8e-6 (format 132); the issue asks for 1e-4 on logits.
LOGIT_TOL = 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_eval_matches_lc0(fmt):
    ref = np.load(PLANES / f"planes-format{fmt}.lc0.npz")
    net = io.load(str(PLANES / f"tiny-format{fmt}.pb.gz"))
    for fill in ("fen_only", "always", "no"):
        idx = [i for i in range(len(ref["fens"])) if ref["history_fill"][i] == fill]
        if not idx:
            continue
        positions = [ChessPosition(f"#{i}", str(ref["fens"][i]), tuple(str(ref["moves"][i]).split())) for i in idx]
        result = analysis.analyse_chess(net, "tiny", positions, fill=fill, top=5)
        assert (result.arrays["planes"] == ref["planes"][idx]).all()
        assert np.abs(result.arrays["policy_logits"] - ref["logits"][idx]).max() < LOGIT_TOL
        assert np.abs(result.arrays["value"] - ref["q"][idx]).max() < LOGIT_TOL
        assert np.abs(result.arrays["wdl"] - ref["wdl"][idx]).max() < LOGIT_TOL
        if fmt in (4, 5, 132, 133):
            assert np.abs(result.arrays["moves_left"] - ref["moves_left"][idx]).max() < LOGIT_TOL
        else:  # no moves-left head: NaN, as in lc0's reference
            assert np.isnan(result.arrays["moves_left"]).all() and np.isnan(ref["moves_left"][idx]).all()
        for r, i in zip(result.results, idx):
            expected = [m for m in ref["top_moves"][i] if m]
            assert [m.move for m in r.top] == expected, (fmt, i)
            assert r.transform == ref["transform"][i]
            k = len(expected)
            assert np.allclose([m.probability for m in r.top], ref["top_probs"][i][:k], atol=1e-5)
            assert np.allclose([m.logit for m in r.top], ref["top_logits"][i][:k], atol=LOGIT_TOL)


def test_maia_issue_example_black_promotes_on_g1(run_cli):
    res = run_cli("eval", MAIA, "--fen", "8/2P5/8/8/8/8/5kp1/3K4 b - - 0 60", "--json")
    assert res.exit_code == 0, res.output
    top = json.loads(res.output)["positions"][0]["top"]
    assert top[0]["move"] == "g2g1q"
    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    assert top[0]["logit"] == pytest.approx(float(ref["logits"][5][move_index()["g7g8q"]]), abs=LOGIT_TOL)  # lc0's frame


def _pgn_of_reference(path, ref, idx):
    games = []
    for i in idx:
        board = chess.Board(str(ref["fens"][i]))
        game = chess.pgn.Game.from_board(board)
        node = game
        for uci in str(ref["moves"][i]).split():
            node = node.add_variation(chess.Move.from_uci(uci))
        games.append(str(game))
    path.write_text("\n\n".join(games) + "\n")


def test_cli_pgn_epd_fen_and_out_agree_with_lc0(run_cli, tmp_path):
    ref = np.load(PLANES / "planes-format4.lc0.npz")
    net = PLANES / "tiny-format4.pb.gz"
    idx = [i for i in range(len(ref["fens"])) if ref["history_fill"][i] == "fen_only" and ref["moves"][i]]
    pgn = tmp_path / "games.pgn"
    _pgn_of_reference(pgn, ref, idx)
    out = tmp_path / "out.npz"
    # Every position of game 3, then the last position of each game.
    res = run_cli("eval", net, "--pgn", pgn, "--game", "3", "--out", out)
    assert res.exit_code == 0, res.output
    n_moves = len(str(ref["moves"][idx[2]]).split())
    with np.load(out) as data:
        assert data["planes"].shape == (n_moves + 1, 112, 8, 8)
        assert set(data.files) == {"planes", "policy_logits", "value", "wdl", "moves_left"}
        assert (data["planes"][-1] == ref["planes"][idx[2]]).all()
        assert np.abs(data["policy_logits"][-1] - ref["logits"][idx[2]]).max() < LOGIT_TOL
    for g, i in enumerate(idx, 1):
        plies = len(str(ref["moves"][i]).split())
        res = run_cli("eval", net, "--pgn", pgn, "--game", str(g), "--ply", str(plies), "--json", "--top", "3")
        assert res.exit_code == 0, res.output
        got = json.loads(res.output)["positions"][0]
        assert [m["move"] for m in got["top"]] == [m for m in ref["top_moves"][i][:3] if m]
        res = run_cli("eval", net, "--fen", str(ref["fens"][i]), "--moves", str(ref["moves"][i]), "--json")
        assert json.loads(res.output)["positions"][0]["top"][0]["move"] == ref["top_moves"][i][0]
    fen_only = [i for i in range(len(ref["fens"])) if not ref["moves"][i] and ref["history_fill"][i] == "fen_only"]
    epd = tmp_path / "p.epd"
    epd.write_text("# FEN-only reference positions\n" + "\n".join(str(ref["fens"][i]) for i in fen_only) + "\n")
    res = run_cli("eval", net, "--epd", epd, "--json", "--top", "1")
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)["positions"]
    assert [p["top"][0]["move"] for p in got] == [ref["top_moves"][i][0] for i in fen_only]
    assert got[0]["label"].endswith("p.epd:2")
    res = run_cli("eval", net, "--epd", epd, "--history-fill", "no", "--top", "2")
    assert res.exit_code == 0 and "moves-left" in res.output


def test_policy_temperature(run_cli):
    args = ("eval", MAIA, "--moves", "e2e4", "--json", "--top", "40")
    cold = json.loads(run_cli(*args).output)["positions"][0]["top"]
    hot = json.loads(run_cli(*args, "--policy-temperature", "2").output)["positions"][0]["top"]
    logits = np.array([m["logit"] for m in cold])
    assert len(cold) == 20 and abs(sum(m["p"] for m in cold) - 1) < 1e-9
    expected = np.exp((logits - logits.max()) / 2)
    assert np.allclose([m["p"] for m in hot], expected / expected.sum())


@pytest.mark.parametrize("net,ref", [(LZ_0K, "lz-0k.leelaz.npz"), (LZ_RANDOM, "lz-random-2x16.leelaz.npz")])
def test_go_eval_matches_leelaz(run_cli, tmp_path, net, ref):
    data = np.load(REFERENCE / ref)
    for i, moves in enumerate(data["moves"]):
        args = ("--moves", str(moves)) if str(moves) else ("--sgf", _sgf(tmp_path, str(moves)))
        out = tmp_path / f"go{i}.npz"
        res = run_cli("eval", net, *args, "--out", out)
        assert res.exit_code == 0, res.output
        with np.load(out) as got:
            assert (got["planes"][0] == data["planes"][i]).all()
            # leelaz's -ffast-math float32 is within ~1e-5 of a float64 evaluation (data README)
            assert np.abs(got["policy"][0] - data["policy"][i]).max() < 1e-5
            assert abs(got["winrate"][0] - data["winrate"][i]) < 1e-5
        res = run_cli("eval", net, *args, "--json", "--top", "3")
        top = json.loads(res.output)["positions"][0]["top"]
        legal = [k for k in range(362) if k == 361 or not (data["planes"][i][0][k] or data["planes"][i][8][k])]
        best = sorted(legal, key=lambda k: -data["policy"][i][k])[:3]
        assert [m["p"] for m in top] == pytest.approx([data["policy"][i][k] for k in best], abs=1e-5)
    sgf = _sgf(tmp_path, str(data["moves"][-1]))
    res = run_cli("eval", net, "--sgf", sgf, "--move", "2", "--out", tmp_path / "sgf.npz")
    with np.load(tmp_path / "sgf.npz") as got:
        assert (got["planes"][0] == data["planes"][2]).all()


def _sgf(tmp_path, moves):
    cols = "ABCDEFGHJKLMNOPQRST"
    words = moves.split()
    nodes = []
    for colour, vertex in zip(words[0::2], words[1::2]):
        x, y = cols.index(vertex[0]), 19 - int(vertex[1:])
        nodes.append(f";{colour}[{chr(97 + x)}{chr(97 + y)}]")
    path = tmp_path / "game.sgf"
    # A variation after the main line's second move must be ignored.
    tail = "".join(nodes[2:]) if len(nodes) > 2 else ""
    branch = f"({tail})(;B[aa])" if len(nodes) > 2 else tail
    path.write_text("(;GM[1]FF[4]SZ[19]KM[7.5]PB[x\\]y]\n" + "".join(nodes[:2]) + "\n" + branch + ")\n")
    return path


@pytest.mark.parametrize("args,message", [
    (("--fen", "8/8/8/8/8/8/8/8 w - - 0 1"), "--fen: illegal FEN"),
    (("--fen", "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1", "--moves", "e2e4 e7e5 e1e3"),
     "--fen: move 3 (e1e3) is illegal"),
])
def test_bad_chess_input_is_one_line(run_cli, args, message):
    res = run_cli("eval", MAIA, *args)
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_bad_files_name_file_and_line(run_cli, tmp_path):
    pgn = tmp_path / "bad.pgn"
    pgn.write_text('[Event "a"]\n\n1. e4 e5 2. Nf3 *\n\n[Event "b"]\n\n1. d4 d5\n2. Nf5 Nf6 *\n')
    res = run_cli("eval", MAIA, "--pgn", pgn)
    assert res.exit_code == 2 and f"{pgn}:8: game 2:" in res.stderr and "illegal san: 'Nf5'" in res.stderr
    epd = tmp_path / "bad.epd"
    epd.write_text("rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq -\nnot a position\n")
    res = run_cli("eval", MAIA, "--epd", epd)
    assert res.exit_code == 2 and f"{epd}:2:" in res.stderr
    sgf = tmp_path / "bad.sgf"
    sgf.write_text("(;SZ[19]\n;B[bs]\n;B[ar]\n;W[as])")  # white A1 into black A2/B1: suicide
    res = run_cli("eval", LZ_0K, "--sgf", sgf)
    assert res.exit_code == 2 and f"{sgf}:4: move 3 (W A1) is illegal: suicide" in res.stderr
    res = run_cli("eval", LZ_0K, "--moves", "B D4 W D4")
    assert res.exit_code == 2 and "move 2 (W D4) is illegal: the point is occupied" in res.stderr
    out = tmp_path / "o.npz"
    res = run_cli("eval", MAIA, "--sgf", sgf, "--out", out)
    assert res.exit_code == 2 and not out.exists()
    res = run_cli("eval", LZ_0K, "--pgn", pgn)
    assert res.exit_code == 2
    good = tmp_path / "ok.pgn"
    good.write_text('[Event "a"]\n\n1. e4 e5 *\n')
    res = run_cli("eval", LZ_0K, "--pgn", good)
    assert res.exit_code == 2 and "chess position, but this is a go network" in res.stderr
    res = run_cli("eval", MAIA, "--moves", "B Q16 W D4")
    assert res.exit_code == 2 and "Go moves" in res.stderr


def test_sgf_setup_stones_enter_as_leelaz_plays_them(run_cli, tmp_path):
    """Root AB stones are played as black moves, then AW, then PL; the history shows them one by one."""
    sgf = tmp_path / "h.sgf"
    sgf.write_text("(;GM[1]SZ[19]HA[2]AB[pd][dp]PL[W]\n;W[dd];B[pp])\n")
    run_cli("eval", LZ_RANDOM, "--sgf", sgf, "--out", tmp_path / "a.npz")
    run_cli("eval", LZ_RANDOM, "--moves", "B Q16 B D4 W D16 B Q4", "--out", tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert (a["planes"] == b["planes"]).all() and (a["policy"] == b["policy"]).all()
    later = tmp_path / "later.sgf"
    later.write_text("(;GM[1]SZ[19]\n;B[pd]\n;AW[dd])\n")
    res = run_cli("eval", LZ_RANDOM, "--sgf", later)
    assert res.exit_code == 2 and f"{later}:3: setup stones (AW) outside the root node" in res.stderr
    clash = tmp_path / "clash.sgf"
    clash.write_text("(;GM[1]SZ[19]AB[pd]\nAW[pd])\n")
    res = run_cli("eval", LZ_RANDOM, "--sgf", clash)
    assert res.exit_code == 2 and f"{clash}:2: move 2 (setup W Q16) is illegal: the point is occupied" in res.stderr


def test_maia_positions_top_move_as_lc0():
    """The real maia-1100 net on lc0's 8 reference positions: logits and the best legal move as lc0's."""
    from lcconvert import encoder

    ref = np.load(REFERENCE / "maia-1100.lc0.npz")
    positions = [ChessPosition(f"#{i}", str(f), tuple(str(m).split())) for i, (f, m) in
                 enumerate(zip(ref["fens"], ref["moves"]))]
    result = analysis.analyse_chess(io.load(str(MAIA)), "maia", positions)
    # Two CPU backends of lc0 agree within 1e-5 on this net (data README); measured here: ≤ 1.0e-5.
    assert np.abs(result.arrays["policy_logits"] - ref["logits"]).max() < LOGIT_TOL
    for i, r in enumerate(result.results):
        board = encoder.build_history(positions[i].fen, positions[i].moves).board
        lc0_best = max(encoder.legal_moves(board), key=lambda m: ref["logits"][i][m[1]])[0]
        assert r.top[0].move == lc0_best, i
    assert [r.top[0].move for r in result.results][5] == "g2g1q"
