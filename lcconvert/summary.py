"""What `inspect` shows about a network's architecture (what `lc0 describenet` shows, and more)."""
from __future__ import annotations

from lcconvert import versions
from lcconvert._proto import net_pb2
from lcconvert.constants import Family
from lcconvert.network import Network

_NF = net_pb2.NetworkFormat


def enum_name(field: str, value: int | None) -> str | None:
    if value is None:
        return None
    enum = _NF.DESCRIPTOR.fields_by_name[field].enum_type
    v = enum.values_by_number.get(value)
    return v.name if v is not None else f"UNKNOWN_{value}"


def describe(net: Network) -> dict:
    """A JSON-ready description; keys documented in the README."""
    f = net.format
    resolved = {
        "input": f.input or 1, "output": f.output or 1, "network": f.network_kind,
        "policy": f.policy_kind, "value": f.value_kind, "moves_left": f.moves_left_kind,
        "default_activation": f.activation,
    }
    fmt = {k: enum_name(k, v) for k, v in resolved.items()}
    go = net.family is Family.GO
    if go:
        # Lc0's NetworkFormat does not describe Go nets; say what Leela Zero's layout is.
        fmt["input"] = "LEELA_ZERO_18_PLANE"
    info: dict = {
        "file": net.source.path,
        "file_kind": net.source.kind,
        "compressed": net.source.compressed,
        "file_size": net.source.size_bytes,
        "family": net.family.value,
        "board": f"{net.board_size}x{net.board_size}",
        "input_planes": net.input_planes,
        "format": fmt,
        "format_fields_present": [k for k in f.FIELDS if getattr(f, k) is not None],
        "min_version": versions.fmt(net.min_version) if net.min_version else None,
        # lc0 versions mean nothing to Leela Zero engines.
        "required_min_version": None if go else versions.fmt(versions.required(net)),
        "weights_encoding": "LINEAR16" if net.weights_encoding == 1 else net.weights_encoding,
        "license": net.license,
        "attention_body": net.attention_body,
    }
    if net.source.text_version is not None:
        info["text_version"] = net.source.text_version
    if net.attention_body:
        info.update(blocks=None, filters=None, se_channels=0, policy=fmt["policy"], value=fmt["value"],
                    moves_left=fmt["moves_left"], encodings=None, parameters=None)
        return info
    info.update(
        blocks=net.blocks,
        filters=net.filters,
        se_channels=net.se_channels,
        policy=fmt["policy"].removeprefix("POLICY_"),
        value=fmt["value"].removeprefix("VALUE_"),
        moves_left=net.has_moves_left,
        activation=fmt["default_activation"].removeprefix("DEFAULT_ACTIVATION_"),
        encodings=net.encodings,
        parameters=net.parameters,
        conv_fields={name: list(block.present) for name, block in net.conv_blocks()},
    )
    return info


def render(info: dict) -> str:
    """Human-readable text of `describe()`."""
    lines = [f"{info['file']}"]
    size = info.get("file_size")
    kind = info["file_kind"] + (" (gzip)" if info["compressed"] else "")
    lines.append(f"  file          {kind}" + (f", {size:,} bytes" if size else ""))
    if "text_version" in info:
        lines.append(f"  text version  {info['text_version']}")
    lines.append(f"  family        {info['family']}, {info['board']} board, {info['input_planes']} input planes")
    fmt = info["format"]
    lines.append("  format        " + ", ".join(f"{k}={v}" for k, v in fmt.items()))
    if info["required_min_version"] is None:
        lines.append("  min_version   n/a (Leela Zero Go network: lc0 versions do not apply)")
    else:
        lines.append(f"  min_version   {info['min_version'] or 'absent'} "
                     f"(content needs {info['required_min_version']})")
    if info["attention_body"]:
        lines.append("  body          attention network: read and written without loss; not a batch-norm network")
        return "\n".join(lines)
    se = f", SE {info['se_channels']} channels" if info["se_channels"] else ""
    lines.append(f"  body          {info['blocks']} blocks x {info['filters']} filters{se}, {info['activation'].lower()}")
    ml = "moves-left V1" if info["moves_left"] else "no moves-left"
    lines.append(f"  heads         policy {info['policy'].lower()}, value {info['value'].lower()}, {ml}")
    lines.append(f"  encodings     {', '.join(info['encodings'])}")
    lines.append(f"  parameters    {info['parameters']:,}")
    lines.append("  conv blocks   fields present")
    groups: dict[tuple, list[str]] = {}
    for name, fields in info["conv_fields"].items():
        groups.setdefault(tuple(fields), []).append(name)
    for fields, names in groups.items():
        where = names[0] if len(names) == 1 else f"{names[0]} … {names[-1]} ({len(names)} blocks)"
        lines.append(f"    {where:<38} {' '.join(fields)}")
    return "\n".join(lines)
