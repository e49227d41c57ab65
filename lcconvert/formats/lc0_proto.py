"""Lc0 protobuf networks (`.pb`, `.pb.gz`): reader and writer.

Schema facts: FORMATS.md §1. The reader keeps the parsed message as the
network's `pb_template`; the writer starts from a copy of it and rewrites only
the fields lcconvert models, so attention-era layers, ONNX models, backend
caches and unknown fields survive untouched, and an untouched network
serializes to the very bytes it was read from.
"""
from __future__ import annotations

import functools
import math
import os

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from lcconvert import shapes
from lcconvert._proto import net_pb2
from lcconvert.attention import AttentionWeights
from lcconvert.codecs import Encoding
from lcconvert.constants import FC_SLOTS, HEAD_CONV_SLOTS, INPUT_PLANES, Family
from lcconvert.errors import FormatError, NetworkError
from lcconvert.network import (
    ConvBlock,
    NetFormat,
    Network,
    Residual,
    SEUnit,
    Source,
)
from lcconvert.tensor import Tensor

MAGIC = 0x1C0
# Serialized files start with field 1 (fixed32) = 0x1c0: bytes 0d c0 01 00 00.
MAGIC_PREFIX = b"\x0d\xc0\x01\x00\x00"
LAYER_ENCODING_FIELD = 4  # Weights.Layer.encoding
LAYER_TYPE = "pblczero.Weights.Layer"
LAYER_PARAMS = net_pb2.Weights.Layer.DESCRIPTOR.fields_by_name["params"].number

# Network ConvBlock attribute -> protobuf ConvBlock field.
CONV_FIELDS = {
    "weights": "weights",
    "biases": "biases",
    "means": "bn_means",
    "variances": "bn_stddivs",
    "gammas": "bn_gammas",
    "betas": "bn_betas",
}

# Weights fields that only attention-era or multi-head networks use.
ATTENTION_FIELDS = (
    "ip2_pol_w", "ip2_pol_b", "ip3_pol_w", "ip3_pol_b", "pol_encoder", "ip4_pol_w",
    "ip_emb_w", "ip_emb_b", "encoder", "ip_val_w", "ip_val_b", "ip_mov_w", "ip_mov_b",
    "ip_mult_gate", "ip_add_gate", "smolgen_w", "smolgen_b", "ip_emb_preproc_w",
    "ip_emb_preproc_b", "ip_emb_ln_gammas", "ip_emb_ln_betas", "ip_emb_ffn",
    "ip_emb_ffn_ln_gammas", "ip_emb_ffn_ln_betas", "value_heads", "policy_heads",
)


def looks_like_lc0(data: bytes) -> bool:
    return data[:5] == MAGIC_PREFIX


# -- reading -----------------------------------------------------------------

def _unknown_encoding(layer) -> int | None:
    """An `encoding` value this schema's closed proto2 enum does not know.

    protobuf keeps such a value as an unknown field 4 and reports the field as
    absent, which would silently decode the layer as LINEAR16.
    """
    for f in unknown_fields.UnknownFieldSet(layer):
        if f.field_number == LAYER_ENCODING_FIELD:
            return f.data
    return None


# Net's singular top-level fields (FORMATS.md §1): magic, license, min_version, format, training_params,
# weights, onnx_model. A payload that carries one twice is two messages run together.
SINGULAR_NET_FIELDS = {1: "magic", 2: "license", 3: "min_version", 4: "format", 5: "training_params",
                       10: "weights", 11: "onnx_model"}
# Field numbers of the enums whose unknown values protobuf would hide (closed proto2 enums).
NETWORK_FORMAT_ENUMS = {1: "input", 2: "output", 3: "network", 4: "policy", 5: "value", 6: "moves_left",
                        7: "default_activation"}
WEIGHTS_ENCODING_FIELD = 1  # Format.weights_encoding


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def repeated_singular_field(data: bytes) -> str | None:
    """The name of a singular top-level field that `data` sets twice, or None.

    Why: protobuf merges a repeated singular message field, so `cat a.pb a.pb`
    parses as one network with every repeated field doubled (twice the residual
    blocks) instead of failing. Only the top level is walked, which is a few
    dozen tags for any network. A malformed wire format returns None here and is
    left to the parser's own error.
    """
    seen: set[int] = set()
    try:
        for number, _, _ in top_level_fields(data):
            if number in SINGULAR_NET_FIELDS:
                if number in seen:
                    return SINGULAR_NET_FIELDS[number]
                seen.add(number)
    except ValueError:
        return None
    return None


def top_level_fields(data: bytes):
    """(field number, start, end) of each top-level field of a serialized message, walking tags only;
    ValueError on a malformed wire format."""
    for number, _, start, _, _, end in _fields(data, 0, len(data)):
        yield number, start, end


def _fields(buf, pos: int, end: int):
    """(number, wire type, start, length_at, value_at, end) of each field of the serialized message
    buf[pos:end], walking tags only: a length-delimited field (wire type 2) has its length at
    `length_at` and its value in buf[value_at:end]; ValueError on a malformed wire format."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        length_at = value_at = None
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length_at = pos
            size, value_at = _varint(buf, pos)
            pos = value_at + size
        elif wire == 5:
            pos += 4
        elif wire not in (3, 4):  # 3 and 4 open and close a group (an old unknown field): no payload
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past the end of its message")
        yield number, wire, start, length_at, value_at, pos


def _rewritten(buf, pos: int, end: int, value_of, parts: list) -> None:
    """Append the serialized message buf[pos:end] to `parts`, each length-delimited field's value
    replaced by `value_of(number, value_at, value_end)` where that returns parts of a new value (its
    length is rewritten), copied where it returns None."""
    start = pos
    for number, wire, _, length_at, value_at, field_end in _fields(buf, pos, end):
        if wire == 2:
            new = value_of(number, value_at, field_end)
            if new is not None:
                parts += [buf[start:length_at], _varint_bytes(sum(len(x) for x in new))] + new
                start = field_end
    parts.append(buf[start:end])


def _unknown_enums(msg, numbers: dict[int, str]) -> dict[str, int]:
    """Enum fields whose value this closed proto2 schema does not know, by name: protobuf keeps such a
    value as an unknown field and reports the field as absent (or as its default), hiding it."""
    return {numbers[f.field_number]: f.data for f in unknown_fields.UnknownFieldSet(msg)
            if f.field_number in numbers and isinstance(f.data, int)}


def license_text(msg) -> str | None:
    """The license as text; a license that is not valid UTF-8 shows its bad bytes as U+FFFD (the
    writer keeps the stored bytes unless the text is changed)."""
    if not msg.HasField("license"):
        return None
    value = msg.license
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _tensor(layer, where: str, path: str, keep_params: bool = False, lifted: dict | None = None) -> Tensor:
    encoding_value = layer.encoding if layer.HasField("encoding") else _unknown_encoding(layer) or 0
    try:
        encoding = Encoding(encoding_value) if encoding_value else Encoding.LINEAR16
    except ValueError:
        raise FormatError(path, f"{where}: unknown layer encoding {encoding_value}") from None
    raw = layer.params
    if lifted is not None:
        raw = lifted.get(raw, raw)  # the layer's bytes where `_lift` left a placeholder
    if len(raw) % encoding.bytes_per_value:
        raise FormatError(path, f"{where}: {len(raw)} bytes is not a whole number of {encoding.name} values")
    meta = {"explicit_encoding": layer.HasField("encoding")}
    if len(layer.dims):
        meta["dims"] = tuple(layer.dims)
    min_val = layer.min_val if layer.HasField("min_val") else None
    max_val = layer.max_val if layer.HasField("max_val") else None
    if encoding is Encoding.LINEAR16 and (min_val is None or max_val is None) and raw:
        raise FormatError(path, f"{where}: LINEAR16 layer without min_val/max_val")
    if encoding is Encoding.LINEAR16 and raw and not (math.isfinite(min_val) and math.isfinite(max_val)):
        raise FormatError(path, f"{where}: LINEAR16 range [{min_val:g}, {max_val:g}] is not finite")
    # The tensor holds the bytes; the template keeps the layer without them (every writer fills
    # `params` from the tensor), so a read network holds its payload once, not twice (0.4 GB at
    # 40×512). `read_params` is that very bytes object: a tensor still holding it is unchanged.
    meta["read_params"] = raw
    if not keep_params:
        layer.ClearField("params")
    return Tensor(encoding, raw, min_val, max_val, layer_meta=meta)


def _conv_block(msg, where: str, path: str, keep_params: bool = False, lifted: dict | None = None) -> ConvBlock:
    block = ConvBlock()
    for attr, pb_name in CONV_FIELDS.items():
        if msg.HasField(pb_name):
            setattr(block, attr, _tensor(getattr(msg, pb_name), f"{where}.{attr}", path, keep_params, lifted))
    return block


def _family(net: Network, path: str) -> Family:
    c = net.input.out_channels
    w = net.input.weights
    if c is None or w is None or c == 0:
        raise NetworkError(path, "input: no weights or no batch-norm/bias layers to tell the filter count")
    per_filter, rest = divmod(w.size, 9 * c)
    for family in Family:

        if rest == 0 and per_filter == INPUT_PLANES[family]:
            return family
    raise NetworkError(path, f"input.weights: {w.size} values is not 3×3×{c} filters over 112 (chess) or 18 (Go) planes")


def read(data: bytes, path: str = "<memory>", strict: bool = True, share: bool = False) -> Network:
    """Parse an uncompressed Lc0 protobuf network.

    strict: raise NetworkError on inconsistent shapes (convert/fold); `verify`
    reads with strict=False to list every problem instead. share: the tensors' bytes are
    read-only views of `data`, which they keep alive (`_lift`): no copy of the payload.
    """
    if not data:
        raise FormatError(path, "empty file")
    if not looks_like_lc0(data):
        raise FormatError(path, f"not an Lc0 network: it starts with {data[:5].hex(' ')}, expected 0d c0 01 00 00 (magic 0x1c0)")
    twice = repeated_singular_field(data)
    if twice is not None:
        raise FormatError(path, f"the payload sets `{twice}` twice: two networks run together (concatenated "
                                "files?), which protobuf would silently merge into one")
    lifted, parse = None, data
    if share:
        holder = _Placeholders()
        try:
            parse = _lift(data, holder)
            lifted = holder.raw
        except (ValueError, IndexError):  # malformed: the parser below says how, in its own words
            lifted, parse = None, data
    msg = net_pb2.Net()
    try:
        msg.ParseFromString(parse)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise FormatError(path, f"corrupt or truncated Lc0 protobuf ({e})") from None
    if msg.magic != MAGIC:
        raise FormatError(path, f"wrong magic 0x{msg.magic:x}, expected 0x1c0")

    nf = msg.format.network_format
    fmt = NetFormat(**{f: (getattr(nf, f) if nf.HasField(f) else None) for f in NetFormat.FIELDS})
    for name, value in _unknown_enums(nf, NETWORK_FORMAT_ENUMS).items():
        setattr(fmt, name, value)  # shown as a number, refused where it matters
    weights_encoding = msg.format.weights_encoding if msg.format.HasField("weights_encoding") else None
    weights_encoding = _unknown_enums(msg.format, {WEIGHTS_ENCODING_FIELD: "weights_encoding"}).get(
        "weights_encoding", weights_encoding)
    net = Network(
        format=fmt,
        min_version=(msg.min_version.major, msg.min_version.minor, msg.min_version.patch)
        if msg.HasField("min_version") else None,
        weights_encoding=weights_encoding,
        license=license_text(msg),
        source=Source(path=path, kind="pb"),
        pb_template=msg,
    )
    w = msg.weights
    net.attention_body = (
        fmt.is_attention
        or fmt.network_kind == 5
        or msg.HasField("onnx_model")
        or any(_has(w, f) for f in ATTENTION_FIELDS)
    )
    opaque = fmt.network_kind == 5 or msg.HasField("onnx_model")
    if opaque and lifted is not None:  # kept whole (below): with its layers' own bytes, not placeholders
        msg = net_pb2.Net()
        msg.ParseFromString(data)
        w, lifted = msg.weights, None
        net.pb_template = msg
    if net.attention_body and opaque:
        # ONNX: kept whole in pb_template (its writer puts back no layer); lcconvert neither evaluates nor
        # folds it.
        if w.HasField("input"):
            net.input = _conv_block(w.input, "input", path, keep_params=True)
        return net
    if net.attention_body:
        net.attention = _attention(w, path, lifted)
    if not msg.HasField("weights"):
        raise NetworkError(path, "no weights in the file")
    net.input = _conv_block(w.input, "input", path, lifted=lifted)
    for i, r in enumerate(w.residual):
        res = Residual(_conv_block(r.conv1, f"residual.{i}.conv1", path, lifted=lifted),
                       _conv_block(r.conv2, f"residual.{i}.conv2", path, lifted=lifted))
        if r.HasField("se"):
            res.se = SEUnit(**{f: _tensor(getattr(r.se, f), f"residual.{i}.se.{f}", path, lifted=lifted)
                               for f in SEUnit.FIELDS if r.se.HasField(f)})
        net.residual.append(res)
    for slot in HEAD_CONV_SLOTS:
        if w.HasField(slot):
            setattr(net, slot, _conv_block(getattr(w, slot), slot, path, lifted=lifted))
    for fc in FC_SLOTS:
        if w.HasField(fc):
            setattr(net, fc, _tensor(getattr(w, fc), fc, path, lifted=lifted))
    net.family = _family(net, path) if net.attention is None or net.input.present else Family.CHESS
    if strict:
        shapes.check(net)
    net.pb_template = _compacted(msg)
    return net


def _compacted(msg) -> object:
    """A copy of `msg`, whose layers' bytes have moved into the tensors: the parse's own memory, which
    keeps cleared bytes until the message is gone (upb allocates a message in one arena), goes with
    `msg` — measured on a 20×256 network: 103 MB in use after reading, 54 MB with this copy."""
    out = net_pb2.Net()
    out.CopyFrom(msg)
    return out


def _attention(w, path: str, lifted: dict | None = None) -> AttentionWeights:
    """Every Layer under the attention-era Weights fields, by dotted path (see attention.py)."""
    tensors: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    messages: set[str] = set()

    def walk(msg, prefix: str, only=None) -> None:
        for fd, value in msg.ListFields():
            if only is not None and fd.name not in only:
                continue
            name = prefix + fd.name
            if fd.message_type is None:
                if isinstance(value, int) and not isinstance(value, bool):
                    counts[name] = value
            elif fd.message_type.full_name == LAYER_TYPE:
                tensors[name] = _tensor(value, name, path, lifted=lifted)
            elif fd.is_repeated:
                for i, item in enumerate(value):
                    messages.add(f"{name}.{i}")
                    walk(item, f"{name}.{i}.")
            else:
                messages.add(name)
                walk(value, name + ".")

    walk(w, "", only=set(ATTENTION_FIELDS) | {"headcount", "pol_headcount"})
    return AttentionWeights(tensors=tensors, counts=counts, messages=frozenset(messages))


def _has(msg, name: str) -> bool:
    value = getattr(msg, name)
    if hasattr(value, "__len__") and not hasattr(value, "ListFields"):
        return len(value) > 0
    return msg.HasField(name)


# -- writing -----------------------------------------------------------------

def _fill_layer(layer, tensor: Tensor, encoding: Encoding | None, params=None) -> None:
    """Write `tensor` into `layer`; `params(layer, tensor, raw)`, when given, puts the bytes there instead
    (`_unless_read`, `_Placeholders.put`)."""
    raw, lo, hi = tensor.encoded(encoding)
    target = tensor.encoding if encoding is None else encoding
    if params is None:
        layer.params = raw
    else:
        params(layer, tensor, raw)
    explicit = tensor.layer_meta.get("explicit_encoding", False) or target is not Encoding.LINEAR16
    if explicit:
        layer.encoding = int(target)
    else:
        layer.ClearField("encoding")
    for name, value in (("min_val", lo), ("max_val", hi)):
        if value is None:
            layer.ClearField(name)
        else:
            setattr(layer, name, value)
    dims = tensor.layer_meta.get("dims")
    if dims is not None and tuple(layer.dims) != tuple(dims):
        del layer.dims[:]
        layer.dims.extend(dims)


def _set_layer(parent, name: str, tensor: Tensor | None, encoding: Encoding | None, params=None) -> None:
    if tensor is None:
        parent.ClearField(name)
    else:
        _fill_layer(getattr(parent, name), tensor, encoding, params)


def _set_conv(parent, name: str, block: ConvBlock | None, encoding: Encoding | None, params=None) -> None:
    if block is None:
        parent.ClearField(name)
        return
    msg = getattr(parent, name)
    msg.SetInParent()
    for attr, pb_name in CONV_FIELDS.items():
        _set_layer(msg, pb_name, getattr(block, attr), encoding, params)


def write(net: Network, encoding: Encoding | None = None) -> bytes:
    """Serialize `net`; `encoding` re-encodes every tensor (None keeps each tensor's own).

    The message is serialized with a 16-byte placeholder in each layer's `params`, and the tensors'
    bytes are spliced in on the wire (`_splice`): the bytes are copied once, into the result. upb
    copied them into the message, serialized into its arena and copied that into a bytes object —
    three copies of a 0.4 GB payload at 40×512 alive at once, and 1.6–5 s."""
    holder = _Placeholders()
    skeleton = _message(net, encoding, params=holder.put).SerializeToString()
    if not holder.raw:
        return skeleton
    parts: list = []
    _splice(skeleton, holder, parts)
    return b"".join(parts)


class _Placeholders:
    """Stand-ins for layers' bytes in a serialized message: a random 12-byte prefix of this write
    (no real field holds it by chance) and the layer's number."""

    def __init__(self):
        self.prefix = os.urandom(12)
        self.raw: dict[bytes, bytes] = {}

    def token(self, raw) -> bytes:
        token = self.prefix + len(self.raw).to_bytes(4, "little")
        self.raw[token] = raw
        return token

    def put(self, layer, _tensor, raw: bytes) -> None:
        layer.params = self.token(raw)


def _varint_bytes(n: int) -> bytes:
    """`n` as a protobuf varint (the inverse of `_varint`)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _splice(msg: bytes, holder: _Placeholders, parts: list) -> None:
    """Append `msg` (serialized) to `parts` with every placeholder replaced by its bytes: a length-
    delimited field that is a placeholder becomes those bytes, one that contains placeholders is a
    message spliced recursively, anything else is copied as it is."""
    def value_of(_number, at, end):
        value = msg[at:end]
        if len(value) == len(holder.prefix) + 4 and value in holder.raw:
            return [holder.raw[value]]
        if len(value) > len(holder.prefix) and holder.prefix in value:
            inner: list = []
            _splice(value, holder, inner)
            return inner
        return None

    _rewritten(msg, 0, len(msg), value_of, parts)


def _lift(data: bytes, holder: _Placeholders) -> bytes:
    """`data` (a serialized Net) with every Layer's params replaced by a placeholder, whose bytes
    `holder` maps to a read-only view of `data`: the reverse of `_splice`. protobuf then parses a
    message of kilobytes, and the tensors share `data` instead of each holding a copy — the re-read of
    a 0.4 GB payload no longer holds it three times (the bytes, the parser's arena, the copies).
    ValueError or IndexError on a malformed wire format (the caller lets the parser report it)."""
    parts: list = []
    _lift_into(memoryview(data), 0, len(data), net_pb2.Net.DESCRIPTOR, holder, parts)
    return b"".join(parts)


def _lift_into(buf: memoryview, pos: int, end: int, desc, holder: _Placeholders, parts: list) -> None:
    is_layer = desc.full_name == LAYER_TYPE

    def value_of(number, at, value_end):
        if is_layer and number == LAYER_PARAMS:
            return [holder.token(buf[at:value_end])]
        field = desc.fields_by_number.get(number)
        inner_type = field.message_type if field is not None else None
        if inner_type is None or not (inner_type.full_name == LAYER_TYPE or inner_type.full_name in _holding_layers()):
            return None  # a scalar, a string, an unknown field or a message without layers: as it is
        inner: list = []
        _lift_into(buf, at, value_end, inner_type, holder, inner)
        return inner

    _rewritten(buf, pos, end, value_of, parts)


@functools.cache
def _holding_layers() -> frozenset:
    """Full names of the message types that hold a Layer, directly or further down."""
    holding: set[str] = set()

    def visit(desc, path: tuple) -> bool:
        found = False
        for field in desc.fields:
            t = field.message_type
            if t is None or t.full_name in path:
                continue
            if t.full_name == LAYER_TYPE or t.full_name in holding or visit(t, path + (t.full_name,)):
                found = True
        if found:
            holding.add(desc.full_name)
        return found

    visit(net_pb2.Net.DESCRIPTOR, (net_pb2.Net.DESCRIPTOR.full_name,))
    return frozenset(holding)


def same_message(net: Network, encoding: Encoding | None = None) -> bool:
    """Whether `write(net, encoding)` would serialize the very message `net` was read from.

    Then the file `net` came from is, byte for byte, a valid serialization of the output, and a
    writer can copy it instead of serializing: upb's SerializeToString takes 1.6–5 s for a 40×512
    payload (0.4 GB), building and comparing the message ~0.5 s. The comparison is the writer's own
    result against the parsed input — every field, unknown fields included — not a second set of
    rules about what the writer would change."""
    if net.pb_template is None:
        return False
    return _message(net, encoding, params=_unless_read) == net.pb_template


def _unless_read(layer, tensor: Tensor, raw: bytes) -> None:
    """Bytes identical to the ones read stay out of the layer, as they are out of the template."""
    if raw is not tensor.layer_meta.get("read_params"):
        layer.params = raw


def _message(net: Network, encoding: Encoding | None, params=None) -> object:
    """The Net message `write` serializes: the template `net` was read from, with every field rewritten
    (`params`: how each layer's bytes are put, see `_fill_layer`)."""
    msg = net_pb2.Net()
    if net.pb_template is not None:
        msg.CopyFrom(net.pb_template)
    msg.magic = MAGIC
    if net.license is None:
        msg.ClearField("license")
    elif net.license != license_text(msg):  # an unchanged license keeps its stored bytes
        msg.license = net.license
    if net.min_version is None:
        msg.ClearField("min_version")
    else:
        msg.min_version.major, msg.min_version.minor, msg.min_version.patch = net.min_version
    if net.weights_encoding is None:
        msg.format.ClearField("weights_encoding")
    elif _unknown_enums(msg.format, {WEIGHTS_ENCODING_FIELD: "weights_encoding"}).get(
            "weights_encoding") != net.weights_encoding:
        msg.format.weights_encoding = net.weights_encoding
    nf = msg.format.network_format
    hidden = _unknown_enums(nf, NETWORK_FORMAT_ENUMS)
    for f in NetFormat.FIELDS:
        value = getattr(net.format, f)
        if value is None:
            nf.ClearField(f)
        elif hidden.get(f) != value:  # an unknown value stays as the template stores it
            setattr(nf, f, value)
    if not msg.format.network_format.ListFields():
        msg.format.ClearField("network_format")
    if not msg.format.ListFields():
        msg.ClearField("format")
    if net.attention_body and net.attention is None:
        if encoding is not None:
            raise NetworkError(net.source.path, "ONNX network: re-encoding its layers is not supported")
        return msg

    w = msg.weights
    if net.attention is None or net.input.present:
        # An attention body has no input block: writing an empty one would add a field.
        _set_conv(w, "input", net.input, encoding, params)
    del w.residual[len(net.residual):]
    while len(w.residual) < len(net.residual):
        w.residual.add()
    for res, pb_res in zip(net.residual, w.residual):
        _set_conv(pb_res, "conv1", res.conv1, encoding, params)
        _set_conv(pb_res, "conv2", res.conv2, encoding, params)
        if res.se is None:
            pb_res.ClearField("se")
        else:
            pb_res.se.SetInParent()
            for f in SEUnit.FIELDS:
                _set_layer(pb_res.se, f, getattr(res.se, f), encoding, params)
    for slot in HEAD_CONV_SLOTS:
        _set_conv(w, slot, getattr(net, slot), encoding, params)
    for fc in FC_SLOTS:
        _set_layer(w, fc, getattr(net, fc), encoding, params)
    if net.attention is not None:
        _set_attention(w, net.attention, encoding, params)
    return msg


def _set_attention(w, att: AttentionWeights, encoding: Encoding | None, params=None) -> None:
    """Put every attention-era tensor back at its path (the template holds the messages around them)."""
    for path, tensor in att.tensors.items():
        msg = w
        parts = path.split(".")
        for here, after in zip(parts[:-1], parts[1:]):
            if here.isdigit():
                continue
            child = getattr(msg, here)
            if after.isdigit():
                while len(child) <= int(after):
                    child.add()
                child = child[int(after)]
            msg = child
        _fill_layer(getattr(msg, parts[-1]), tensor, encoding, params)
    for path, value in att.counts.items():
        msg = w
        parts = path.split(".")
        for here in parts[:-1]:
            msg = msg[int(here)] if here.isdigit() else getattr(msg, here)
        if getattr(msg, parts[-1]) != value:
            setattr(msg, parts[-1], value)
