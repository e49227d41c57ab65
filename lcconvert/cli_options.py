"""Command-line options shared by every command that reads a network: the TF checkpoint options.

Why a decorator: a checkpoint does not store its network format (FORMATS.md §6),
so every command that accepts a network (convert, fold-bias, inspect, verify) must
accept the same way of stating it. One decorator keeps their names, help and
parsing identical; the command receives them as one `checkpoint_options` dict for
`io.load(..., checkpoint_options=...)`. They are ignored for other inputs.
"""
from __future__ import annotations

import contextvars
import functools

import click

from lcconvert.constants import (
    TRAINING_INPUT_FORMATS,
    TRAINING_MOVES_LEFT_FORMATS,
    TRAINING_POLICY_FORMATS,
    TRAINING_VALUE_FORMATS,
)

_PARAMS = ("ckpt_config", "ckpt_input_format", "ckpt_policy", "ckpt_value", "ckpt_moves_left", "ckpt_swa")

_OPTIONS = (
    click.option("--config", "ckpt_config", metavar="TRAINING.yaml",
                 help="TF checkpoint input: lczero-training's YAML; its `model:` section gives the network "
                      "format."),
    click.option("--input-format", "ckpt_input_format", metavar="NAME|N",
                 help="TF checkpoint input: the input format (" + ", ".join(TRAINING_INPUT_FORMATS)
                      + " or its number); overrides --config."),
    click.option("--policy", "ckpt_policy", type=click.Choice(list(TRAINING_POLICY_FORMATS)),
                 help="TF checkpoint input: policy head (checked against the weights); overrides --config."),
    click.option("--value", "ckpt_value", type=click.Choice(list(TRAINING_VALUE_FORMATS)),
                 help="TF checkpoint input: value head (checked against the weights); overrides --config."),
    click.option("--moves-left", "ckpt_moves_left", type=click.Choice(list(TRAINING_MOVES_LEFT_FORMATS)),
                 help="TF checkpoint input: moves-left head (checked against the weights); overrides --config."),
    click.option("--swa", "ckpt_swa", is_flag=True,
                 help="TF checkpoint input: read the SWA-averaged weights instead of the live ones."),
)


def checkpoint_options(command):
    """Add the checkpoint options to a click command; it receives them as `checkpoint_options` (a dict)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        values = {name: kwargs.pop(name, None) for name in _PARAMS}
        kwargs["checkpoint_options"] = {
            "config": values["ckpt_config"],
            "input_format": values["ckpt_input_format"],
            "policy": values["ckpt_policy"],
            "value": values["ckpt_value"],
            "moves_left": values["ckpt_moves_left"],
            "swa": bool(values["ckpt_swa"]),
        }
        return command(*args, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


QUIET = contextvars.ContextVar("lcconvert_quiet", default=False)


def quiet_option(command):
    """`--quiet/-q`: print no report, table, note, progress bar or "wrote" line — only data asked for (a
    network to `-`, --json, --csv -) and errors; the exit status tells the result. Read through `QUIET`."""
    def remember(ctx, param, value):
        quiet = bool(value) or bool((ctx.find_root().obj or {}).get("quiet"))  # `lcconvert -q CMD` too
        QUIET.set(quiet)
        if quiet:
            from lcconvert import progress

            progress.quiet(True)  # no progress bars either
        return value

    return click.option("--quiet", "-q", is_flag=True, expose_value=False, callback=remember, is_eager=True,
                        help="Print no report or table, only errors and the data asked for; the exit status "
                             "tells the result.")(command)
