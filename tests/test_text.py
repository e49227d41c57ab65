"""Text weights (Leela Zero v1/v2, Lc0 v2): reading the real files, exact round trips, strict errors."""
from __future__ import annotations

import gzip
import io as _io
from fractions import Fraction

import numpy as np
import pytest
from conftest import LZ_0K, LZ_RANDOM, MAIA

from lcconvert import io, shapes
from lcconvert.constants import Family
from lcconvert.errors import FormatError, NetworkError, UnsupportedError
from lcconvert.formats import text
from lcconvert.network import ConvBlock, NetFormat, Network, Residual, Source
from lcconvert.tensor import Tensor


def file_bytes(path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def file_lines(path) -> list[np.ndarray]:
    """Each tensor line of a text network, parsed independently of lcconvert (Python's float)."""
    lines = file_bytes(path).replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
    return [np.array([float(t) for t in line.split()], dtype=np.float32) for line in lines[1:]]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def assert_tensors_equal_lines(net: Network, lines: list[np.ndarray]) -> None:
    """The network's tensors, in file order, hold exactly the lines' float32 values."""
    tensors = list(net.tensors())
    assert len(tensors) == len(lines)
    for (name, t), line in zip(tensors, lines):
        assert same_bits(t.values, line), name


# -- the real files ----------------------------------------------------------

@pytest.mark.parametrize("path, filters, blocks", [(LZ_0K, 8, 1), (LZ_RANDOM, 16, 2)])
def test_reads_real_leela_zero_files(path, filters, blocks):
    net = io.load(str(path))
    assert net.family is Family.GO
    assert (net.filters, net.blocks) == (filters, blocks)
    assert net.source.kind == "text" and net.source.text_version == 1
    assert net.go_value_from_black is False
    assert all(getattr(net.format, f) is None for f in NetFormat.FIELDS)
    assert shapes.structure_problems(net) == []
    assert_tensors_equal_lines(net, file_lines(path))
    # Leela Zero's fixed head sizes (FORMATS.md §4): 2-filter policy conv, 1-filter value conv, FC 256.
    assert net.ip_pol_w.size == 2 * 361 * 362 and net.ip1_val_w.size == 361 * 256


@pytest.mark.parametrize("path", [LZ_0K, LZ_RANDOM])
def test_write_back_gives_the_same_float32_values_line_for_line(path):
    out = text.write(io.load(str(path)))
    assert out.startswith(b"1\n") and out.endswith(b"\n") and b"\r" not in out
    written = [np.array(line.split(), dtype=np.float32) for line in out.rstrip(b"\n").split(b"\n")[1:]]
    original = file_lines(path)
    assert len(written) == len(original)
    for i, (w, o) in enumerate(zip(written, original), start=2):
        assert same_bits(w, o), f"line {i}"


def test_lz_0k_is_written_as_its_own_text(path=LZ_0K):
    """lz-0k was printed with 6 significant digits: the shortest float32 text reproduces it, "0.0" aside."""
    original = file_bytes(path).split(b"\r\n")
    written = text.write(io.load(str(path))).rstrip(b"\n").split(b"\n")
    assert len(original) == len(written)
    zeros = {b"0.0": b"0", b"-0.0": b"-0"}
    for a, b in zip(original, written):
        assert [zeros.get(t, t) for t in a.split(b" ")] == b.split(b" ")


def test_cli_convert_text_pb_text_keeps_every_value(run_cli, tmp_path):
    as_text, as_pb, back = tmp_path / "x.txt", tmp_path / "x.pb.gz", tmp_path / "back.txt.gz"
    for src, dst in ((LZ_RANDOM, as_text), (as_text, as_pb), (as_pb, back)):
        result = run_cli("convert", src, dst)
        assert result.exit_code == 0, result.stderr
    original = file_lines(LZ_RANDOM)
    for path in (as_text, back):
        assert_tensors_equal_lines(io.load(str(path)), original)
        assert file_lines(path)[0].size == original[0].size
    assert io.load(str(back)).source.compressed


def test_version_2_go_network_is_value_from_black(tmp_path):
    data = b"2" + file_bytes(LZ_0K)[1:]
    net = text.read(data, "v2.txt")
    assert net.go_value_from_black is True and net.source.text_version == 2
    assert text.write(net).startswith(b"2\n")


# -- chess: Lc0 text v2 --------------------------------------------------------

def random_chess_net(blocks=2, filters=8, seed=0, policy_filters=4, value_filters=2, hidden=16) -> Network:
    """Lc0 classical layout with narrow heads (lczero-training used 32, 32, 128) to keep tests fast."""
    rng = np.random.default_rng(seed)

    def t(n, scale=0.1):
        v = rng.standard_normal(n).astype(np.float32) * np.float32(scale)
        v[rng.random(n) < 0.05] = 0  # exact zeros, -0.0 as well
        v[:1] = -0.0
        return Tensor.from_values(v)

    def conv(cin, cout, k):
        return ConvBlock(weights=t(cout * cin * k * k), biases=t(cout), means=t(cout),
                         variances=Tensor.from_values(rng.uniform(0.05, 4, cout).astype(np.float32)))

    net = Network(family=Family.CHESS, source=Source(path="random-chess"),
                  format=NetFormat(input=1, output=1, network=1, policy=1, value=1))
    net.input = conv(112, filters, 3)
    net.residual = [Residual(conv(filters, filters, 3), conv(filters, filters, 3)) for _ in range(blocks)]
    net.policy = conv(filters, policy_filters, 1)
    net.ip_pol_w, net.ip_pol_b = t(1858 * policy_filters * 64, 1e-3), t(1858, 1e3)
    net.value = conv(filters, value_filters, 1)
    net.ip1_val_w, net.ip1_val_b = t(hidden * value_filters * 64, 1e-5), t(hidden)
    net.ip2_val_w, net.ip2_val_b = t(hidden, 30.0), t(1)
    assert shapes.structure_problems(net) == []
    return net


def test_chess_v2_round_trip_is_exact():
    net = random_chess_net()
    data = text.write(net)
    assert data.startswith(b"2\n")
    assert data.count(b"\n") == 1 + 8 * net.blocks + 18
    back = text.read(data, "chess.txt")
    assert back.family is Family.CHESS and back.source.text_version == 2
    assert (back.blocks, back.filters) == (2, 8)
    assert back.format == NetFormat(input=1, output=1, network=1, policy=1, value=1)
    for (name, a), (name_b, b) in zip(net.tensors(), back.tensors(), strict=True):
        assert name == name_b and same_bits(a.values, b.values), name


def test_chess_head_widths_are_inferred_from_the_file():
    net = random_chess_net(blocks=1, policy_filters=3, value_filters=5, hidden=7, seed=3)
    back = text.read(text.write(net), "x.txt")
    assert (back.policy.out_channels, back.value.out_channels, back.ip1_val_b.size) == (3, 5, 7)


def test_short_chess_head_line_is_named_not_its_neighbour():
    """Head widths are inferred from biases/means/variances by agreement, so the damaged line is the one named."""
    lines = text.write(random_chess_net(blocks=1)).split(b"\n")
    policy_biases = 1 + 4 + 8 + 2  # version, input block, one residual block, then policy weights, biases
    lines[policy_biases - 1] = lines[policy_biases - 1].rsplit(b" ", 1)[0]
    with pytest.raises(NetworkError, match=rf"line {policy_biases}: policy\.biases: 3 values, expected 4"):
        text.read(b"\n".join(lines), "chess.txt")


def test_go_heads_other_than_leela_zero_are_refused():
    net = io.load(str(LZ_0K))
    net.ip1_val_w = Tensor.from_values(net.ip1_val_w.values[: 361 * 128])
    net.ip1_val_b = Tensor.from_values(net.ip1_val_b.values[:128])
    net.ip2_val_w = Tensor.from_values(net.ip2_val_w.values[:128])
    assert shapes.structure_problems(net) == []
    with pytest.raises(UnsupportedError, match="fixed heads .* this network has 2, 1, 128"):
        text.write(net)


def test_other_batch_norm_epsilon_is_refused():
    net = random_chess_net(blocks=1)
    net.epsilon = 1e-3
    with pytest.raises(UnsupportedError, match="epsilon 0.001: engines reading text use 1e-05; run fold-bias"):
        text.write(net)


def test_absent_biases_written_as_zeros_and_unit_gammas_dropped():
    net = random_chess_net(blocks=1)
    c = net.filters
    changed = net.copy()
    changed.input = changed.input.replace(biases=None, gammas=Tensor.from_values(np.ones(c, np.float32)),
                                          betas=Tensor.from_values(np.zeros(c, np.float32)))
    back = text.read(text.write(changed), "x.txt")
    assert same_bits(back.input.biases.values, np.zeros(c, np.float32))
    assert back.input.gammas is None and back.input.betas is None
    assert same_bits(back.input.means.values, net.input.means.values)


@pytest.mark.parametrize("field, value", [("gammas", 1.5), ("betas", 0.25)])
def test_gammas_and_betas_are_refused(field, value):
    net = random_chess_net(blocks=1)
    block = net.residual[0].conv2
    v = np.full(net.filters, 1.0 if field == "gammas" else 0.0, np.float32)
    v[3] = value
    net.residual[0].conv2 = block.replace(**{field: Tensor.from_values(v)})
    with pytest.raises(UnsupportedError, match=r"residual\.0\.conv2: .*fold-bias"):
        text.write(net)


def test_other_chess_architectures_are_refused_with_the_reasons():
    net = random_chess_net(blocks=1)
    net.format.value = 2
    net.format.moves_left = 1
    with pytest.raises(UnsupportedError, match="text v2 holds only classical chess networks: this one has "
                                               "a WDL value head, a moves-left head; write .pb.gz"):
        text.write(net)


def test_non_finite_values_are_not_written():
    net = random_chess_net(blocks=1)
    v = net.value.means.values.copy()
    v[1] = np.inf
    net.value = net.value.replace(means=Tensor.from_values(v))
    with pytest.raises(NetworkError, match=r"value\.means: value 1 is inf"):
        text.write(net)


def test_writing_maia_as_text_is_refused(run_cli, tmp_path):
    out = tmp_path / "maia.txt"
    result = run_cli("convert", MAIA, out)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SE units" in lines[0] and "convolution policy" in lines[0]
    assert "write .pb.gz" in lines[0] and "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


# -- strict parsing ------------------------------------------------------------

def lz0k_lines() -> list[bytes]:
    return file_bytes(LZ_0K).split(b"\r\n")  # 27 lines: version, input 2-5, residual 6-13, policy 14-19, value 20-27


def join(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines)


def short(lines, i):
    lines[i - 1] = lines[i - 1].rsplit(b" ", 1)[0]
    return join(lines)


def replace_value(lines, i, token):
    parts = lines[i - 1].split(b" ")
    parts[3] = token
    lines[i - 1] = b" ".join(parts)
    return join(lines)


def comma(lines, i):
    lines[i - 1] = lines[i - 1].replace(b" ", b",", 1)
    return join(lines)


BROKEN = {
    "one value short": (lambda ls: short(ls, 7), 7, NetworkError),
    "one value short, input biases": (lambda ls: short(ls, 3), 3, NetworkError),
    "blank trailing line": (lambda ls: join(ls) + b"\r\n\r\n", 28, FormatError),
    "blank line inside": (lambda ls: join(ls[:9] + [b"  "] + ls[9:]), 10, FormatError),
    "version 3": (lambda ls: join([b"3"] + ls[1:]), 1, FormatError),
    "version 4": (lambda ls: join([b"4"] + ls[1:]), 1, FormatError),
    "chess v1 (120 planes)": (lambda ls: join([b"1", b" ".join([b"0.5"] * (120 * 9 * 8))] + ls[2:]), 2,
                              FormatError),
    "NaN": (lambda ls: replace_value(ls, 10, b"nan"), 10, FormatError),
    "Inf": (lambda ls: replace_value(ls, 11, b"-inf"), 11, FormatError),
    "overflows float32": (lambda ls: replace_value(ls, 11, b"1e39"), 11, FormatError),
    "comma": (lambda ls: comma(ls, 12), 12, FormatError),
    "not a number": (lambda ls: replace_value(ls, 6, b"0.1.2"), 6, FormatError),
    "extra line": (lambda ls: join(ls + [ls[-1]]), 28, FormatError),
    "missing line (ip_pol_w)": (lambda ls: join(ls[:17] + ls[18:]), 18, FormatError),
    "missing last line": (lambda ls: join(ls[:-1]), 27, FormatError),
    "version line only": (lambda ls: b"1\n", 2, FormatError),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_strict_errors_name_the_file_and_line(case, run_cli, tmp_path):
    make, line, error = BROKEN[case]
    src, out = tmp_path / "broken.txt", tmp_path / "out.pb.gz"
    src.write_bytes(make(lz0k_lines()))
    result = run_cli("convert", src, out)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"lcconvert: {src}: line {line}:"), lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.txt"]
    with pytest.raises(error):
        text.read(src.read_bytes(), str(src))


def test_empty_file_is_refused(run_cli, tmp_path):
    src, out = tmp_path / "empty.txt", tmp_path / "out.txt"
    src.write_bytes(b"")
    result = run_cli("convert", src, out)
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip() == f"lcconvert: {src}: empty file"
    with pytest.raises(FormatError, match="line 1: empty file"):
        text.read(b"", "empty.txt")


def test_non_strict_read_keeps_an_inconsistent_network_for_verify(tmp_path):
    src = tmp_path / "short.txt"
    src.write_bytes(short(lz0k_lines(), 8))  # residual.0.conv1.means one value short
    net = io.load(str(src), strict=False)
    problems = shapes.structure_problems(net)
    assert problems == ["residual.0.conv1.means: 7 values, expected 8"]
    with pytest.raises(NetworkError, match=r"line 8: residual\.0\.conv1\.means: 7 values, expected 8"):
        io.load(str(src))


def test_engine_tolerated_syntax_is_accepted(tmp_path):
    """CRLF, tabs, several spaces, '.5', exponents, a missing final newline: as the engines accept them."""
    lines = file_bytes(LZ_RANDOM).rstrip(b"\n").split(b"\n")
    parts = lines[2].split(b" ")  # input biases
    parts[0], parts[1], parts[2] = b".5", b"1e-03", b"-2.5E+1"
    lines[2] = b"\t".join(parts[:4]) + b"  \t " + b" ".join(parts[4:]) + b" "
    src = tmp_path / "odd.txt"
    src.write_bytes(b"\r\n".join(lines))
    net = io.load(str(src))
    assert net.input.biases.values[:3].tolist() == [0.5, np.float32(1e-3), -25.0]
    original = file_lines(LZ_RANDOM)
    original[1][:3] = [0.5, 1e-3, -25.0]
    assert_tensors_equal_lines(net, original)


# -- the float formatter ---------------------------------------------------------

def test_float32_text_round_trips_exactly_for_every_kind_of_value():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=300_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([0.0, -0.0, 0.5, 1, 9.96, 1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38,
                        1e-5, 1e-4, 16777216, 123456789, 1e9, 1500, 0.0125], np.float32)
    x = np.concatenate([bits.view(np.float32), special])
    x = x[np.isfinite(x)]
    line = text.format_floats(x)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    tokens = line.split()
    # A correctly rounding parse (Python float -> float32 is exact for these: see text.py) ...
    assert same_bits(np.array([float(t) for t in tokens], np.float32), x)
    # ... and NumPy's, as the reader uses.
    assert same_bits(np.loadtxt(_io.BytesIO(line), dtype=np.float32, ndmin=1), x)
    assert [t.decode() for t in tokens[-len(special):]] == [
        "0", "-0", "0.5", "1", "9.96", "1e-45", "1.1754944e-38", "3.4028235e+38", "-3.4028235e+38",
        "1e-05", "0.0001", "16777216", "123456790", "1e+09", "1500", "0.0125"]


def significant_digits(token: str) -> int:
    mantissa = token.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


def test_float32_text_is_the_shortest():
    """As short as NumPy's shortest repr (Dragon4), except where that decimal lies exactly on the
    edge of the rounding interval (read back right only by ties-to-even; text.py leaves the edges
    out). Such ties need a half-gap with few decimal digits, so only values ≥ 2^15 have them:
    never typical weights."""
    rng = np.random.default_rng(11)
    weights = (rng.standard_normal(20_000) * 0.05).astype(np.float32)
    bits = rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for x in (weights, bits[np.isfinite(bits)]):
        ours = text.format_floats(x).decode().split()
        for v, token in zip(x, ours):
            shortest = np.format_float_scientific(v, unique=True)
            if significant_digits(token) == significant_digits(shortest):
                continue
            assert significant_digits(token) > significant_digits(shortest)
            exact, d = Fraction(float(v)), Fraction(shortest)
            neighbour = np.nextafter(v, np.float32(np.inf) if d > exact else np.float32(0))
            assert abs(d - exact) * 2 == abs(Fraction(float(neighbour)) - exact), (v, token, shortest)
            assert abs(v) >= 2**15 and x is not weights
