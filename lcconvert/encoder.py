"""Chess positions → lc0's 112 input planes, and legal moves → lc0's policy indices.

Why our own encoder: a network only means something on the inputs its engine
feeds it, so the planes must be bit-identical to lc0's `EncodePositionForNN`
(src/neural/encoder.cc) for every input format. The facts it follows, read from
lc0's encoder, board (src/chess/board.cc) and position history
(src/chess/position.cc), are:

- Every board is seen from the side to move: for black the ranks are mirrored
  (byte-reversed bitboards); "ours" are the side to move's pieces in all 8
  history boards. Plane block t (13 planes) = our P N B R Q K, their P N B R Q K,
  repetition (all ones if the position occurred before).
- lc0's en-passant flag is set after a double pawn push only when an enemy pawn
  attacks the skipped square, and from a FEN whenever the FEN names a square.
  Boards are equal for repetition counting when pieces, side, castling rights and
  this flag are equal; a position repeats one 4, 6, … plies back, scanning only
  while the rule-50 counter allows (`ComputeLastMoveRepetitions`).
- History shorter than 8: filled by repeating the first position
  (`fen_only`: unless it is the start position; `always`; `no`: never, except one
  board with the double push undone when the FEN has an en-passant square). A
  filled board whose position has an en-passant flag shows the pawn back on its
  starting square.
- Canonical formats (≥ 3) stop the history at a castling change, at an earlier
  board with an en-passant flag, and after a rule-50 reset; v2 (5, 133) writes
  only repeated earlier positions. They pick a transform of the board (flip files,
  mirror ranks, transpose across a8–h1) that puts our king in a fixed region, and
  apply it to planes 0–108 (all-zero and all-ones planes unchanged).
- Aux planes 104–111: castling (format 1: four all-ones flags; later: the
  castling rooks' squares on ranks 1 and 8), plane 108 black-to-move (format 1–2)
  or the en-passant flag (canonical), 109 rule-50 (raw plies, /100 from format 4),
  110 zeros (ones for black in armageddon formats 132/133), 111 ones.
- Policy: moves are indexed in the side to move's frame (ranks mirrored for
  black), castling as king-takes-rook, a knight promotion as the plain move; with
  a canonical transform the move's squares are transformed as lc0's
  `MoveToNNIndex` does (see `transform_square`).
"""
from __future__ import annotations

from dataclasses import dataclass

import chess
import numpy as np

from lcconvert.policy_map import move_index, square_name

HISTORY = 8
PLANES_PER_BOARD = 13
AUX = HISTORY * PLANES_PER_BOARD  # 104
INPUT_FORMATS = (1, 2, 3, 4, 5, 132, 133)
CANONICAL = (3, 4, 5, 132, 133)
HECTOPLIES = (4, 5, 132, 133)
ARMAGEDDON = (132, 133)
CANONICAL_V2 = (5, 133)
FILLS = ("fen_only", "always", "no")
DEFAULT_FILL = "fen_only"  # lc0's default for a position given as a FEN
FLIP, MIRROR, TRANSPOSE = 1, 2, 4
ALL = (1 << 64) - 1
PIECE_TYPES = (chess.PAWN, chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, chess.KING)


# -- lc0's bitboard transforms (utils/bititer.h), on Python ints -------------------

def reverse_bits_in_bytes(v: int) -> int:
    """Flip files (a ↔ h)."""
    v = ((v >> 1) & 0x5555555555555555) | ((v & 0x5555555555555555) << 1)
    v = ((v >> 2) & 0x3333333333333333) | ((v & 0x3333333333333333) << 2)
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0F) | ((v & 0x0F0F0F0F0F0F0F0F) << 4)
    return v & ALL


def reverse_bytes_in_bytes(v: int) -> int:
    """Mirror ranks (1 ↔ 8)."""
    return int.from_bytes((v & ALL).to_bytes(8, "little"), "big")


def transpose_bits_in_bytes(v: int) -> int:
    """Transpose across the a8–h1 diagonal (bit 7 to bit 56)."""
    v = ((v & 0xAA00AA00AA00AA00) >> 9) | ((v & 0x0055005500550055) << 9) | (v & 0x55AA55AA55AA55AA)
    v = ((v & 0xCCCC0000CCCC0000) >> 18) | ((v & 0x0000333300003333) << 18) | (v & 0x3333CCCC3333CCCC)
    v = ((v & 0xF0F0F0F000000000) >> 36) | ((v & 0x000000000F0F0F0F) << 36) | (v & 0x0F0F0F0FF0F0F0F0)
    return v & ALL


def apply_transform(v: int, transform: int) -> int:
    if transform & FLIP:
        v = reverse_bits_in_bytes(v)
    if transform & MIRROR:
        v = reverse_bytes_in_bytes(v)
    if transform & TRANSPOSE:
        v = transpose_bits_in_bytes(v)
    return v


def transform_square(square: int, transform: int) -> int:
    """A move square under `transform` as lc0's `MoveToNNIndex` maps it (lc0 ≥ 0.32, src/neural/encoder.cc).

    Its `Transform(Square, int)` flips the rank for mirror or transpose and the file for flip or
    transpose; it does not swap file and rank, so with a transpose the policy frame is not the
    planes' frame. The networks' logits are read through this mapping by the engine, and the
    reference top moves of lc0 agree with it (tests/test_encoder.py).
    """
    file, rank = square % 8, square // 8
    if transform & (MIRROR | TRANSPOSE):
        rank = 7 - rank
    if transform & (FLIP | TRANSPOSE):
        file = 7 - file
    return rank * 8 + file


# -- positions as lc0 keeps them -------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """One position of a history, in real board coordinates, with what lc0's board holds."""

    pieces: tuple[int, ...]  # 12 bitboards: white P N B R Q K, black P N B R Q K
    white_to_move: bool
    castling: int  # python-chess castling rights: the castling rooks' squares
    ep_file: int | None  # lc0's en-passant flag (file of the pawn that may be taken)
    rule50: int
    repetitions: int = 0

    def key(self) -> tuple:
        """What lc0's ChessBoard::operator== compares."""
        return self.pieces, self.white_to_move, self.castling, self.ep_file


def _snapshot(board: chess.Board, ep_file: int | None, repetitions: int = 0) -> Snapshot:
    pieces = tuple(int(board.pieces_mask(pt, color)) for color in (chess.WHITE, chess.BLACK) for pt in PIECE_TYPES)
    return Snapshot(pieces, board.turn == chess.WHITE, int(board.castling_rights), ep_file,
                    board.halfmove_clock, repetitions)


STARTPOS_KEY = _snapshot(chess.Board(), None).key()


class IllegalMove(ValueError):
    """A move that is not legal in its position; `index` counts from 1."""

    def __init__(self, index: int, move: str, fen: str, reason: str = "illegal"):
        super().__init__(f"move {index} ({move}) is {reason} in {fen}")
        self.index = index


def parse_fen(fen: str, chess960: bool = False) -> chess.Board:
    """A python-chess board for a valid FEN; ValueError naming what is wrong otherwise."""
    try:
        board = chess.Board(fen.strip(), chess960=chess960)
    except ValueError as e:
        raise ValueError(f"bad FEN {fen.strip()!r}: {e}") from None
    status = board.status()
    if status != chess.STATUS_VALID:
        problems = [name.lower().replace("_", " ") for name, flag in chess.Status.__members__.items()
                    if flag and status & flag and name != "VALID"]
        raise ValueError(f"illegal FEN {fen.strip()!r}: {', '.join(problems)}")
    return board


def _lc0_ep_after(board: chess.Board, move: chess.Move) -> int | None:
    """lc0's en-passant flag after `move` (pushed already): a double push next to an enemy pawn."""
    if board.piece_type_at(move.to_square) != chess.PAWN or abs(move.to_square - move.from_square) != 16:
        return None
    file, rank = chess.square_file(move.to_square), chess.square_rank(move.to_square)
    enemy_pawns = board.pieces_mask(chess.PAWN, board.turn)
    for df in (-1, 1):
        if 0 <= file + df < 8 and enemy_pawns >> (rank * 8 + file + df) & 1:
            return file
    return None


@dataclass
class History:
    """The positions lc0's PositionHistory holds after the FEN and the moves, and the final board."""

    snapshots: list[Snapshot]
    board: chess.Board  # python-chess board of the last position (legal moves, notation)


def build_history(fen: str, moves: list[str] | tuple[str, ...] = (), chess960: bool = False) -> History:
    """Play UCI `moves` from `fen`; ValueError for a bad FEN, IllegalMove (with its index) for a bad move."""
    board = parse_fen(fen, chess960)
    ep = chess.square_file(board.ep_square) if board.ep_square is not None else None
    snaps = [_snapshot(board, ep)]
    for i, text in enumerate(moves, 1):
        try:
            move = board.parse_uci(text)
        except (chess.InvalidMoveError, chess.IllegalMoveError, ValueError):
            raise IllegalMove(i, text, board.fen()) from None
        board.push(move)
        snap = _snapshot(board, _lc0_ep_after(board, move))
        snaps.append(Snapshot(*snap.key(), rule50=snap.rule50, repetitions=_repetitions(snaps, snap)))
    return History(snaps, board)


def _repetitions(previous: list[Snapshot], last: Snapshot) -> int:
    """lc0's ComputeLastMoveRepetitions for `last` appended to `previous`."""
    if last.rule50 < 4:
        return 0
    key = last.key()
    for idx in range(len(previous) - 4, -1, -2):
        pos = previous[idx]
        if pos.key() == key:
            return 1 + pos.repetitions
        if pos.rule50 < 2:
            return 0
    return 0


# -- the encoder -----------------------------------------------------------------

def _castling_files(snap: Snapshot) -> dict[tuple[bool, str], int]:
    """(white?, 'k'|'q') → castling rook file, for the rights that are set (king file decides the side)."""
    out = {}
    for white, back, king_mask in ((True, 0, snap.pieces[5]), (False, 7, snap.pieces[11])):
        king_file = (king_mask.bit_length() - 1) % 8
        for sq in chess.scan_forward(snap.castling & chess.BB_RANKS[back]):
            out[(white, "k" if sq % 8 > king_file else "q")] = sq % 8
    return out


def _oriented(snap: Snapshot, white_view: bool) -> tuple[list[int], list[int]]:
    """(ours, theirs) piece masks seen from the side `white_view` (ranks mirrored for black)."""
    w, b = list(snap.pieces[:6]), list(snap.pieces[6:])
    if white_view:
        return w, b
    return [reverse_bytes_in_bytes(m) for m in b], [reverse_bytes_in_bytes(m) for m in w]


def choose_transform(snap: Snapshot) -> int:
    """lc0's ChooseTransform for the side to move's board (canonical formats)."""
    if snap.castling:
        return 0
    ours, theirs = _oriented(snap, snap.white_to_move)
    our_king = ours[5]
    transform = 0
    if our_king & 0x0F0F0F0F0F0F0F0F:
        transform |= FLIP
        our_king = reverse_bits_in_bytes(our_king)
    if ours[0] | theirs[0]:
        return transform
    if our_king & 0xFFFFFFFF00000000:
        transform |= MIRROR
        our_king = reverse_bytes_in_bytes(our_king)
    if our_king & 0xE0C08000:
        return transform | TRANSPOSE
    if our_king & 0x10204080:
        all_ours = ours[0] | ours[1] | ours[2] | ours[3] | ours[4] | ours[5]
        all_theirs = theirs[0] | theirs[1] | theirs[2] | theirs[3] | theirs[4] | theirs[5]
        # kings, queens, rooks, knights, bishops (plane order P N B R Q K)
        for value in (all_ours | all_theirs, all_ours, ours[5] | theirs[5], ours[4] | theirs[4],
                      ours[3] | theirs[3], ours[1] | theirs[1], ours[2] | theirs[2]):
            if transform & FLIP:
                value = reverse_bits_in_bytes(value)
            if transform & MIRROR:
                value = reverse_bytes_in_bytes(value)
            alternative = transpose_bits_in_bytes(value)
            if value < alternative:
                return transform
            if value > alternative:
                return transform | TRANSPOSE
    return transform


def encode(history: History | list[Snapshot], input_format: int = 1, fill: str = DEFAULT_FILL
           ) -> tuple[np.ndarray, int]:
    """float32 [112, 64] planes exactly as lc0 feeds them, and lc0's canonical transform (0 for formats 1–2)."""
    snaps = history.snapshots if isinstance(history, History) else history
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input format {input_format} is not one lc0 encodes (it knows {INPUT_FORMATS})")
    if fill not in FILLS:
        raise ValueError(f"history fill {fill!r}: expected one of {', '.join(FILLS)}")
    masks = [0] * (AUX + 8)
    values = {}  # plane → constant fill value other than 0/1 (rule-50)
    last = snaps[-1]
    white = last.white_to_move
    canonical = input_format in CANONICAL
    transform = choose_transform(last) if canonical else 0

    rooks = _castling_files(last)
    we, they = white, not white
    if input_format == 1:
        for plane, side, wing in ((0, we, "q"), (1, we, "k"), (2, they, "q"), (3, they, "k")):
            if (side, wing) in rooks:
                masks[AUX + plane] = ALL
    else:
        for plane, wing in ((0, "q"), (1, "k")):
            if (we, wing) in rooks:
                masks[AUX + plane] |= 1 << rooks[(we, wing)]
            if (they, wing) in rooks:
                masks[AUX + plane] |= 1 << (56 + rooks[(they, wing)])
    if canonical:
        if last.ep_file is not None:
            masks[AUX + 4] = 1 << (56 + last.ep_file)
    elif not white:
        masks[AUX + 4] = ALL
    values[AUX + 5] = (np.float32(last.rule50) / np.float32(100.0)) if input_format in HECTOPLIES \
        else np.float32(last.rule50)
    if input_format in ARMAGEDDON and not white:
        masks[AUX + 6] = ALL
    masks[AUX + 7] = ALL

    skip_non_repeats = input_format in CANONICAL_V2
    n = len(snaps)
    history_idx = n - 1
    i = 0
    while i < HISTORY:
        pos = snaps[max(history_idx, 0)]
        if canonical and pos.castling != last.castling:
            break
        if canonical and history_idx != n - 1 and pos.ep_file is not None:
            break
        if fill == "no" and (history_idx < -1 or (history_idx == -1 and pos.ep_file is None)):
            break
        if history_idx < 0 and fill == "fen_only" and pos.key() == STARTPOS_KEY:
            break
        if skip_non_repeats and pos.repetitions == 0 and i > 0:
            if pos.rule50 == 0:
                break
            if history_idx < 0:
                # lc0 loops forever here (its v2 history scan only ends at a rule-50 reset, which a
                # repeated FEN position never reaches); the reference engine crashes on such positions.
                raise ValueError("lc0 cannot encode this position in a canonical-v2 format with its history "
                                 "filled from a FEN with a non-zero rule-50 counter (use --history-fill no)")
            history_idx -= 1
            continue
        pieces = list(pos.pieces)
        if history_idx < 0 and pos.ep_file is not None:
            # The pawn that made the double push stands back on its starting square.
            f = pos.ep_file
            if pos.white_to_move:  # black pushed: 5th rank back to the 7th
                pieces[6] = pieces[6] & ~(1 << (32 + f)) | (1 << (48 + f))
            else:
                pieces[0] = pieces[0] & ~(1 << (24 + f)) | (1 << (8 + f))
        ours, theirs = _oriented(Snapshot(tuple(pieces), pos.white_to_move, 0, None, 0), white)
        base = i * PLANES_PER_BOARD
        masks[base:base + 6] = ours
        masks[base + 6:base + 12] = theirs
        if pos.repetitions >= 1:
            masks[base + 12] = ALL
        if canonical and pos.rule50 == 0:
            break
        i += 1
        history_idx -= 1

    if transform:
        for p in range(AUX + 5):
            if masks[p] not in (0, ALL):
                masks[p] = apply_transform(masks[p], transform)
    planes = np.zeros((AUX + 8, 64), dtype=np.float32)
    bits = np.array(masks, dtype=np.uint64)
    planes[:] = ((bits[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.float32)
    for p, v in values.items():
        planes[p] = v
    return planes, transform


# -- moves ↔ policy indices --------------------------------------------------------

def lc0_move(board: chess.Board, move: chess.Move) -> tuple[int, int, str]:
    """(from, to, promotion letter or '') as lc0 indexes `move`: side-to-move frame, castling to the rook."""
    frm, to = move.from_square, move.to_square
    if board.is_castling(move) and not board.chess960:
        # python-chess names standard castling by the king's destination; lc0 by the rook's square.
        rank = chess.square_rank(frm)
        to = rank * 8 + (7 if chess.square_file(to) > chess.square_file(frm) else 0)
    if board.turn == chess.BLACK:
        frm, to = frm ^ 56, to ^ 56
    promo = chess.piece_symbol(move.promotion) if move.promotion and move.promotion != chess.KNIGHT else ""
    return frm, to, promo


def policy_index(board: chess.Board, move: chess.Move, transform: int = 0) -> int:
    """lc0's 1858-policy index of a legal `move` in `board`."""
    frm, to, promo = lc0_move(board, move)
    if transform:
        frm, to = transform_square(frm, transform), transform_square(to, transform)
    return move_index()[square_name(frm) + square_name(to) + promo]


def legal_moves(board: chess.Board, transform: int = 0, chess960: bool = False) -> list[tuple[str, int]]:
    """Every legal move as (UCI in real coordinates, policy index); castling e1g1 unless `chess960` (e1h1)."""
    out = []
    for move in board.legal_moves:
        name = board.uci(move, chess960=chess960 or board.chess960)
        out.append((name, policy_index(board, move, transform)))
    return out
