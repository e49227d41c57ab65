"""The `lcconvert` command: parse options, call the library, render, map errors to exit codes.

Exit codes: 0 success; 1 verification failed (nothing written); 2 bad input or usage.
"""
from __future__ import annotations

import json
import sys

import click

from lcconvert import __version__
from lcconvert.errors import LcconvertError

ENCODINGS = click.Choice(["linear16", "float16", "bfloat16", "float32"], case_sensitive=False)


class Group(click.Group):
    """Turns every LcconvertError into one line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LcconvertError as e:
            click.echo(f"lcconvert: {e.message}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lcconvert")
def main():
    """Read, fold, verify and write Leela Chess Zero (Lc0) and Leela Zero networks.

    Formats: Lc0 protobuf (.pb, .pb.gz), Lc0/Leela Zero text weights (.txt, .txt.gz),
    detected by content. Exit codes: 0 ok, 1 verification failed, 2 bad input or usage.
    """


def _encoding(value):
    from lcconvert.formats.codecs import Encoding

    return Encoding.parse(value) if value else None


def _print_notes(notes):
    for note in notes:
        click.echo(f"note: {note}", err=True)


@main.command()
@click.argument("src", metavar="IN")
@click.argument("out", metavar="OUT")
@click.option("--to", type=click.Choice(["pb", "txt"]), help="Output format (default: from OUT's name: .txt/.txt.gz → text, else protobuf).")
@click.option("--encoding", type=ENCODINGS, help="Re-encode every layer (protobuf output). Default: keep each layer's encoding.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def convert(src, out, to, encoding, force):
    """Convert the network IN to OUT (any readable format to any format that can hold it)."""
    from lcconvert import io

    net = io.load(src)
    notes = io.save(net, out, to=to, encoding=_encoding(encoding), force=force, inputs=(src,))
    _print_notes(notes)
    if out != "-":
        click.echo(f"wrote {out}", err=True)


@main.command()
@click.argument("net_path", metavar="NET")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def inspect(net_path, as_json):
    """Describe the network NET: format, architecture, encodings, fields present."""
    from lcconvert import io, summary

    net = io.load(net_path)
    info = summary.describe(net)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(summary.render(info))


if __name__ == "__main__":
    main()
