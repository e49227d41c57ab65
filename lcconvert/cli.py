"""The `lcconvert` command: parse options, call the library, render, map errors to exit codes.

Exit codes: 0 success; 1 verification failed (nothing written); 2 bad input or usage.
"""
from __future__ import annotations

import json
import math
import sys
import warnings

import click

from lcconvert import __version__
from lcconvert.cli_help import Command
from lcconvert.cli_options import QUIET, checkpoint_options, quiet_option
from lcconvert.errors import LcconvertError, first_problem

ENCODINGS = click.Choice(["linear16", "float16", "bfloat16", "float32"], case_sensitive=False)


class Group(click.Group):
    """Turns every LcconvertError into one line on stderr and its exit code.

    NumPy's RuntimeWarnings (overflow in a cast, invalid value in a reduction) are
    silenced here: every number that matters is checked explicitly — inputs by
    `verify.require_usable`, outputs by the forward pass and the fold's own
    measurements — and reported as one line; a warning on stderr would be noise
    on a run that succeeded and a second, unreadable message on one that failed.
    """

    command_class = Command  # every command's help: examples, option groups, exit status (cli_help.py)

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return super().invoke(ctx)
        except LcconvertError as e:
            click.echo(f"lcconvert: {e.message}", err=True)
            sys.exit(e.exit_code)


def _finite(value):
    """`value` with every NaN/±inf float replaced by None, so JSON output is always valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(doc, indent=None) -> str:
    """Strict JSON (no NaN or Infinity tokens, which JSON does not have)."""
    return json.dumps(_finite(doc), indent=indent, allow_nan=False)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lcconvert")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars and no reports, for every command (as each command's own --quiet).")
@click.pass_context
def main(ctx, quiet):
    """Read, fold, verify and write Leela Chess Zero (Lc0) and Leela Zero networks.

    Formats: Lc0 protobuf (.pb, .pb.gz), Lc0/Leela Zero text weights (.txt, .txt.gz),
    TensorFlow training checkpoints (with the tf extra), detected by content.
    Exit codes: 0 ok, 1 verification failed, 2 bad input or usage.
    `lcconvert COMMAND --help` shows each command's options and examples.

    \b
    Shell completion (bash; zsh and fish alike):
      eval "$(_LCCONVERT_COMPLETE=bash_source lcconvert)"
    """
    from lcconvert import memory, progress

    memory.return_big_frees()
    progress.quiet(quiet)
    ctx.obj = {"quiet": quiet}


def _encoding(value):
    from lcconvert.codecs import Encoding

    return Encoding.parse(value) if value else None


def _say(text: str, err: bool = False) -> None:
    """Human-readable output (reports, tables, notes, "wrote …"): silenced by --quiet."""
    if not QUIET.get():
        click.echo(text, err=err)


def _print_notes(notes):
    for note in notes:
        _say(f"note: {note}", err=True)


def _each(paths, as_json, report_one) -> None:
    """Run `report_one(path) -> (JSON document, text, failure or None)` for every network and print the reports.

    One network: as always (its JSON object, its text, its error as the exit status). Several: one
    report each (--json: a list), a file that fails gives its one error line and the others go on, and
    the exit status is the worst (2 unreadable > 1 failed verification > 0).
    """
    if len(paths) == 1:
        doc, text, failure = _three(report_one(paths[0]))
        _show(doc, text, as_json)
        if failure is not None:
            raise failure
        return
    docs, worst = [], 0
    for path in paths:
        try:
            doc, text, failure = _three(report_one(path))
        except LcconvertError as e:
            click.echo(f"lcconvert: {e.message}", err=True)
            docs.append({"file": path, "error": e.message, "exit_code": e.exit_code})
            worst = max(worst, e.exit_code)
            continue
        docs.append(doc)
        if not as_json and text is not None:
            _say(text + "\n")
        if failure is not None:
            click.echo(f"lcconvert: {failure.message}", err=True)
            worst = max(worst, failure.exit_code)
    if as_json:
        click.echo(_json(docs, indent=2))
    if worst:
        sys.exit(worst)


def _three(result):
    return result if len(result) == 3 else (*result, None)


def _show(doc, text, as_json) -> None:
    if as_json:
        click.echo(_json(doc, indent=2))
    elif text is not None:
        _say(text)


@main.command()
@click.argument("src", metavar="IN")
@click.argument("out", metavar="OUT")
@click.option("--to", type=click.Choice(["pb", "txt"]), help="Output format (default: from OUT's name: .txt/.txt.gz → text, else protobuf).")
@click.option("--encoding", type=ENCODINGS, help="Re-encode every layer (protobuf output). Default: keep each layer's encoding.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@quiet_option
@checkpoint_options
def convert(src, out, to, encoding, force, checkpoint_options):
    """Convert the network IN to OUT (any readable format to any format that can hold it)."""
    from lcconvert import pipeline, verify

    # Re-encoding an attention network is checked against IN before anything is written.
    check = pipeline.Check(verify.compare, failure="the re-encoded network does not compute what IN computes",
                           applies=lambda net: net.attention is not None) if encoding else None
    written = pipeline.write_file(src, out, to=to, encoding=_encoding(encoding), force=force, check=check,
                                  on_checked=lambda report: _say(report.render(), err=True),
                                  checkpoint_options=checkpoint_options)
    _print_notes(written.notes)
    if out != "-":
        _say(f"wrote {out}", err=True)


@main.command()
@click.argument("net_paths", metavar="NET...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--betas", is_flag=True,
              help="Per batch-norm layer: effective beta β+γ·b/√(σ²+ε) statistics, ReLU clip fraction, source.")
@click.option("--gammas", is_flag=True, help="Per batch-norm layer: gamma statistics, negative and near-zero counts.")
@click.option("--layers", is_flag=True, help="Every tensor: min/max/mean/std/L2, encoding, LINEAR16 range.")
@click.option("--csv", "csv_path", metavar="FILE",
              help="Also write the selected tables as CSV ('-' = standard output, instead of the text tables).")
@click.option("--plot", "plot_path", metavar="FILE.png",
              help="Box plot per layer of the effective betas (and gammas with --gammas); needs matplotlib.")
@click.option("--force", is_flag=True, help="Replace an existing --csv/--plot file.")
@quiet_option
@checkpoint_options
def inspect(net_paths, as_json, betas, gammas, layers, csv_path, plot_path, force, checkpoint_options):
    """Describe each network NET: format, architecture, encodings, fields present.

    With --betas/--gammas/--layers (or --csv/--plot, which default to --betas):
    per-layer statistics instead, as text tables, --json, --csv and --plot.
    Several networks: one report each (--json: a list); exit status the worst.
    """
    if len(net_paths) > 1 and (csv_path or plot_path):
        raise click.UsageError("--csv and --plot describe one network; give one NET")
    _each(net_paths, as_json, lambda net_path: _inspect_one(net_path, as_json, betas, gammas, layers, csv_path,
                                                            plot_path, force, checkpoint_options))


def _inspect_one(net_path, as_json, betas, gammas, layers, csv_path, plot_path, force, checkpoint_options):
    """One network's inspect report: (JSON document, text)."""
    from lcconvert import io

    if not (betas or gammas or layers or csv_path or plot_path):
        from lcconvert import summary, verify

        net = io.load(net_path, checkpoint_options=checkpoint_options)
        info = summary.describe(net)
        # Which engine generations compute this file as lc0 ≥ 0.21 does (8 positions: a wrong γ/β
        # reading moves outputs by ≥ 1e-2, far above what 8 positions can miss).
        gens = verify.generations(net, positions=8, measure_identical=False) if not verify.check(net) else None
        if gens is not None:
            info["computed_correctly_by"] = gens.correct_by
        text = summary.render(info) + (f"\n  {gens.summary_line()}" if gens is not None else "")
        return info, text

    from lcconvert import files, stats, verify
    from lcconvert.errors import OutputError

    if not (betas or gammas or layers):
        betas = True
    if plot_path == "-":
        raise OutputError(plot_path, "--plot needs a file name (a PNG is not written to standard output)")
    if csv_path == "-" and as_json:
        raise OutputError(csv_path, "--csv - and --json both want standard output; give --csv a file name")
    if csv_path and plot_path and csv_path != "-" and files.same_file(csv_path, plot_path):
        raise OutputError(csv_path, "--csv and --plot name the same file")
    for out in (csv_path, plot_path):
        if out:
            files.check_output_path(out, [net_path], force)
    if plot_path:
        from lcconvert import plot

        plot.require_matplotlib(plot_path)  # fail before any work or output

    net = io.load(net_path, checkpoint_options=checkpoint_options)
    beta_table = stats.beta_stats(net) if (betas or plot_path) else None
    gamma_table = stats.gamma_stats(net) if gammas else None
    tensor_rows, tensor_summary = stats.tensor_stats(net) if layers else (None, None)
    tables = [t for t in ((beta_table if betas else None), gamma_table) if t is not None]

    if csv_path and csv_path != "-":
        files.write_atomic(csv_path, stats.to_csv(tables, tensor_rows).encode())
    if plot_path:
        plot.write_plot(beta_table, gamma_table, net.source.path, plot_path)

    doc: dict = {"file": net.source.path}
    text = None
    for t in tables:
        doc[t.kind] = t.to_dict()
    problems = verify.usable_problems(net)
    if problems:  # statistics of non-finite values are null in the JSON; this says why
        doc["problems"] = problems
    if layers:
        doc["tensors"] = {"tensors": [r.to_dict() for r in tensor_rows], "summary": tensor_summary}
    if csv_path == "-" and not as_json:
        click.echo(stats.to_csv(tables, tensor_rows), nl=False)
    elif not as_json:
        parts = [net.source.path] + [stats.render_table(t) for t in tables]
        if layers:
            parts.append(stats.render_tensors(tensor_rows, tensor_summary))
        text = "\n\n".join(parts)
    for out in (csv_path, plot_path):
        if out and out != "-":
            _say(f"wrote {out}", err=True)
    return doc, text


@main.command()
@click.argument("a_path", metavar="A")
@click.argument("b_path", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Every tensor as one JSON object instead of text.")
@click.option("--all", "show_all", is_flag=True,
              help="When the architectures differ, list every difference on standard output (still exit 2).")
@quiet_option
@checkpoint_options
def diff(a_path, b_path, as_json, show_all, checkpoint_options):
    """Per-tensor differences of B against A (max and mean absolute, relative L2).

    A and B must have the same architecture. The text lists exactly the tensors
    that differ; --json has every tensor. Exit code 0 whether or not they differ.
    """
    from lcconvert import diff as diff_mod
    from lcconvert import io
    from lcconvert.errors import NetworkError

    try:
        report = diff_mod.compare(io.load(a_path, checkpoint_options=checkpoint_options),
                                  io.load(b_path, checkpoint_options=checkpoint_options))
    except NetworkError as e:
        if show_all and getattr(e, "problems", None):
            doc = {"a": a_path, "b": b_path, "architecture_differences": e.problems}
            click.echo(_json(doc, indent=2) if as_json else "\n".join(e.problems))
        raise
    if as_json:
        click.echo(_json(report.to_dict(), indent=2))
    else:
        _say(diff_mod.render(report))


@main.command("fold-bias")
@click.argument("src", metavar="IN")
@click.argument("out", metavar="OUT")
@click.option("--beta-into", type=click.Choice(["means", "biases"]), default="means", show_default=True,
              help="Where β (and the conv biases) go: the means (biases written as zeros) or the biases.")
@click.option("--gamma-into", type=click.Choice(["auto", "variances", "weights"]), default="auto",
              show_default=True, help="Where γ goes; auto encodes every candidate (variances, weights, γ split "
                                       "between them) per block and keeps the most accurate.")
@click.option("--encoding", type=ENCODINGS, help="Encode every layer so (default: keep each layer's).")
@click.option("--to", type=click.Choice(["pb", "txt"]), help="Output format (default: from OUT's name).")
@click.option("--train-epsilon", type=float, default=None,
              help="Batch-norm ε the statistics were trained with (default: the file's, 1e-5).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--no-verify", is_flag=True, help="Skip the check of OUT (legacy) against IN (modern).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the summary.")
@quiet_option
@checkpoint_options
def fold_bias(src, out, beta_into, gamma_into, encoding, to, train_epsilon, force, no_verify, as_json,
              checkpoint_options):
    """Fold batch-norm γ, β and conv biases so old engines compute what new ones do.

    Writes OUT only when OUT under legacy semantics (γ/β ignored, as lc0 ≤ 0.19 and
    Leela Zero do) matches IN under modern semantics within the encoding's noise
    floor; otherwise exits 1 with the comparison and writes nothing.
    """
    import functools

    from lcconvert import fold, pipeline, verify
    from lcconvert.errors import VerificationFailed
    from lcconvert.fold_report import render

    # Summaries go to stderr when the network itself goes to stdout.
    to_stderr = out == "-"
    # OUT under legacy semantics against IN under modern semantics, on the bytes about to be written.
    # ...and every engine generation (lc0 ≥ 0.21, 0.20, ≤ 0.19) computes OUT the same way.
    check = pipeline.Check(verify.fold_check, failure="the folded network does not compute what IN computes")
    try:
        result = pipeline.write_file(
            src, out, to=to, encoding=_encoding(encoding), force=force, backwards_compatible=True,
            transform=functools.partial(fold.fold, beta_into=beta_into, gamma_into=gamma_into),
            check=None if no_verify else check, epsilon=train_epsilon, checkpoint_options=checkpoint_options)
    except VerificationFailed as e:
        advice = verify.refusal(pipeline.read(src, epsilon=train_epsilon, checkpoint_options=checkpoint_options),
                                e.report, e.verification, beta_into=beta_into, gamma_into=gamma_into)
        if as_json:
            click.echo(_json({"written": False, "fold": e.report.to_dict(),
                              "verification": e.verification.to_dict(), "refusal": advice}, indent=2),
                       err=to_stderr)
        else:
            _say(render(e.report), err=True)
            _say(e.verification.render(), err=True)
            _say("\n".join(advice), err=True)
        raise
    if as_json:
        click.echo(_json({"written": True, **result.to_dict("fold")}, indent=2), err=to_stderr)
        return
    _say(render(result.report), err=to_stderr)
    if result.verification is not None:
        _say(result.verification.render(), err=to_stderr)
    else:
        _say("verification skipped (--no-verify)", err=to_stderr)
    if out != "-":
        _say(f"nothing to fold: copied {src} to {out} unchanged" if result.copied_input else f"wrote {out}",
             err=True)


@main.command("eval")
@click.argument("net_path", metavar="NET")
@click.option("--planes", "planes_path", metavar="IN.npy|IN.npz",
              help="Input planes: [N,112,8,8] or [N,112,64] (chess), [N,18,361] or [N,18,19,19] (Go); "
                   "an .npz is read from its 'planes' array.")
@click.option("--fen", help="Chess: a position (FEN); --moves are played from it.")
@click.option("--moves", "move_text", metavar="MOVES",
              help='Chess: UCI moves from --fen (or the start), "e2e4 e7e5". Go: "B Q16 W D4 B pass".')
@click.option("--pgn", "pgn_path", metavar="FILE.pgn", help="Chess: positions of the games in a PGN file.")
@click.option("--game", type=click.IntRange(min=1), help="With --pgn: only game N (from 1).")
@click.option("--ply", type=click.IntRange(min=0), help="With --pgn: only the position after K plies "
                                                        "(default: every position).")
@click.option("--epd", "epd_path", metavar="FILE.epd", help="Chess: one position per line (EPD or FEN).")
@click.option("--sgf", "sgf_path", metavar="FILE.sgf", help="Go: a game record; its main line is played.")
@click.option("--move", "sgf_move", type=click.IntRange(min=0), help="With --sgf: the position after K moves "
                                                                      "(default: the last).")
@click.option("--history-fill", type=click.Choice(["fen_only", "always", "no"]), default="fen_only",
              show_default=True, help="Chess: how lc0 fills history before the first position.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Moves shown per position.")
@click.option("--policy-temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Chess: softmax temperature over the legal moves' logits.")
@click.option("--chess960", is_flag=True, help="Name castling king-takes-rook (e1h1) as Chess960 UCI does.")
@click.option("--out", "out_path", metavar="OUT.npz", help="Write every output array to OUT.npz.")
@click.option("--semantics", type=click.Choice(["modern", "legacy"]), default="modern", show_default=True,
              help="Batch norm as lc0 ≥ 0.21 computes it, or as lc0 ≤ 0.19 / Leela Zero (γ, β ignored).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--policy-head", metavar="NAME", help="Multi-head networks: lc0's policy head (default vanilla; "
                                                    "`inspect` lists them).")
@click.option("--value-head", metavar="NAME", help="Multi-head networks: lc0's value head (default winner).")
@quiet_option
@checkpoint_options
def eval_(net_path, planes_path, fen, move_text, pgn_path, game, ply, epd_path, sgf_path, sgf_move, history_fill,
          top, policy_temperature, chess960, out_path, semantics, as_json, force, policy_head, value_head,
          checkpoint_options):
    """Evaluate the network NET on positions or input planes.

    Positions (chess: --fen/--moves, --pgn, --epd; Go: --moves, --sgf) are encoded as the engine does and
    shown as the top legal moves with their probabilities, Q/WDL/moves-left (Go: winrate).
    --planes evaluates raw input planes: policy, value, WDL, moves left (Go: winrate).
    """
    import io as _io

    import numpy as np

    from lcconvert import files, io, verify
    from lcconvert.constants import Family
    from lcconvert.errors import FormatError

    sources = [name for name, given in (("--planes", planes_path), ("--fen", fen), ("--pgn", pgn_path),
                                        ("--epd", epd_path), ("--sgf", sgf_path)) if given]
    if len(sources) > 1 or (move_text is not None and sources and sources != ["--fen"]):
        raise click.UsageError(f"give one input: {', '.join(sources + (['--moves'] if move_text else []))} "
                               "cannot be combined (only --fen with --moves)")
    if not sources and move_text is None:
        raise click.UsageError("give positions (--fen, --moves, --pgn, --epd, --sgf) or --planes")
    for option, value, needs in (("--game", game, pgn_path), ("--ply", ply, pgn_path), ("--move", sgf_move, sgf_path)):
        if value is not None and not needs:
            raise click.UsageError(f"{option} goes with {'--sgf' if option == '--move' else '--pgn'}")
    inputs = [p for p in (planes_path, pgn_path, epd_path, sgf_path) if p]
    if out_path:
        files.check_output_path(out_path, [net_path, *inputs], force)
        files.refuse_terminal(out_path, force)
    net = verify.require_usable(io.load(net_path, checkpoint_options=checkpoint_options))

    if planes_path:
        from lcconvert import forward

        planes = io.load_planes(planes_path)
        outputs = forward.evaluate(net, planes, semantics=semantics, source=planes_path, policy_head=policy_head,
                                   value_head=value_head)
        arrays, payload, text = outputs.arrays(), {"semantics": semantics, **outputs.to_dict()}, None
    else:
        from lcconvert import analysis
        from lcconvert.position_files import ChessPosition, epd_positions, pgn_positions

        go_input = sgf_path is not None or (net.family is Family.GO and move_text is not None and not fen)
        if go_input:
            from lcconvert.go_board import parse_move_list

            if sgf_path:
                game = analysis.sgf_game(sgf_path, sgf_move)
            else:
                try:
                    game = ("--moves", parse_move_list(move_text))
                except ValueError as e:
                    raise FormatError("--moves", str(e)) from None
            result = analysis.analyse_go(net, net_path, [game], top=top, semantics=semantics)
        else:
            if pgn_path:
                chess_positions = pgn_positions(pgn_path, game, ply)
            elif epd_path:
                chess_positions = epd_positions(epd_path)
            else:
                import chess

                label = "--fen" if fen else "--moves"
                chess_positions = [ChessPosition(label, fen or chess.STARTING_FEN, tuple((move_text or "").split()))]
            result = analysis.analyse_chess(net, net_path, chess_positions, fill=history_fill, top=top,
                                            temperature=policy_temperature, chess960=chess960,
                                            semantics=semantics, policy_head=policy_head, value_head=value_head)
        arrays, payload, text = result.arrays, result.to_dict(), result.render()
    if out_path:
        buf = _io.BytesIO()
        np.savez(buf, **arrays)
        files.write_atomic(out_path, buf.getvalue())
        if out_path != "-":
            _say(f"wrote {out_path} ({len(next(iter(arrays.values())))} positions)", err=True)
    elif as_json:
        click.echo(_json({"net": net_path, **payload}))
    elif text is not None:
        _say(text)
    else:
        _say(outputs.render(net.family))


@main.command("verify")
@click.argument("net_paths", metavar="NET...", nargs=-1, required=True)
@click.option("--against", "ref_path", metavar="REF",
              help="Compare with REF (any readable network), evaluated with modern semantics.")
@click.option("--legacy", is_flag=True,
              help="Evaluate NET as an engine ignoring γ/β would, and fail unless it is backwards compatible "
                   "and every older engine generation (--engine lc0-0.20 and lc0-0.19) computes it correctly.")
@click.option("--engine", "engines_", multiple=True, type=click.Choice(["modern", "lc0-0.20", "lc0-0.19"]),
              help="Report (and require) that this engine generation computes what modern semantics compute; "
                   "repeatable.")
@click.option("--positions", "positions_spec", default="32", show_default=True, metavar="N|FILE",
              help="N seeded positions (half generated, half from real games), or every position of "
                   "FILE.pgn / FILE.epd (chess), FILE.sgf (Go) or an lc0 training .gz.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the positions.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the text report.")
@quiet_option
@checkpoint_options
def verify_(net_paths, ref_path, legacy, engines_, positions_spec, seed, as_json, checkpoint_options):
    """Check each NET: structure and numerics, which engine generations compute it, and (--against) REF.

    Deciding checks (they set the exit status): structure and numerics; --against
    REF; the generations asked for with --engine or --legacy. Every other row is
    information. Several networks: one report each (--json: a list), exit status the worst.
    """
    _each(net_paths, as_json, lambda net_path: _verify_one(net_path, ref_path, legacy, engines_, positions_spec,
                                                           seed, checkpoint_options))


def _verify_one(net_path, ref_path, legacy, engines_, positions_spec, seed, checkpoint_options):
    """One network's verify report: (JSON document, text, VerificationFailed or None)."""
    from lcconvert import io, position_sets, verify
    from lcconvert.errors import NetworkError, VerificationFailed

    if positions_spec.isdigit() and not 1 <= int(positions_spec) <= 4096:
        raise click.BadParameter("a number of positions must be 1 to 4096", param_hint="--positions")
    net = io.load(net_path, strict=False, checkpoint_options=checkpoint_options)
    problems = verify.check(net)
    result = {"net": net_path, "structure": {"passed": not problems, "problems": problems},
              "backwards_compatible": None, "against": None}
    failures = [f"structure: {p}" for p in problems]
    reports = []
    from lcconvert.engines import GENERATIONS, OLDER, Evaluations

    asked = [g for g in GENERATIONS if g in engines_ or (legacy and g in OLDER)]
    if not problems:
        if positions_spec.isdigit():
            planes, described = position_sets.default_planes(net, int(positions_spec), seed)
        else:
            planes, described = position_sets.file_planes(net, positions_spec)
        n_positions = len(planes)
        result["positions"] = described
        # One set of outputs for both checks: the modern pass, and the legacy pass they share.
        runs = Evaluations(net, planes, verify.DTYPE)
        bc = verify.backwards_compatible(net, n_positions, seed, runs=runs)
        result["backwards_compatible"] = bc.to_dict()
        reports.append(bc)
        if legacy and not bc.passed:
            failures += [f"not backwards compatible: {r}" for r in bc.reasons]
        gens = verify.generations(net, None, n_positions, seed, runs=runs)
        result["engines"] = gens.to_dict()
        wanted = [r for r in gens.results if r.generation in asked]
        failures += [f"not computed correctly by {r.generation}: {r.status}"
                     + (f" ({r.reasons[0]})" if r.reasons else "") for r in wanted if not r.correct]
        gens.shown = tuple(asked)  # plain verify: the summary line only
        reports.append(gens)
        if ref_path:
            ref = io.load(ref_path, checkpoint_options=checkpoint_options)
            ref_problems = verify.check(ref)
            if ref_problems:
                raise NetworkError(ref_path, ref_problems[0])
            if ref.family is not net.family:
                raise NetworkError(ref_path, f"a {ref.family.value} network cannot be compared with "
                                             f"{net_path}, a {net.family.value} network")
            cmp = verify.compare(net, ref, legacy=legacy, positions=n_positions, seed=seed, planes=planes)
            result["against"] = cmp.to_dict()
            reports.append(cmp)
            failures += [f"against {ref_path}: {r}" for r in cmp.reasons]
    result["passed"] = not failures
    deciding = ["structure and numerics"] + ([f"--against {ref_path}"] if ref_path else []) \
        + [f"engine {g}" for g in asked]
    result["deciding_checks"] = deciding
    lines = [f"{net_path}", f"structure and numerics: {'ok' if not problems else f'{len(problems)} problem(s)'}"]
    if "positions" in result:
        lines.append(f"positions: {result['positions']}")
    lines += [f"  - {p}" for p in problems]
    lines += [r.render() for r in reports]
    lines.append(f"verdict: {'pass' if not failures else 'FAIL'} (exit status decided by: {', '.join(deciding)}; "
                 "other rows are information)")
    failure = VerificationFailed(net_path, first_problem(failures)) if failures else None
    return result, "\n".join(lines), failure


@main.command()
@click.argument("src", metavar="NET")
@click.argument("out", metavar="OUT")
@click.option("--data", "data", multiple=True, required=True, metavar="PATH",
              help="lc0 training chunks: a directory, a quoted glob or a file (repeat for more).")
@click.option("--eval-data", "eval_data", multiple=True, metavar="PATH",
              help="Held-out chunks to report the fit before and after on (repeat for more).")
@click.option("--positions", type=click.IntRange(1), metavar="N", help="Use N positions sampled from --data (default: all).")
@click.option("--batch", type=click.IntRange(1), default=256, show_default=True, metavar="B",
              help="Positions per partition (one task's batch).")
@click.option("--workers", type=click.IntRange(1), metavar="K",
              help="Worker processes of the embedded Dask cluster (default: one per core; 1 = no cluster; "
                   "ignored with --scheduler).")
@click.option("--scheduler", metavar="ADDRESS", help="Use an existing Dask cluster, e.g. tcp://host:8786.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="S",
              help="Seed of the --positions sample.")
@click.option("--to", type=click.Choice(["pb", "txt"]), help="Output format (default: from OUT's name).")
@click.option("--encoding", type=ENCODINGS, help="Encode every layer so (default: keep each layer's).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the text report.")
@quiet_option
def recalibrate(src, out, data, eval_data, positions, batch, workers, scheduler, seed, to, encoding, force,
                as_json):
    """Recompute batch-norm means/variances of NET from lc0 training data ("precise BN"); write OUT.

    Layer by layer in forward order, each layer's statistics are those of its input
    when every earlier layer already uses its new ones (modern semantics: γ, β and
    biases are kept). Reports how far the stored statistics were from the measured
    ones and, with --eval-data, the fit to the data's targets before and after.
    """
    import functools

    from lcconvert import pipeline, recalibrate_run

    transform = functools.partial(recalibrate_run.recalibrated, data=data, eval_data=eval_data, positions=positions,
                                  batch=batch, workers=workers, scheduler=scheduler, seed=seed)
    written = pipeline.write_file(src, out, to=to, encoding=_encoding(encoding), force=force, transform=transform)
    to_stderr = out == "-"
    if as_json:
        click.echo(_json(written.to_dict("recalibration"), indent=2), err=to_stderr)
    else:
        _say(written.report.render(), err=to_stderr)
        _print_notes(written.report.notes)
    if out != "-":
        _say(f"wrote {out}", err=True)


if __name__ == "__main__":
    main()
