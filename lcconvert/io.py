"""Networks to and from bytes in every format: the one door between the model and `formats/`.

The only place that dispatches on formats: by content for input (gzip or not,
protobuf magic or a text version line, a TF checkpoint folder/prefix), by name or
`to=` for output. Writing files (OUT rules, atomic rename, verification) is the
pipeline's; this module turns bytes into a Network and back.
"""
from __future__ import annotations

from lcconvert import files, progress
from lcconvert.codecs import Encoding
from lcconvert.constants import LINEAR16_FORMAT, Family
from lcconvert.errors import FormatError, UnsupportedError, refuse_problems
from lcconvert.formats import detect, gz, lc0_proto, training_data
from lcconvert.network import Network
from lcconvert.transforms import reencode, settle_min_version

PB, TEXT = detect.PB, detect.TEXT


def load(path: str, strict: bool = True, checkpoint_options: dict | None = None) -> Network:
    """Read a network from `path` ('-' = stdin). strict=False keeps inconsistent shapes for `verify`."""
    if detect.is_checkpoint_path(path):
        from lcconvert.formats import tf_checkpoint

        return tf_checkpoint.read(path, **(checkpoint_options or {}))
    with progress.stage(f"reading {path}", total=3) as bar:
        raw = files.read_file(path)
        if not raw:
            raise FormatError(path, "empty file")
        bar.update(1)
        compressed = gz.is_gzip(raw)
        size = len(raw)
        data = gz.gunzip(raw, path) if compressed else raw
        del raw  # the compressed bytes are not needed once inflated (peak memory of big networks)
        if not data:
            raise FormatError(path, "empty after decompression")
        bar.update(1)
        net = _parse_loaded(data, path, strict)
        bar.update(1)
    net.source.compressed = compressed
    net.source.size_bytes = size
    if net.source.kind == TEXT:
        # What identifies a text file's payload for the pipeline (protobuf payloads are compared as
        # messages, lc0_proto.same_message, so they need no hash).
        net.source.payload_digest = payload_digest(data)
    del data
    if strict and net.attention is not None:
        # Attention layers: every shape as lc0 would use it, each problem naming its layer (sizes only).
        from lcconvert.forward_attention import structure_problems

        refuse_problems(path, structure_problems(net, decode=False))
    return net


def _parse_loaded(data: bytes, path: str, strict: bool) -> Network:
    """The network in uncompressed `data`, by content: an Lc0 protobuf or text weights."""
    kind = detect.sniff(data)
    if kind == PB:
        # The tensors share the inflated payload (no copy, no parser arena holding it a second time).
        net = lc0_proto.read(data, path, strict=strict, share=True)
    elif kind == TEXT:
        from lcconvert.formats import text

        net = text.read(data, path, strict=strict)
    else:
        raise FormatError(path, "not a network: neither an Lc0 protobuf (magic 0x1c0) nor a text weights file "
                                "(a version number on the first line)")
    return net


def payload_digest(data: bytes) -> bytes:
    """What identifies uncompressed network bytes: SHA-256, which CPUs with SHA extensions hash at ~1.7 GB/s
    (0.23 s for a 40×512 payload; BLAKE2b took twice as long here)."""
    import hashlib

    return hashlib.sha256(data).digest()


def load_planes(path: str):
    """Input planes from a `.npy` file or an `.npz` file's `planes` array ('-' = standard input)."""
    from lcconvert.formats import planes

    return planes.read(files.read_file(path, what="a planes file (.npy or .npz)"), path)


def output_kind(path: str, to: str | None) -> str:
    if to:
        return {"pb": PB, "txt": TEXT, "text": TEXT}[to]
    name = path.lower()
    return TEXT if name.endswith((".txt", ".txt.gz")) else PB


def wants_gzip(path: str, kind: str) -> bool:
    """`.gz` names are compressed; protobuf output is compressed unless named `.pb` (engines read both)."""
    name = path.lower()
    if name.endswith(".gz"):
        return True
    if kind == PB:
        return not name.endswith(".pb")
    return False


def default_encoding(net: Network, kind: str, backwards_compatible: bool = False) -> Encoding | None:
    """The encoding an output gets when the user names none.

    Files keep each layer's own encoding (a round trip is exact). Protobuf output
    that must be backwards compatible (fold-bias), and any network from a TF
    checkpoint (float32 training variables, which lczero-training's own export
    writes as LINEAR16), get LINEAR16: the form every engine reads (layers in any
    other encoding need lc0 ≥ 0.33). Layers already LINEAR16 keep their bytes.
    One exception, for every command alike: a Go network in a protobuf is a container
    only lcconvert reads (no engine runs it), so its layers stay as they are — a
    text → pb → text round trip keeps every float32 value.
    """
    if net.has_attention_body:
        # No engine without attention support reads these at all: keep every layer as stored.
        return None
    if net.family is Family.GO:
        return None
    if kind == PB and (backwards_compatible or net.source.kind == "checkpoint"):
        return Encoding.LINEAR16
    return None


def serialize(net: Network, kind: str, encoding: Encoding | None = None) -> tuple[bytes, list[str]]:
    """The uncompressed bytes of `net` in `kind`, and notes for the user."""
    if kind == PB:
        net, notes = _as_written(net, encoding)
        return lc0_proto.write(net), notes
    if encoding is not None:
        raise UnsupportedError(net.source.path, f"--encoding {encoding.label} applies to protobuf output; "
                                                "text weights are always written as decimal float32")
    from lcconvert.formats import text

    return text.write(net), []


def rewrites_input(net: Network, kind: str, encoding: Encoding | None = None) -> bool:
    """Whether writing `net` as `kind` in `encoding` changes what its input file holds (False: the
    input's own bytes are the output, and `serialize` need not run). Protobuf only: a message
    comparison (lc0_proto.same_message), ~0.5 s at 40×512 against 1.6–5 s of serializing."""
    if kind != PB or net.source.kind != PB:
        return True
    written, notes = _as_written(net, encoding)
    return bool(notes) or not lc0_proto.same_message(written)


def _as_written(net: Network, encoding: Encoding | None) -> tuple[Network, list[str]]:
    """`net` as the protobuf writer receives it: re-encoded or with its min_version settled, its
    weights_encoding set; and notes for the user."""
    notes: list[str] = []
    if encoding is not None and net.attention_body and net.attention is None:
        raise UnsupportedError(net.source.path, "ONNX network: re-encoding its layers is not supported")
    if encoding is not None:
        net, notes = reencode(net, encoding)
    else:
        net = net.copy()
        notes = settle_min_version(net)
    if net.family is Family.GO:
        notes.append("a Go network in an Lc0 protobuf is a container only lcconvert reads; no engine runs it "
                     "(write .txt or .txt.gz for Leela Zero)")
    if net.weights_encoding in (None, 0):
        # lc0 before v0.33 refuses a file whose Format.weights_encoding is not LINEAR16 (absent
        # is UNKNOWN); every later one accepts it beside per-layer encodings.
        if net.pb_template is not None:
            notes.append("format.weights_encoding was absent: written as LINEAR16, which every lc0 reads")
        net.weights_encoding = LINEAR16_FORMAT
    return net, notes


def parse(data: bytes, kind: str, path: str) -> Network:
    """A network from uncompressed bytes already known to be `kind` (the pipeline's re-read); a
    protobuf network's tensors share `data` (lc0_proto.read's `share`), which must not change."""
    if kind == PB:
        return lc0_proto.read(data, path, share=True)
    from lcconvert.formats import text

    return text.read(data, path)


def pack(data: bytes, path: str, kind: str, level: int | None = None) -> bytes:
    """The bytes of the file `path`: `data` gzipped (at `kind`'s level unless given) when the name asks."""
    if wants_gzip(path, kind):
        return gz.gzip_bytes(data, gz.level_for(kind) if level is None else level)
    return data


def read_training_chunk(path: str) -> training_data.Chunk:
    """One lc0 training-data file (gzip or plain), decoded and validated (formats/training_data.py)."""
    return training_data.read(path)
