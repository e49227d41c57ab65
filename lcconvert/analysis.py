"""What a network thinks of real positions: planes as the engine builds them, top legal moves, value.

Why a module of its own: `eval` on positions joins three things that live apart —
the encoders (chess `encoder`, Go `go_board`), the forward pass, and the move
names users read — and the result is a report (to_dict for --json, render for
text, arrays for --out) like every other command's.

Move probabilities are the engines' own: chess, a softmax over the legal moves'
logits only, divided by the policy temperature (lc0's PolicySoftmaxTemp); Go, the
network's softmax over all 362 outputs as leelaz reports it, listed for legal moves.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lcconvert import encoder, forward, go_board
from lcconvert.constants import Family
from lcconvert.errors import FormatError, UnsupportedError
from lcconvert.network import Network
from lcconvert.position_files import ChessPosition, read_sgf


@dataclass
class MoveScore:
    move: str
    probability: float
    logit: float | None = None  # chess: the raw policy output

    def to_dict(self) -> dict:
        d = {"move": self.move, "p": self.probability}
        if self.logit is not None:
            d["logit"] = self.logit
        return d


@dataclass
class PositionResult:
    label: str
    position: str  # chess: the FEN evaluated; Go: "<n> moves, <colour> to move"
    top: list[MoveScore]
    value: float  # chess: Q = W − L (or the tanh value); Go: side to move's value
    wdl: list[float] | None = None
    moves_left: float | None = None
    winrate: float | None = None
    transform: int | None = None
    legal_moves: int = 0

    def to_dict(self) -> dict:
        d = {"label": self.label, "position": self.position, "legal_moves": self.legal_moves,
             "top": [m.to_dict() for m in self.top], "q" if self.winrate is None else "value": self.value}
        for name in ("wdl", "moves_left", "winrate", "transform"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        return d


@dataclass
class Analysis:
    """Per-position results and the raw arrays `eval --out` writes."""

    net: str
    family: Family
    input_format: int | None
    results: list[PositionResult]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"net": self.net, "game": self.family.value, "input_format": self.input_format,
                "positions": [r.to_dict() for r in self.results]}

    def render(self) -> str:
        lines = []
        for i, r in enumerate(self.results, 1):
            lines.append(f"[{i}] {r.label}: {r.position}")
            if self.family is Family.GO:
                lines.append(f"    winrate {r.winrate:.4f} (side to move), {r.legal_moves} legal moves")
                lines += [f"    {m.move:<5} {m.probability:7.4f}" for m in r.top]
                continue
            head = f"    Q {r.value:+.4f}"
            if r.wdl is not None:
                head += "  WDL " + " ".join(f"{p:.4f}" for p in r.wdl)
            if r.moves_left is not None:
                head += f"  moves-left {r.moves_left:.1f}"
            lines.append(head + f"  ({r.legal_moves} legal moves)")
            if not r.top:
                continue
            lines.append(f"    {'move':<6}{'p':>8}{'logit':>10}")
            lines += [f"    {m.move:<6}{m.probability:8.4f}{m.logit:10.4f}" for m in r.top]
        return "\n".join(lines)


def legal_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities over the given (legal) logits, as engines compute them: float64, max subtracted."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def _check_family(net: Network, net_path: str, family: Family, what: str) -> None:
    if net.family is not family:
        raise FormatError(net_path, f"{what} is a {family.value} position, but this is a {net.family.value} network")


def chess_inputs(positions: list[ChessPosition], input_format: int, fill: str, chess960: bool = False
                 ) -> tuple[np.ndarray, list[encoder.History], list[int]]:
    """Planes [N,112,64], histories and transforms; FormatError naming the position for bad input."""
    planes, histories, transforms = [], [], []
    for pos in positions:
        try:
            history = encoder.build_history(pos.fen, pos.moves, chess960)
            p, t = encoder.encode(history, input_format, fill)
        except encoder.IllegalMove as e:
            if e.index == 1 and pos.moves[0].lower() in ("b", "w", "black", "white"):
                raise FormatError(pos.label, "these are Go moves (colour and vertex), but this is a chess "
                                             "network") from None
            raise FormatError(pos.label, str(e)) from None
        except ValueError as e:
            raise FormatError(pos.label, str(e)) from None
        planes.append(p)
        histories.append(history)
        transforms.append(t)
    return np.stack(planes), histories, transforms


def analyse_chess(net: Network, net_path: str, positions: list[ChessPosition], fill: str = encoder.DEFAULT_FILL,
                  top: int = 5, temperature: float = 1.0, chess960: bool = False,
                  semantics: str = "modern", policy_head: str | None = None,
                  value_head: str | None = None) -> Analysis:
    _check_family(net, net_path, Family.CHESS, positions[0].label)
    input_format = net.format.input or 1
    if input_format not in encoder.INPUT_FORMATS:
        raise UnsupportedError(net_path, f"input format {input_format}: lc0 has no encoder for it")
    planes, histories, transforms = chess_inputs(positions, input_format, fill, chess960)
    out = forward.evaluate(net, planes, semantics=semantics, source=net_path, policy_head=policy_head,
                           value_head=value_head)
    results = []
    for i, (pos, history, transform) in enumerate(zip(positions, histories, transforms)):
        board = history.board
        moves = encoder.legal_moves(board, transform, chess960)
        logits = out.policy_logits[i]
        top_moves = []
        if moves:
            legal = np.array([logits[idx] for _, idx in moves])
            probs = legal_softmax(legal, temperature)
            order = np.argsort(-legal, kind="stable")[:top]
            top_moves = [MoveScore(moves[k][0], float(probs[k]), float(legal[k])) for k in order]
        results.append(PositionResult(
            pos.label, board.fen(), top_moves, float(out.value[i]),
            wdl=None if out.wdl is None else [float(x) for x in out.wdl[i]],
            moves_left=None if out.moves_left is None else float(out.moves_left[i]),
            transform=transform, legal_moves=len(moves)))
    # The same keys for every net (NaN where a head is missing, as the lc0 reference files do).
    n = len(positions)
    arrays = {"planes": planes.reshape(-1, 112, 8, 8), "policy_logits": out.policy_logits, "value": out.value,
              "wdl": out.wdl if out.wdl is not None else np.full((n, 3), np.nan, dtype=out.value.dtype),
              "moves_left": out.moves_left if out.moves_left is not None else np.full(n, np.nan, out.value.dtype)}
    return Analysis(net_path, Family.CHESS, input_format, results, arrays)


def analyse_go(net: Network, net_path: str, games: list[tuple], top: int = 5, semantics: str = "modern") -> Analysis:
    """`games`: (label, colour/vertex moves[, setup stones, side to move after them]) from the empty board;
    the position after all of them is evaluated."""
    _check_family(net, net_path, Family.GO, games[0][0])
    size = net.board_size
    boards = []
    for label, moves, *setup in games:
        try:
            boards.append(go_board.play_moves(moves, size, *setup))
        except ValueError as e:
            raise FormatError(label, str(e)) from None
    planes = np.stack([b.planes() for b in boards])
    out = forward.evaluate(net, planes, semantics=semantics, source=net_path)
    results = []
    for i, ((label, moves, *_), board) in enumerate(zip(games, boards)):
        legal = go_board.legal_points(board)
        probs = out.policy[i]
        order = sorted(legal, key=lambda k: -probs[k])[:top]
        colour = "black" if board.to_move == go_board.BLACK else "white"
        results.append(PositionResult(
            label, f"{len(moves)} moves, {colour} to move",
            [MoveScore(go_board.vertex_name(k, size), float(probs[k])) for k in order],
            float(out.value[i]), winrate=float(out.winrate[i]), legal_moves=len(legal)))
    arrays = {"planes": planes, "policy_logits": out.policy_logits, "policy": out.policy, "value": out.value,
              "winrate": out.winrate}
    return Analysis(net_path, Family.GO, None, results, arrays)


def sgf_game(path: str, move: int | None = None) -> tuple:
    """(label, moves up to `move` (all when None), setup stones, side to move after them) of an SGF's main
    line, for `analyse_go`; an illegal move is a FormatError `FILE:LINE: move K (B Q16) is illegal: reason`."""
    game = read_sgf(path)
    moves = list(game.moves)
    if move is not None:
        if not 0 <= move <= len(moves):
            raise FormatError(path, f"no move {move} (the main line has {len(moves)} moves)")
        moves = moves[:move]
    try:
        go_board.play_moves(moves, game.size, game.setup, game.player)
    except go_board.IllegalGoMove as e:
        lines = game.setup_lines if "setup" in str(e) else game.lines
        raise FormatError(f"{path}:{lines[e.index - 1]}", str(e)) from None
    return f"{path} move {len(moves)}", moves, list(game.setup), game.player
