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
    if net.attention_body and net.attention is None:
        info.update(blocks=None, filters=None, se_channels=0, policy=fmt["policy"], value=fmt["value"],
                    moves_left=fmt["moves_left"], encodings=None, parameters=None)
        return info
    if net.attention is not None:
        info["attention"] = attention_info(net)
    if net.has_attention_body:
        info.update(blocks=0, filters=None, se_channels=0, policy=fmt["policy"].removeprefix("POLICY_"),
                    value=fmt["value"].removeprefix("VALUE_"), moves_left=fmt["moves_left"] == "MOVES_LEFT_V1",
                    activation=fmt["default_activation"].removeprefix("DEFAULT_ACTIVATION_"),
                    encodings=net.encodings, parameters=net.parameters)
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


def _size(net: Network, path: str) -> int | None:
    t = net.attention.get(path)
    return t.size if t is not None else None


def _encoder_info(net: Network, prefix: str, embedding: int | None) -> dict | None:
    """d_model, FFN width and smolgen sizes of the first encoder layer under `prefix`."""
    att = net.attention
    if not att.repeated(prefix):
        return None
    e = f"{prefix}.0"
    info = {"layers": att.repeated(prefix), "d_model": _size(net, f"{e}.mha.q_b"),
            "ffn": _size(net, f"{e}.ffn.dense1_b"), "smolgen": None}
    if att.has(f"{e}.mha.smolgen"):
        compress = _size(net, f"{e}.mha.smolgen.compress")
        info["smolgen"] = {"channels_per_square": compress // embedding if compress and embedding else None,
                           "hidden": _size(net, f"{e}.mha.smolgen.dense1_b"),
                           "generated": _size(net, f"{e}.mha.smolgen.dense2_b")}
    return info


def attention_info(net: Network) -> dict:
    """The attention architecture as lc0 runs it (after its loader's rewrites), and the heads it offers."""
    from lcconvert import forward_attention as fa

    att, fmt = net.attention, fa.lc0_format(net)
    embedding = _size(net, "ip_emb_b")
    info: dict = {
        "body": "attention" if fmt.attention_body else "convolution",
        "embedding": embedding if fmt.attention_body else None,
        "input_embedding": ("PE_DENSE" if fmt.pe_dense else "PE_MAP") if fmt.attention_body else None,
        "pe_dense_channels": (_size(net, "ip_emb_preproc_b") or 0) // 64 if fmt.pe_dense else None,
        "gating": att.has("ip_mult_gate") and att.has("ip_add_gate"),
        "heads": att.count("headcount") if fmt.attention_body else None,
        "encoder": _encoder_info(net, "encoder", embedding),
        "activations": {"default": fmt.default_activation, "ffn": fmt.ffn_activation, "smolgen": fmt.smolgen_activation},
        "policy_heads": fa.policy_head_names(net),
        "value_heads": fa.value_head_names(net),
        "lc0_rewrites": list(fmt.rewrites),
    }
    if not fmt.attention_body:
        width = net.ip_pol_b.size if net.ip_pol_b is not None else None
        info["policy_encoder"] = _encoder_info(net, "pol_encoder", width)
        info["policy_encoder_heads"] = att.count("pol_headcount")
    return info


def _render_attention(a: dict) -> list[str]:
    lines = []
    enc = a.get("encoder")
    if a["body"] == "attention":
        emb = a["input_embedding"] + (f" (+{a['pe_dense_channels']} channels/square from the piece planes)"
                                      if a["input_embedding"] == "PE_DENSE" else "")
        lines.append(f"  body          attention: {enc['layers'] if enc else 0} encoder layers, embedding "
                     f"{a['embedding']}, {a['heads']} heads, {emb}" + (", input gating" if a["gating"] else ""))
    else:
        enc = a.get("policy_encoder")
    if enc:
        sg = enc["smolgen"]
        smolgen = (f"smolgen {sg['channels_per_square']} ch/square → {sg['hidden']} → {sg['generated']} "
                   f"({a['activations']['smolgen']})") if sg else "no smolgen"
        where = "" if a["body"] == "attention" else (f"attention policy: {enc['layers']} encoder layer(s), "
                                                     f"{a['policy_encoder_heads']} heads, ")
        lines.append(f"  {'encoders':<13} {where}d_model {enc['d_model']}, FFN {enc['ffn']} "
                     f"({a['activations']['ffn']}), " + smolgen)
    lines.append(f"  heads         policy: {', '.join(a['policy_heads'])}; value: {', '.join(a['value_heads'])} "
                 "(lc0's names, for --policy-head / --value-head)")
    lines += [f"  lc0 reads     {r}" for r in a["lc0_rewrites"]]
    return lines


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
    if info["attention_body"] and "attention" not in info:
        lines.append("  body          attention network: read and written without loss; not a batch-norm network")
        return "\n".join(lines)
    if info.get("attention", {}).get("body") == "attention":
        lines += _render_attention(info["attention"])
        ml = "moves-left V1" if info["moves_left"] else "no moves-left"
        lines.append(f"  outputs       policy {info['policy'].lower()}, value {info['value'].lower()}, {ml}")
        lines.append(f"  encodings     {', '.join(info['encodings'])}")
        lines.append(f"  parameters    {info['parameters']:,}")
        return "\n".join(lines)
    se = f", SE {info['se_channels']} channels" if info["se_channels"] else ""
    lines.append(f"  body          {info['blocks']} block{'' if info['blocks'] == 1 else 's'} x {info['filters']} filters{se}, {info['activation'].lower()}")
    ml = "moves-left V1" if info["moves_left"] else "no moves-left"
    lines.append(f"  heads         policy {info['policy'].lower()}, value {info['value'].lower()}, {ml}")
    if "attention" in info:
        lines += _render_attention(info["attention"])
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
