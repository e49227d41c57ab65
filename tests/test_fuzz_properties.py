"""Property tests of every reader: whatever the bytes, the result is a network (or array, or config) or one
`LcconvertError` — never another exception — and what is accepted is consistent.

Hypothesis draws the inputs: protobuf networks built from the schema by the
generator with random architectures and encodings, then damaged field by field;
Leela Zero text weights with damaged lines; gzip streams cut or flipped; planes
files of random arrays and damaged headers; YAML documents and raw text. The
deterministic corpus over the whole CLI is tests/test_fuzz_corpus.py; long
coverage-guided runs are fuzz/fuzz_readers.py (atheris, outside CI).
"""
from __future__ import annotations

import gzip
import io as _io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mutations
from conftest import LZ_0K
from lcconvert import fold, forward, io, synth, verify
from lcconvert._proto import net_pb2
from lcconvert.errors import LcconvertError
from lcconvert.formats import gz, lc0_proto, planes, text

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)


# -- protobuf networks ------------------------------------------------------------------------

@st.composite
def damaged_networks(draw):
    """A generated Lc0 network's payload, with zero or more fields damaged through the schema."""
    net = synth.make_network(
        blocks=draw(st.integers(0, 2)), filters=draw(st.sampled_from([2, 4])),
        se_ratio=draw(st.sampled_from([None, 2])), policy=draw(st.sampled_from(["convolution", "classical"])),
        value=draw(st.sampled_from(["wdl", "classical"])), moves_left=draw(st.booleans()),
        gammas=draw(st.booleans()), biases=draw(st.booleans()), seed=draw(st.integers(0, 3)))
    payload, _ = io.serialize(net, io.PB, draw(st.sampled_from(list(synth.Encoding))))
    msg = net_pb2.Net.FromString(payload)
    layers = list(mutations._layers(msg))
    for _ in range(draw(st.integers(0, 3))):
        layer = layers[draw(st.integers(0, len(layers) - 1))]
        op = draw(st.sampled_from(["min", "max", "params", "encoding", "clear"]))
        if op in ("min", "max"):
            setattr(layer, f"{op}_val", draw(st.floats(allow_nan=True, allow_infinity=True, width=32)))
        elif op == "params":
            layer.params = draw(st.binary(max_size=64)) if draw(st.booleans()) else layer.params[:-2]
        elif op == "encoding":
            layer.encoding = draw(st.integers(1, 4))
        else:
            layer.Clear()
    for name in ("input", "output", "network", "policy", "value", "moves_left", "default_activation"):
        if draw(st.integers(0, 9)) == 0:
            enum = msg.format.network_format.DESCRIPTOR.fields_by_name[name].enum_type
            setattr(msg.format.network_format, name, draw(st.sampled_from([v.number for v in enum.values])))
    return msg.SerializeToString()


@SETTINGS
@given(damaged_networks())
def test_protobuf_reader_accepts_or_refuses_in_one_error(payload):
    try:
        net = lc0_proto.read(payload, "net.pb")
    except LcconvertError as e:
        assert "\n" not in e.message
        return
    problems = verify.usable_problems(net)
    if problems:
        with pytest.raises(LcconvertError):
            verify.require_usable(net)
        return
    # A usable network evaluates to finite numbers or is refused, and folds to a file verify accepts.
    x = np.random.default_rng(0).integers(0, 2, (2, 112, 8, 8)).astype(np.float32)
    try:
        out = forward.evaluate(net, x)
        assert all(np.isfinite(a).all() for a in out.arrays().values())
    except LcconvertError:
        pass
    try:
        folded, _ = fold.fold(net, encoding=synth.Encoding.LINEAR16)
    except LcconvertError:
        return
    data, _ = io.serialize(folded, io.PB, synth.Encoding.LINEAR16)
    assert verify.usable_problems(lc0_proto.read(data, "out.pb")) == []


@SETTINGS
@given(st.binary(max_size=256))
def test_protobuf_reader_on_any_bytes(tail):
    for data in (b"\x0d\xc0\x01\x00\x00" + tail, tail):
        try:
            lc0_proto.read(data, "x.pb")
        except LcconvertError:
            pass


# -- text weights -------------------------------------------------------------------------------

LZ_LINES = LZ_0K.read_bytes().split(b"\n")
TOKENS = st.sampled_from([b"nan", b"inf", b"-inf", b"1e999", b"-0", b"x", b"", b"0.5", b"1e-45", b"3.5e38", b"--1"])


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "token", "truncate", "join"]),
                          st.integers(0, len(LZ_LINES) - 1), TOKENS), min_size=1, max_size=3))
def test_text_reader_on_damaged_lines(ops):
    lines = list(LZ_LINES)
    for op, i, token in ops:
        i = min(i, len(lines) - 1)
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "token":
            parts = lines[i].split(b" ")
            parts[len(parts) // 2] = token
            lines[i] = b" ".join(parts)
        elif op == "truncate":
            lines[i] = lines[i][: len(lines[i]) // 2]
        elif i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + b" " + lines[i + 1]]
    try:
        net = text.read(b"\n".join(lines), "net.txt")
    except LcconvertError as e:
        assert "\n" not in e.message
        return
    assert all(np.isfinite(t.values).all() for _, t in net.tensors())


# -- gzip -------------------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 64


@SETTINGS
@given(st.integers(0, len(gzip.compress(PAYLOAD)) - 1), st.integers(0, 255), st.booleans())
def test_gzip_cut_or_flipped(position, value, cut):
    data = bytearray(gzip.compress(PAYLOAD))
    if cut:
        if position == 0:
            assert gz.gunzip(b"", "x.gz") == b""
            return
        with pytest.raises(LcconvertError):
            gz.gunzip(bytes(data[:position]), "x.gz")
        return
    assume(data[position] != value)
    data[position] = value
    try:
        out = gz.gunzip(bytes(data), "x.gz")
    except LcconvertError:
        return
    # Accepted after a flip only where the flipped byte does not carry data (header flags, mtime, OS).
    assert out == PAYLOAD


@SETTINGS
@given(st.integers(1, 64))
def test_gzip_cap_refuses_before_inflating_all(kib):
    bomb = gzip.compress(bytes(kib << 10))
    with pytest.raises(LcconvertError, match="LCCONVERT_MAX_INFLATE"):
        gz.gunzip(bomb, "bomb.gz", limit=(kib << 10) - 1)
    assert len(gz.gunzip(bomb, "bomb.gz", limit=kib << 10)) == kib << 10


# -- planes files ------------------------------------------------------------------------------------

ARRAYS = hnp.arrays(st.sampled_from([np.float32, np.float64, np.int8, np.uint8, np.bool_]),
                    hnp.array_shapes(min_dims=1, max_dims=4, max_side=5))


@SETTINGS
@given(ARRAYS, st.booleans())
def test_planes_round_trip(array, as_npz):
    buf = _io.BytesIO()
    np.savez(buf, planes=array) if as_npz else np.save(buf, array)
    got = planes.read(buf.getvalue(), "p.npz" if as_npz else "p.npy")
    assert got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array, equal_nan=True)


@SETTINGS
@given(ARRAYS, st.booleans(), st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_planes_damaged(array, as_npz, position, value, cut):
    buf = _io.BytesIO()
    np.savez(buf, planes=array) if as_npz else np.save(buf, array)
    data = bytearray(buf.getvalue())
    position %= len(data)
    if cut:
        data = data[:position]
    else:
        data[position] = value
    try:
        got = planes.read(bytes(data), "p")
    except LcconvertError as e:
        assert "\n" not in e.message
        return
    assert isinstance(got, np.ndarray)


# -- training YAML ----------------------------------------------------------------------------------

YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12)
MODEL_KEYS = st.sampled_from(["filters", "residual_blocks", "se_ratio", "policy", "value", "moves_left",
                              "input_type", "default_activation", "encoder_layers"])


@SETTINGS
@given(st.dictionaries(MODEL_KEYS, YAML_VALUES, max_size=6) | YAML_VALUES)
def test_training_yaml_documents(tmp_path_factory, model):
    yaml = pytest.importorskip("yaml")
    from lcconvert.formats import training_config

    path = tmp_path_factory.mktemp("yaml") / "t.yaml"
    path.write_text(yaml.safe_dump({"model": model}))
    try:
        config = training_config.load(str(path))
    except LcconvertError as e:
        assert "\n" not in e.message and len(e.message) < 400
        return
    for value in (config.filters, config.se_ratio):
        assert value is None or (isinstance(value, int) and value >= 1)


@SETTINGS
@given(st.binary(max_size=200))
def test_training_yaml_raw_bytes(tmp_path_factory, raw):
    pytest.importorskip("yaml")
    from lcconvert.formats import training_config

    path = tmp_path_factory.mktemp("yaml") / "t.yaml"
    path.write_bytes(raw)
    try:
        training_config.load(str(path))
    except LcconvertError as e:
        assert "\n" not in e.message and len(e.message) < 400


def test_float_json_is_strict():
    """Reports replace NaN/inf by null (cli._json), never emit the non-JSON tokens."""
    from lcconvert.cli import _json

    assert _json({"a": [math.nan, math.inf, 1.5]}) == '{"a": [null, null, 1.5]}'


def test_npz_with_a_compression_numpy_never_writes_is_one_line():
    import zipfile

    buf, member = _io.BytesIO(), _io.BytesIO()
    np.save(member, np.ones((2, 3), np.float32))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_BZIP2) as zf:
        zf.writestr("planes.npy", member.getvalue())
    with pytest.raises(LcconvertError, match="compression method 12"):
        planes.read(buf.getvalue(), "p.npz")
