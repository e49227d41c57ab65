"""How every command's --help reads: a summary, examples, options in groups, and the exit status.

Why apart from cli.py: the help is documentation a new user learns each command
from; keeping its examples and exit rules in one table lets a test hold them
against the commands (every example names a real command and its real options)
and keeps the command functions short. Click renders the summary from each
command's docstring; this module adds the rest.
"""
from __future__ import annotations

import click

# Options of every command that reads a network which matter only for TF checkpoints (cli_options.py).
CHECKPOINT_PREFIX = "ckpt_"

EXIT_STATUS = "0 success; 1 verification failed (nothing written); 2 bad input or usage (one line on stderr)."

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "convert": [
        ("lcconvert convert net.pb.gz net.txt.gz", "protobuf to Lc0 text weights, gzipped"),
        ("lcconvert convert net.pb.gz net-f16.pb.gz --encoding float16", "every layer as FLOAT16 (lc0 ≥ 0.33)"),
        ("lcconvert convert ckpt/ net.pb.gz --config training.yaml", "a TensorFlow checkpoint to protobuf"),
        ("cat net.pb.gz | lcconvert convert - - > copy.pb.gz", "standard input to standard output"),
    ],
    "fold-bias": [
        ("lcconvert fold-bias in.pb.gz out.pb.gz", "fold γ, β and conv biases; verify; then write"),
        ("lcconvert fold-bias in.pb.gz out.pb.gz --gamma-into variances --beta-into biases",
         "the 2018 training convention, weights byte-copied"),
        ("lcconvert fold-bias lz.txt lz-folded.txt", "a Leela Zero text network"),
    ],
    "verify": [
        ("lcconvert verify net.pb.gz", "structure, numerics, and which engine generations compute it"),
        ("lcconvert verify folded.pb.gz --against original.pb.gz --legacy", "a folded file against its source"),
        ("lcconvert verify net.pb.gz --positions games.pgn --json", "on real positions, as JSON"),
    ],
    "inspect": [
        ("lcconvert inspect net.pb.gz", "format, architecture, encodings, fields present"),
        ("lcconvert inspect --betas net.pb.gz", "per-layer effective betas: negative? how large?"),
        ("lcconvert inspect --gammas --json net.pb.gz", "gamma statistics as JSON"),
    ],
    "eval": [
        ("lcconvert eval net.pb.gz --fen '8/2P5/8/8/8/8/5kp1/3K4 b - - 0 60'", "top moves, Q, WDL of a position"),
        ("lcconvert eval net.pb.gz --pgn game.pgn --ply 20 --top 3", "one position of a game"),
        ("lcconvert eval net.pb.gz --planes planes.npy --out outputs.npz", "raw input planes, every output saved"),
    ],
    "diff": [
        ("lcconvert diff original.pb.gz folded.pb.gz", "the tensors that differ, and by how much"),
        ("lcconvert diff a.pb.gz b.pb.gz --json", "every tensor as JSON"),
    ],
    "recalibrate": [
        ("lcconvert recalibrate net.pb.gz --data chunks/ out.pb.gz", "batch-norm statistics from training data"),
        ("lcconvert recalibrate net.pb.gz --data 'train/*.gz' --eval-data held/ out.pb.gz --workers 2",
         "with held-out fit before and after"),
    ],
}

# Commands whose exit status follows another rule than EXIT_STATUS.
EXIT_RULES = {
    "verify": "0 when every deciding check passes: structure and numerics, and --against REF when given, and the "
              "engine generations asked for with --engine/--legacy; the rows of other generations are information. "
              "1 when a deciding check fails; 2 when a file is unreadable.",
    "inspect": "0 success; 2 bad input or usage. Problems found in a readable network are listed, not errors.",
    "diff": "0 whether or not the networks differ; 2 bad input or usage.",
}


class Command(click.Command):
    """A click command whose help adds examples, a heading for TF-checkpoint options, and the exit status."""

    def format_options(self, ctx, formatter):
        general, checkpoint = [], []
        for param in self.get_params(ctx):
            record = None if isinstance(param, click.Argument) else param.get_help_record(ctx)
            if record is None:
                continue
            if (param.name or "").startswith(CHECKPOINT_PREFIX):
                checkpoint.append((record[0], record[1].removeprefix("TF checkpoint input: ")))
            else:
                general.append(record)
        if general:
            with formatter.section("Options"):
                formatter.write_dl(general)
        if checkpoint:
            with formatter.section("TF checkpoint input (ignored for other inputs)"):
                formatter.write_dl(checkpoint)

    def format_epilog(self, ctx, formatter):
        examples = EXAMPLES.get(self.name, [])
        if examples:
            with formatter.section("Examples"):
                indent = " " * formatter.current_indent
                for command, what in examples:  # written as is: a command line must not be re-wrapped
                    formatter.write(f"{indent}$ {command}\n{indent}    {what}\n")
        with formatter.section("Files"):
            formatter.write_text("'-' is standard input (IN, NET) or standard output (OUT) where the format "
                                 "allows. Formats are detected by content, not by name.")
        with formatter.section("Exit status"):
            formatter.write_text(EXIT_RULES.get(self.name, EXIT_STATUS))
        super().format_epilog(ctx, formatter)
