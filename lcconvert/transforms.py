"""Network → Network maps other than batch-norm folding (that is fold.py)."""
from __future__ import annotations

from lcconvert import versions
from lcconvert.codecs import Encoding, check_encodable
from lcconvert.constants import FC_SLOTS, HEAD_CONV_SLOTS
from lcconvert.errors import NetworkError
from lcconvert.network import Network


def map_tensors(net: Network, fn) -> Network:
    """A copy of `net` with every tensor t replaced by fn(name, t)."""
    new = net.copy()
    new.input = _map_block(new.input, "input", fn)
    for i, r in enumerate(new.residual):
        r.conv1 = _map_block(r.conv1, f"residual.{i}.conv1", fn)
        r.conv2 = _map_block(r.conv2, f"residual.{i}.conv2", fn)
        if r.se is not None:
            for f, t in list(r.se.tensors()):
                setattr(r.se, f, fn(f"residual.{i}.se.{f}", t))
    for slot in HEAD_CONV_SLOTS:
        block = getattr(new, slot)
        if block is not None:
            setattr(new, slot, _map_block(block, slot, fn))
    for fc in FC_SLOTS:
        t = getattr(new, fc)
        if t is not None:
            setattr(new, fc, fn(fc, t))
    if new.attention is not None:
        new.attention.tensors = {path: fn(path, t) for path, t in new.attention.tensors.items()}
    return new


def stored_form(net: Network, encoding: Encoding | None) -> Network:
    """`net` as a writer in `encoding` (None: each tensor's own) will store it: each tensor that already
    holds those bytes keeps them alone, without the float values it was built from (Tensor.stored).
    Why: a transform's output (a fold) holds both its float32 values and their encoding — on a 40×512
    network 0.8 GB of floats that the writer never reads; written and re-read, it is the bytes."""
    return map_tensors(net, lambda _name, t: stored_tensor(t, encoding))


def stored_tensor(t, encoding: Encoding | None):
    """`t` as its bytes alone when those bytes are what a writer in `encoding` writes (stored_form)."""
    return t.stored() if encoding is None or t.encoding is encoding else t


def _map_block(block, name, fn):
    return block.replace(**{f: fn(f"{name}.{f}", t) for f, t in block.tensors()})


def reencode(net: Network, encoding: Encoding) -> tuple[Network, list[str]]:
    """Every tensor in `encoding`; returns the network and notes for the user.

    A file with any non-LINEAR16 layer gets min_version ≥ 0.33, because older
    engines decode every layer as LINEAR16 and would read garbage.
    """
    encoding = Encoding(encoding)

    def convert(name, t):
        if t.encoding is encoding and t.raw is not None:
            return t
        why = check_encodable(t.values, encoding)
        if why:
            raise NetworkError(net.source.path, f"{name}: cannot encode as {encoding.name}: {why}")
        return t.reencoded(encoding)

    new = map_tensors(net, convert)
    notes = []
    if encoding.legacy_readable and new.min_version == versions.LAYER_ENCODINGS:
        # 0.33 is what a re-encoding to FLOAT16/BFLOAT16/FLOAT32 sets (here or in lc0's
        # tools); once every layer is LINEAR16 again, the architecture decides.
        lowered = versions.required(new)
        if lowered < versions.LAYER_ENCODINGS:
            notes.append(f"min_version {versions.fmt(new.min_version)} -> {versions.fmt(lowered)}: every layer "
                         "is LINEAR16 again, so older engines can read this file")
            new.min_version = lowered
    return new, notes + settle_min_version(new)


def settle_min_version(net: Network) -> list[str]:
    """Raise `net.min_version` to what its content requires (in place); notes on what changed."""
    need = versions.required(net)
    have = net.min_version
    if have is None or have < need:
        net.min_version = need
        if need >= versions.LAYER_ENCODINGS:
            return [f"min_version {versions.fmt(have)} -> {versions.fmt(need)}: layers are not all LINEAR16, "
                    "so engines before lc0 v0.33 cannot read this file (use --encoding linear16 for them)"]
        return [f"min_version {versions.fmt(have)} -> {versions.fmt(need)}"]
    return []
