"""Text weights: Leela Zero (Go) v1/v2 and Lc0 text v2 (classical chess), FORMATS.md §4.

A text network is a version line, then one tensor per line as whitespace-separated
floats in the engine's order: input block (weights, biases, means, variances), two
such blocks per residual block, the policy head (1×1 conv block, FC weights, FC
biases) and the value head (1×1 conv block, FC, FC). So a network with B residual
blocks has 18 + 8·B lines after the version line, for both families.

Engines check almost nothing while reading these files: a line one value short
shifts every later tensor and the engine plays with garbage. This reader checks
every line against the structure inferred from the first lines and names the
1-based line number of the first problem.

Speed: a 20×256 network is ~24M numbers. Lines are parsed whole by NumPy's C
parser; the writer formats floats with vectorised NumPy (see `format_floats`), never
one value at a time in Python.
"""
from __future__ import annotations

import io as _io
import re

import numpy as np

from lcconvert import shapes
from lcconvert.codecs import Encoding
from lcconvert.constants import (
    ACTIVATION_RELU,
    BOARD_SIZE,
    ENGINE_EPSILON,
    INPUT_PLANES,
    MOVES_LEFT_NONE,
    NETWORK_CLASSICAL,
    POLICY_CLASSICAL,
    POLICY_OUTPUTS,
    VALUE_CLASSICAL,
    Family,
)
from lcconvert.errors import FormatError, NetworkError, UnsupportedError, refuse_problems
from lcconvert.network import ConvBlock, NetFormat, Network, Residual, Source
from lcconvert.tensor import Tensor

# Lines after the version line: input block 4, policy head 6, value head 8, then 8 per residual block.
HEAD_LINES = 4 + 6 + 8
LINES_PER_BLOCK = 8
# Leela Zero's fixed head widths (FORMATS.md §4, §5): its engine hard-codes them.
GO_POLICY_FILTERS, GO_VALUE_FILTERS, GO_VALUE_HIDDEN = 2, 1, 256
# Lc0 text v1 had 120 input planes and a 1924-move policy; no supported engine reads it.
OBSOLETE_CHESS_PLANES = 120
CONV_ORDER = ("weights", "biases", "means", "variances")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read(data: bytes, path: str = "<memory>", strict: bool = True) -> Network:
    """Parse an uncompressed text network.

    FormatError (always): bad version, blank line, a token that is not a finite
    number, a line count that fits no network. NetworkError (strict only): a line
    whose length disagrees with the structure inferred from the first lines —
    strict=False builds the network anyway so `verify` can list every problem.
    """
    lines = _split_lines(data, path)
    version = _version(lines[0], path)
    if len(lines) < 2:
        raise FormatError(path, "line 2: missing: the file has only a version line")
    values = [_parse_line(line, number, path) for number, line in enumerate(lines[1:], start=2)]
    family = _family(values, version, path)
    layout = _layout(values, family, path)
    problems = [
        f"line {number}: {name}: {values[number - 2].size} values, expected {expected}"
        for number, name, expected in layout
        if expected is not None and values[number - 2].size != expected
    ]
    if strict:
        refuse_problems(path, problems)
    net = _build(values, family, version, path)
    if strict:
        shapes.check(net)
    return net


def _split_lines(data: bytes, path: str) -> list[bytes]:
    """Lines without their ends. CRLF and a missing final newline are fine; a blank line is not.

    Leela Zero counts a blank trailing line as a tensor line and then rejects the
    file, so we reject every blank line and say where it is.
    """
    if not data or data.isspace():  # isspace stops at the first character of a real file; strip() would copy it
        raise FormatError(path, "line 1: empty file: expected a version number")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the final newline
    for number, line in enumerate(lines, start=1):
        if line.endswith(b"\r"):
            line = lines[number - 1] = line[:-1]
        if not line or line.isspace():
            where = "blank trailing line" if number == len(lines) else "blank line"
            raise FormatError(path, f"line {number}: {where} (engines reject it)")
    return lines


def _version(line: bytes, path: str) -> int:
    token = line.strip()
    if not token.isdigit():
        raise FormatError(path, f"line 1: expected a version number, found {_show(token)}")
    version = int(token)
    if version in (3, 4):
        raise FormatError(path, f"line 1: text version {version} (lczero-training's SE/convolution-policy text) is "
                                "read by no engine; convert the network from its .pb.gz instead")
    if version not in (1, 2):
        raise FormatError(path, f"line 1: text version {version} is not supported (Leela Zero v1/v2, Lc0 v2)")
    return version


_BAD_TOKEN = re.compile(rb"[^\s]+")


def _parse_line(line: bytes, number: int, path: str) -> np.ndarray:
    """One line as float32, whole-line in C; on failure find the bad token for the message."""
    try:
        values = np.loadtxt(_io.BytesIO(line), dtype=np.float32, delimiter=None, comments=None, ndmin=1)
    except ValueError:
        _raise_bad_token(line, number, path)
    if values.ndim > 1:  # a stray '\r' inside the line: whitespace to the engines too
        values = values.ravel()
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.argmin(finite))
        tokens = line.split()
        token = _show(tokens[i]) if i < len(tokens) else "?"
        if np.isnan(values[i]):
            kind = "is NaN"
        elif token.strip("'\"").lstrip("+-").lower().startswith("inf"):
            kind = "is infinite"
        else:
            kind = "overflows float32 (largest 3.4028235e38)"
        raise FormatError(path, f"line {number}: value {i + 1} ({token}) {kind}: text weights must be finite numbers")
    return values


def _raise_bad_token(line: bytes, number: int, path: str):
    """Raise the FormatError for a line NumPy could not parse, naming the first bad token."""
    for i, match in enumerate(_BAD_TOKEN.finditer(line), start=1):
        token = match.group()
        try:
            float(token)
        except ValueError:
            hint = " (numbers are separated by spaces, not commas)" if b"," in token else ""
            raise FormatError(path, f"line {number}: value {i} is not a number: {_show(token)}{hint}") from None
    raise FormatError(path, f"line {number}: cannot parse the line as numbers")


def _show(token: bytes, limit: int = 24) -> str:
    text = token[:limit].decode("latin-1")
    return repr(text + ("…" if len(token) > limit else ""))


def _width(values: list[np.ndarray], biases: int) -> int | None:
    """A conv block's filters: its biases' length, unless its means and variances agree on another
    (so a damaged biases line is reported as the damaged line). None past the end of the file."""
    sizes = [v.size for v in values[biases:biases + 3]]
    if len(sizes) < 3:
        return sizes[0] if sizes else None
    return sizes[1] if sizes[1] == sizes[2] else sizes[0]


def _channels(values: list[np.ndarray]) -> int:
    """Filters of the tower: from the input block's lines 3-5, as the engines read line 3."""
    return _width(values, 1)


def _family(values: list[np.ndarray], version: int, path: str) -> Family:
    """Tell Go from chess by the input weights (line 2) over the channel count.

    Channels are the length of the input biases (line 3), as the engines read them;
    when the input means and variances (lines 4, 5) agree on another length, that
    one is taken, so a damaged line 3 is reported as the damaged line.
    """
    if len(values) < 4:
        raise FormatError(path, f"line {len(values) + 2}: missing: an input block needs 4 lines after the version")
    channels = _channels(values)
    weights = values[0].size
    planes, rest = divmod(weights, 9 * channels) if channels else (0, 1)
    if rest or planes not in (INPUT_PLANES[Family.GO], INPUT_PLANES[Family.CHESS], OBSOLETE_CHESS_PLANES):
        raise FormatError(path, f"line 2: input weights: {weights} values is not 3×3×{channels} filters over "
                                f"18 (Go) or 112 (chess) planes ({channels} channels from lines 3-5)")
    if planes == OBSOLETE_CHESS_PLANES:
        raise FormatError(path, "line 2: 120 input planes: Lc0 text v1 is obsolete and read by no supported "
                                "engine")
    if planes == INPUT_PLANES[Family.CHESS]:
        if version != 2:
            raise FormatError(path, f"line 1: a chess network in text version {version}: Lc0 text networks "
                                    "with 112 planes are version 2")
        return Family.CHESS
    return Family.GO


def _layout(values: list[np.ndarray], family: Family, path: str) -> list[tuple[int, str, int | None]]:
    """(line number, tensor name, expected length) for every line, or FormatError if the count fits no net.

    The head widths (policy/value conv filters, value hidden units) come from their
    bias lines for chess; Leela Zero hard-codes them, so for Go they are fixed.
    """
    n = len(values)
    blocks, rest = divmod(n - HEAD_LINES, LINES_PER_BLOCK)
    if n < HEAD_LINES or rest:
        _raise_line_count(values, family, path)
    return _expected(values, family, blocks)


def _names(blocks: int) -> list[str]:
    names = [f"input.{f}" for f in CONV_ORDER]
    for i in range(blocks):
        names += [f"residual.{i}.{conv}.{f}" for conv in ("conv1", "conv2") for f in CONV_ORDER]
    names += [f"policy.{f}" for f in CONV_ORDER] + ["ip_pol_w", "ip_pol_b"]
    names += [f"value.{f}" for f in CONV_ORDER] + ["ip1_val_w", "ip1_val_b", "ip2_val_w", "ip2_val_b"]
    return names


def _expected(values: list[np.ndarray], family: Family, blocks: int) -> list[tuple[int, str, int | None]]:
    names = _names(blocks)
    index = {name: i for i, name in enumerate(names)}

    def size(name: str) -> int | None:
        i = index[name]
        return values[i].size if i < len(values) else None

    def width(block: str) -> int | None:
        return _width(values, index[f"{block}.biases"])

    c = _channels(values)
    planes, squares = INPUT_PLANES[family], BOARD_SIZE[family] ** 2
    if family is Family.GO:
        p, v, hidden = GO_POLICY_FILTERS, GO_VALUE_FILTERS, GO_VALUE_HIDDEN
    else:
        p, v, hidden = width("policy"), width("value"), size("ip1_val_b")
    expect = {"input.weights": 9 * planes * c}
    for f in CONV_ORDER[1:]:
        expect[f"input.{f}"] = c
    for i in range(blocks):
        for conv in ("conv1", "conv2"):
            expect[f"residual.{i}.{conv}.weights"] = 9 * c * c
            for f in CONV_ORDER[1:]:
                expect[f"residual.{i}.{conv}.{f}"] = c
    for head, width in (("policy", p), ("value", v)):
        expect[f"{head}.weights"] = None if width is None else width * c
        for f in CONV_ORDER[1:]:
            expect[f"{head}.{f}"] = width
    outputs = POLICY_OUTPUTS[family]
    expect["ip_pol_w"] = None if p is None else outputs * p * squares
    expect["ip_pol_b"] = outputs
    expect["ip1_val_w"] = None if v is None or hidden is None else hidden * v * squares
    expect["ip1_val_b"] = hidden
    expect["ip2_val_w"] = hidden
    expect["ip2_val_b"] = 1
    return [(i + 2, name, expect[name]) for i, name in enumerate(names)]


def _raise_line_count(values: list[np.ndarray], family: Family, path: str) -> None:
    """The line count fits no network: find the first line that is out of place.

    The residual blocks are counted by their lines' lengths (9·C² weights), which
    places the heads; the first line whose length then disagrees is where a line
    went missing or was added. If every line fits, the surplus or the missing end
    is reported.
    """
    n = len(values)
    c = _channels(values)

    def residual_weights(i: int) -> bool:
        return i < n and values[i].size == 9 * c * c

    blocks = 0
    while residual_weights(4 + LINES_PER_BLOCK * blocks) and residual_weights(4 + LINES_PER_BLOCK * blocks + 4):
        blocks += 1
    expected = _expected(values, family, blocks)
    total = HEAD_LINES + LINES_PER_BLOCK * blocks
    count = f"{n} lines after the version line; a {blocks}-block network has {total}"
    for number, name, want in expected:
        i = number - 2
        if i >= n:
            raise FormatError(path, f"line {number}: missing {name} ({want} values): the file ends at line "
                                    f"{n + 1} ({count})")
        if want is not None and values[i].size != want:
            raise FormatError(path, f"line {number}: {values[i].size} values where {name} ({want} values) "
                                    f"belongs: a line is missing or extra ({count})")
    raise FormatError(path, f"line {total + 2}: extra line after the value head ({count})")


def _build(values: list[np.ndarray], family: Family, version: int, path: str) -> Network:
    it = iter(values)

    def tensor() -> Tensor:
        return Tensor.from_values(next(it), Encoding.FLOAT32)

    def conv() -> ConvBlock:
        return ConvBlock(**{f: tensor() for f in CONV_ORDER})

    blocks = (len(values) - HEAD_LINES) // LINES_PER_BLOCK
    net = Network(family=family, source=Source(path=path, kind="text", text_version=version))
    if family is Family.CHESS:
        net.format = NetFormat(input=1, output=1, network=NETWORK_CLASSICAL, policy=POLICY_CLASSICAL,
                               value=VALUE_CLASSICAL)
    else:
        net.go_value_from_black = version == 2
    net.input = conv()
    net.residual = [Residual(conv(), conv()) for _ in range(blocks)]
    net.policy = conv()
    net.ip_pol_w, net.ip_pol_b = tensor(), tensor()
    net.value = conv()
    net.ip1_val_w, net.ip1_val_b, net.ip2_val_w, net.ip2_val_b = tensor(), tensor(), tensor(), tensor()
    return net


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def write(net: Network) -> bytes:
    """The text file for `net`: Leela Zero v1 (v2 if go_value_from_black) or Lc0 v2; '\\n' line ends.

    UnsupportedError when text cannot hold the network (it has no fields for SE,
    other heads, γ/β, or another batch-norm epsilon); NetworkError when the
    network is inconsistent or holds non-finite values.
    """
    path = net.source.path
    _check_writable(net)
    shapes.check(net)
    if net.family is Family.GO:
        version = 2 if net.go_value_from_black else 1
    else:
        version = 2
    tensors = list(_ordered(net))
    for name, tensor in tensors:  # all checked before any formatting work
        finite = np.isfinite(tensor.values)
        if not finite.all():
            i = int(np.argmin(finite))
            raise NetworkError(path, f"{name}: value {i} is {tensor.values[i]}: text weights must be finite")
    return b"".join([b"%d\n" % version] + [format_floats(tensor.values) for _, tensor in tensors])


def _check_writable(net: Network) -> None:
    path = net.source.path
    if net.attention_body or net.format.is_attention:
        raise UnsupportedError(path, "text weights hold only convolutional networks: this one is an attention "
                                     "network; write .pb.gz")
    f = net.format
    reasons = []
    if any(r.se is not None for r in net.residual):
        reasons.append("SE units")
    if f.policy_kind != POLICY_CLASSICAL or net.policy1 is not None:
        reasons.append("a convolution policy")
    if f.value_kind != VALUE_CLASSICAL:
        reasons.append("a WDL value head" if net.value_outputs == 3 else f"value format {f.value_kind}")
    if f.moves_left_kind != MOVES_LEFT_NONE or net.moves_left is not None:
        reasons.append("a moves-left head")
    if f.activation != ACTIVATION_RELU:
        reasons.append("mish activations")
    if net.family is Family.CHESS and (f.input or 1) != 1:
        reasons.append(f"input format {f.input} (text v2 has the classical 112-plane input)")
    if reasons:
        what = "text v2 holds only classical chess networks" if net.family is Family.CHESS else \
            "Leela Zero text holds only classical Go networks"
        raise UnsupportedError(path, f"{what}: this one has {', '.join(reasons)}; write .pb.gz")
    if net.family is Family.GO:
        widths = (net.policy.out_channels if net.policy else None, net.value.out_channels if net.value else None,
                  net.ip1_val_b.size if net.ip1_val_b is not None else None)
        if widths != (GO_POLICY_FILTERS, GO_VALUE_FILTERS, GO_VALUE_HIDDEN):
            raise UnsupportedError(path, f"Leela Zero text has fixed heads (policy conv 2 filters, value conv 1, "
                                         f"value FC 256); this network has {widths[0]}, {widths[1]}, {widths[2]}")
    if net.epsilon != ENGINE_EPSILON:
        raise UnsupportedError(path, f"batch-norm epsilon {net.epsilon:g}: engines reading text use "
                                     f"{ENGINE_EPSILON:g}; run fold-bias first")
    for name, block in net.conv_blocks():
        if block.gammas is not None and np.any(block.gammas.values != 1):
            raise UnsupportedError(path, f"{name}: batch-norm gammas other than 1, which text weights cannot "
                                         "hold; run fold-bias first")
        if block.betas is not None and np.any(block.betas.values != 0):
            raise UnsupportedError(path, f"{name}: batch-norm betas other than 0, which text weights cannot "
                                         "hold; run fold-bias first")
        for field in ("means", "variances"):
            if getattr(block, field) is None:
                raise UnsupportedError(path, f"{name}: no batch-norm {field}, which text weights require")


def _ordered(net: Network):
    """(name, tensor) in file order; absent biases are zeros (the engines' default b = 0)."""

    def conv(name: str, block: ConvBlock):
        for f in CONV_ORDER:
            t = getattr(block, f)
            if t is None:  # only biases can be absent here (_check_writable)
                t = Tensor.from_values(np.zeros(block.out_channels, np.float32))
            yield f"{name}.{f}", t

    yield from conv("input", net.input)
    for i, r in enumerate(net.residual):
        yield from conv(f"residual.{i}.conv1", r.conv1)
        yield from conv(f"residual.{i}.conv2", r.conv2)
    yield from conv("policy", net.policy)
    yield "ip_pol_w", net.ip_pol_w
    yield "ip_pol_b", net.ip_pol_b
    yield from conv("value", net.value)
    for fc in ("ip1_val_w", "ip1_val_b", "ip2_val_w", "ip2_val_b"):
        yield fc, getattr(net, fc)


# ---------------------------------------------------------------------------
# Shortest float32 text, vectorised
# ---------------------------------------------------------------------------
#
# For each value we find the fewest significant digits p (1..9) whose nearest
# p-digit decimal D lies inside the value's float32 rounding interval, then lay
# out sign, digits, point and exponent in fixed cells and squeeze out the empty
# ones — every step a NumPy operation over a chunk of values.
#
# Correctness: D is accepted only if |D − x| < (1 − 2^-20)·h, with h the smaller of
# the half-gaps to x's float32 neighbours (exact, from x's bits). The test runs in
# decimal units, |m − x·10^k| < h·10^k; its float64 rounding error (≤ 2^-52·x·10^k)
# is 128 times below the margin (≥ 2^-45·x·10^k, as h ≥ 2^-25·x). So a correctly
# rounding reader (strtof, as the engines use) and one that rounds through float64
# first (NumPy, Python) both land on x. The margin, and using the smaller half-gap on
# both sides, cost a digit only for decimals on the interval's edge — ties that
# need a half-gap with few decimal digits, i.e. values ≥ 2^15, never typical weights.
# Nine digits always fit: the nearest 9-digit decimal is within 5e-9·x, h ≥ 3e-8·x.

_DIGITS = 9
_E_MIN, _E_MAX = -46, 39  # decimal exponents of float32 values (1.4e-45 .. 3.4e38), with slack
# 10^e at index e − _E_MIN, correctly rounded (exact for 0 ≤ e ≤ 22); scales reach 10^53 for subnormals.
_POW10 = np.array([float(f"1e{e}") for e in range(_E_MIN, 60)])
_HALF_MARGIN = 0.5 * (1.0 - 2.0 ** -20)
_LOG10_2 = float(np.log10(2.0))
_LOG10_MARGIN = float(np.log10(_HALF_MARGIN))  # log10(2·half) = (u + 1)·log10 2 + this
_CHUNK = 1 << 14  # values per pass: temporaries of 128 KB stay in cache (measured best of 4K..1M)
_SCI_BELOW, _SCI_FROM = -4, 9  # positional for 1e-4 ≤ |x| < 1e9, else d.ddde±XX


def _words(texts: list[str]) -> np.ndarray:
    """Each text (≤ 8 ASCII characters) as one little-endian uint64: character i in byte i, NUL-padded."""
    return np.frombuffer(b"".join(t.encode().ljust(8, b"\0") for t in texts), "<u8").copy()


# The four ASCII digits of 0..9999 as little-endian uint32 words (most significant digit in byte 0).
_FOUR_DIGITS = np.frombuffer(b"".join(b"%04d" % i for i in range(10000)), "<u4").astype("<u8")
# Per (sign, decimal exponent): the sign and, for 1e-4 ≤ |x| < 1, the "0.000" prefix.
_PREFIX = np.concatenate([
    _words([sign + ("0." + "0" * (-e - 1) if _SCI_BELOW <= e < 0 else "") for e in range(_E_MIN, _E_MAX + 1)])
    for sign in ("", "-")
])
# Per decimal exponent: the "e±XX" suffix of scientific notation, else nothing.
_SUFFIX = _words([f"e{e:+03d}" if e < _SCI_BELOW or e >= _SCI_FROM else "" for e in range(_E_MIN, _E_MAX + 1)])
_N_EXP = _E_MAX - _E_MIN + 1
# _LOW[k]: the low k bytes of a word (k ≥ 8: all of it).
_LOW = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [0xFFFFFFFFFFFFFFFF] * 4, "<u8")
_DOT = np.uint64(ord("."))


def format_floats(values: np.ndarray) -> bytes:
    """One text line: the shortest decimal of each float32 that reads back as exactly that float, '\\n'-ended.

    Values must be finite (the writer checks). -0.0 is written "-0".
    """
    x = np.ascontiguousarray(values, dtype=np.float32).ravel()
    parts = [_format_chunk(x[i:i + _CHUNK]) for i in range(0, x.size, _CHUNK)]
    return b" ".join(parts) + b"\n"


def _candidate(a, base, p, half):
    """Nearest p-digit decimal m·10^-k to a (m returned), and whether it reads back as a.

    Compared in decimal units, |m − a·10^k| < half·10^k, with 10^k = _POW10[p + base] and
    base = −1 − e10 − _E_MIN; the products' rounding stays far inside the margin (note above).
    """
    scale = _POW10[p + base]
    scaled = a * scale
    m = np.rint(scaled)
    return m, np.abs(m - scaled) < half * scale


def _shortest(ax: np.ndarray):
    """(m, p, e10): the shortest decimal m·10^(e10 − p + 1) reading back as each |x| > 0.

    `half` is the smaller of the half-gaps to the two float32 neighbours, shrunk by the
    margin, and used on both sides (the note above says what that costs: nothing for weights).
    """
    a = ax.astype(np.float64)
    # From the bits: a ∈ [2^(b−1), 2^b), spacing 2^(b−24) (2^-149 for subnormals); the gap
    # below a power of two is half as wide, except at the smallest normal 2^-126, whose
    # lower neighbours are subnormals spaced like it.
    bits = ax.view(np.uint32)
    biased = (bits >> np.uint32(23)).astype(np.int64)  # 0 for subnormals
    b = np.where(biased > 0, biased - 126, np.frexp(ax)[1])
    narrow = ((bits & np.uint32(0x7FFFFF)) == 0) & (biased > 1)
    ulp_exponent = np.maximum(b - 24, -149) - narrow
    half = ((ulp_exponent + 1023) << 52).view(np.float64) * _HALF_MARGIN  # 2^u · ½(1 − 2^-20)
    # Decimal exponent: log10(a) ∈ [(b−1)·log10 2, b·log10 2), so one comparison with an exact
    # table settles it (a float32 never lies between 10^e and 10^e's float64 rounding).
    e10 = np.floor((b - 1) * _LOG10_2).astype(np.int64)
    e10 += a >= _POW10[e10 + 1 - _E_MIN]
    base = -1 - e10 - _E_MIN
    # Digits that surely suffice: decimal spacing 10^(e10−p+1) below 2·half.
    sure = np.floor(e10 - (ulp_exponent + 1) * _LOG10_2 - _LOG10_MARGIN).astype(np.int64) + 2
    p = np.clip(sure, 1, _DIGITS)
    m, ok = _candidate(a, base, p, half)
    # Step up where p fell short ("p digits suffice" is monotone in p: the p-digit
    # decimals are a subset of the (p+1)-digit ones).
    sel = np.flatnonzero(~ok)
    while sel.size:
        if np.any(p[sel] >= _DIGITS):  # impossible by the argument above; never write a wrong file
            raise AssertionError("float32 formatting: 9 digits did not round-trip")
        p[sel] += 1
        m[sel], ok_s = _candidate(a[sel], base[sel], p[sel], half[sel])
        sel = sel[~ok_s]
    # Step down while fewer digits still hit the interval by luck (0.5 needs one).
    # The first step is tried on the whole chunk at once (no gathers), the rest on the few left.
    fewer = np.maximum(p - 1, 1)
    m_f, better = _candidate(a, base, fewer, half)
    better &= p > 1
    p = np.where(better, fewer, p)
    m = np.where(better, m_f, m)
    sel = np.flatnonzero(better & (p > 1))
    while sel.size:
        fewer = p[sel] - 1
        m_s, ok_s = _candidate(a[sel], base[sel], fewer, half[sel])
        sel = sel[ok_s]
        p[sel], m[sel] = fewer[ok_s], m_s[ok_s]
        sel = sel[p[sel] > 1]
    return m.astype(np.int64), p, e10


def _format_chunk(x: np.ndarray) -> bytes:
    """Format one chunk: each value becomes three 8-byte words (sign and "0.000" prefix; up to
    8 mantissa cells; 2 more cells, the exponent and the separator), built with whole-word
    integer operations, then NUL bytes are squeezed out."""
    negative = np.signbit(x)
    ax = np.abs(x)
    zero = ax == 0
    ax[zero] = 1  # placeholder, restored to "0" below
    m, p, e10 = _shortest(ax)
    # A carry (9.96 -> 10 at two digits) gives p + 1 digits; the exponent moves up one.
    carry = m >= _POW10[p - _E_MIN]
    exponent = e10 + carry
    n = p + carry
    m[zero], exponent[zero], n[zero] = 0, 0, 1
    while True:  # strip trailing zeros (only a carry leaves one)
        z = (m % 10 == 0) & (m != 0)
        if not z.any():
            break
        m[z] //= 10
        n[z] -= 1
    # Nine digits, left-aligned (0.0125 -> "125000000"): eight in one word, the ninth apart.
    m9 = m * _POW10[_DIGITS - n - _E_MIN].astype(np.int64)
    eight, ninth = np.divmod(m9, 10)
    high, low = np.divmod(eight, 10000)
    digits = _FOUR_DIGITS[high] | (_FOUR_DIGITS[low] << np.uint64(32))
    ninth = ninth.astype("<u8") + np.uint64(ord("0"))

    # Where the point goes (after `point` digits) and how many digit cells show.
    # Positional integers show their trailing zeros: 1.5e3 -> "1500".
    sci = (exponent < _SCI_BELOW) | (exponent >= _SCI_FROM)
    fraction = ~sci & (exponent < 0)
    point = np.where(sci, 1, exponent + 1)
    shown = np.where(sci | fraction, n, np.maximum(n, exponent + 1))
    has_point = ~fraction & (n > point)
    point = np.where(has_point, point, 10)  # 10: no point
    # Cells 0..7: digits before the point, the point, digits after it shifted one cell on.
    keep = _LOW[point]
    lo = (digits & keep) | ((digits << np.uint64(8)) & ~_LOW[point + 1])
    lo |= np.where(point < 8, _DOT << (np.minimum(point, 7) * 8).astype("<u8"), np.uint64(0))
    # Cells 8, 9: what the shift pushed out of cell 7 (or the point itself) and the ninth digit.
    hi = np.where(point <= 7, (digits >> np.uint64(56)) | (ninth << np.uint64(8)),
                  np.where(point == 8, _DOT | (ninth << np.uint64(8)), ninth))
    length = shown + has_point
    lo &= _LOW[np.minimum(length, 8)]
    hi &= _LOW[np.maximum(length - 8, 0)]

    words = np.empty((x.size, 3), "<u8")
    words[:, 0] = _PREFIX[negative * _N_EXP + (exponent - _E_MIN)]
    words[:, 1] = lo
    words[:, 2] = hi | (_SUFFIX[exponent - _E_MIN] << np.uint64(16)) | np.uint64(ord(" ") << 48)
    flat = words.view(np.uint8).ravel()
    return flat[flat != 0].tobytes()[:-1]
