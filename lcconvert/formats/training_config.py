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
import reprlib
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
# Limits of a training YAML (see _parse_yaml): real ones are ~2 KB, 3 levels deep, without aliases.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 64


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
        raise FormatError(source, f"{what}: {_short(value)} is not one of {', '.join(table)}")
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
    raise FormatError(source, f"{what}: unknown value {_short(value)} (expected {choices})")


def parse_input_format(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_INPUT_FORMATS, "input format", source, numbers=True)


def parse_policy(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_POLICY_FORMATS, "policy", source, numbers=True)


def parse_value(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_VALUE_FORMATS, "value", source, numbers=True)


def parse_moves_left(value, source: str | None = None) -> int:
    return _choice(value, TRAINING_MOVES_LEFT_FORMATS, "moves-left", source, numbers=True)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 40, 40


def _short(value) -> str:
    """A value as it may appear in a one-line message (a YAML value can be a huge nested structure)."""
    text = _REPR.repr(value)  # bounded: never walks all of a shared (aliased) structure
    return text if len(text) <= 60 else text[:57] + "..."


def _whole_number(model: dict, key: str, source: str, minimum: int = 0) -> int | None:
    value = model.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise FormatError(source, f"model.{key}: {_short(value)} is not a {kind} whole number")
    return value


def _parse_yaml(raw: bytes, path: str):
    """The YAML document in `raw`, with every failure one short line.

    Why the checks before PyYAML builds anything: its composer recurses once per
    nesting level (deep nesting ends in RecursionError), and its errors span
    several lines and quote the input. A training YAML is a few kilobytes, two or
    three levels deep, with no anchors needed; the limits below leave it room.
    """
    import yaml

    if len(raw) > MAX_YAML_BYTES:
        raise FormatError(path, f"{len(raw):,} bytes is too large for a training YAML (limit {MAX_YAML_BYTES:,})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not UTF-8 text (byte {e.start})") from None
    bad = next((i for i, ch in enumerate(text) if ord(ch) < 32 and ch not in "\t\n\r"), None)
    if bad is not None:
        line = text.count("\n", 0, bad) + 1
        raise FormatError(path, f"control character {ord(text[bad]):#04x} at line {line}: not a YAML text file")
    try:
        depth = aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise FormatError(path, f"nested deeper than {MAX_YAML_DEPTH} levels: not a training YAML")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise FormatError(path, f"more than {MAX_YAML_ALIASES} YAML aliases: not a training YAML")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())[:120]
        raise FormatError(path, f"not valid YAML{where}: {problem}") from None


def load(path: str) -> ModelConfig:
    """Read the `model:` section of an lczero-training YAML file.

    Keys the training code gives a default are given the same default here only
    where the checkpoint cannot show the truth: `input_type` (absent → classic,
    as the training code assumed) and `default_activation` (absent → relu).
    Head formats left out stay None: the reader infers them from the weights.
    """
    try:
        import yaml  # noqa: F401  (the dependency check; _parse_yaml uses it)
    except ImportError:
        raise DependencyError(path, f"reading a training YAML needs pyyaml: {INSTALL_HINT}") from None
    from lcconvert.files import read_file

    path = os.fspath(path)
    document = _parse_yaml(read_file(path, what="a training YAML file"), path)
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise FormatError(path, "no `model:` section (expected lczero-training's training YAML)")
    model = document["model"]
    if _whole_number(model, "encoder_layers", path):
        raise UnsupportedError(path, "model.encoder_layers: attention-body networks are not batch-norm networks "
                                     "and are not read from checkpoints")
    config = ModelConfig(
        filters=_whole_number(model, "filters", path, minimum=1),
        residual_blocks=_whole_number(model, "residual_blocks", path),
        se_ratio=_whole_number(model, "se_ratio", path, minimum=1),
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
