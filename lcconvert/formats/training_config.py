"""The network format of a TensorFlow checkpoint, from lczero-training's YAML and from options.

Why it exists: a checkpoint stores weights, not the Lc0 `NetworkFormat`. Some of
the format shows in the weights (which heads exist, their sizes) and the reader
infers it; the input format and the activation do not, and a wrong input format
silently mis-scales the rule50 plane (FORMATS.md §6). They come from the training
YAML's `model:` section (keys and value names as lczero-training's tfprocess.py
reads them) and from command-line options, which override the YAML.

pyyaml belongs to the `tf` extra; it is imported only when a YAML file is read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from lcconvert.constants import (
    TRAINING_ACTIVATIONS,
    TRAINING_INPUT_FORMATS,
    TRAINING_MOVES_LEFT_FORMATS,
    TRAINING_POLICY_FORMATS,
    TRAINING_VALUE_FORMATS,
)
from lcconvert.errors import DependencyError, FormatError, UnsupportedError

INSTALL_HINT = "pip install 'lcconvert[tf]'"


@dataclass
class ModelConfig:
    """What is known about the network besides its weights; None = not stated (inferred or defaulted)."""

    filters: int | None = None
    residual_blocks: int | None = None
    se_ratio: int | None = None
    input: int | None = None
    policy: int | None = None
    value: int | None = None
    moves_left: int | None = None
    default_activation: int | None = None
    source: str | None = None  # the YAML file, for messages

    def merged(self, **overrides) -> "ModelConfig":
        """A copy where every non-None override replaces the YAML value (options beat the file)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return ModelConfig(**values)


def _choice(value, table: dict[str, int], what: str, source: str | None, numbers: bool = False) -> int:
    """A format given by lczero-training's name (or, where `numbers`, by its protobuf number)."""
    if isinstance(value, bool):
        raise FormatError(source, f"{what}: {value!r} is not one of {', '.join(table)}")
    if isinstance(value, int) and numbers and value in table.values():
        return value
    text = str(value).strip().lower()
    if text in table:
        return table[text]
    if numbers and text.isdigit() and int(text) in table.values():
        return int(text)
    if what == "policy" and text == "attention":
        raise UnsupportedError(source, "attention policy: only convolutional (batch-norm) networks are read "
                                       "from checkpoints")
    choices = ", ".join(table) + (" or " + ", ".join(str(v) for v in sorted(set(table.values()))) if numbers else "")
    raise FormatError(source, f"{what}: unknown value {value!r} (expected {choices})")


def parse_input_format(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_INPUT_FORMATS, "input format", source, numbers=True)


def parse_policy(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_POLICY_FORMATS, "policy", source, numbers=True)


def parse_value(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_VALUE_FORMATS, "value", source, numbers=True)


def parse_moves_left(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_MOVES_LEFT_FORMATS, "moves-left", source, numbers=True)


def _positive_int(model: dict, key: str, source: str) -> int | None:
    value = model.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(source, f"model.{key}: {value!r} is not a non-negative whole number")
    return value


def load(path: str) -> ModelConfig:
    """Read the `model:` section of an lczero-training YAML file.

    Keys the training code gives a default are given the same default here only
    where the checkpoint cannot show the truth: `input_type` (absent → classic,
    as the training code assumed) and `default_activation` (absent → relu).
    Head formats left out stay None: the reader infers them from the weights.
    """
    try:
        import yaml
    except ImportError:
        raise DependencyError(path, f"reading a training YAML needs pyyaml: {INSTALL_HINT}") from None
    from lcconvert.files import read_file

    raw = read_file(path, what="a training YAML file")
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FormatError(path, f"not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    path = os.fspath(path)
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise FormatError(path, "no `model:` section (expected lczero-training's training YAML)")
    model = document["model"]
    if _positive_int(model, "encoder_layers", path):
        raise UnsupportedError(path, "model.encoder_layers: attention-body networks are not batch-norm networks "
                                     "and are not read from checkpoints")
    config = ModelConfig(
        filters=_positive_int(model, "filters", path),
        residual_blocks=_positive_int(model, "residual_blocks", path),
        se_ratio=_positive_int(model, "se_ratio", path),
        input=parse_input_format(model.get("input_type", "classic"), path),
        default_activation=_choice(model.get("default_activation", "relu"), TRAINING_ACTIVATIONS, "model.default_activation",
                                   path),
        source=path,
    )
    if "policy" in model:
        config.policy = _choice(model["policy"], TRAINING_POLICY_FORMATS, "policy", path)
    if "value" in model:
        config.value = _choice(model["value"], TRAINING_VALUE_FORMATS, "value", path)
    if "moves_left" in model:
        config.moves_left = _choice(model["moves_left"], TRAINING_MOVES_LEFT_FORMATS, "moves_left", path)
    return config
