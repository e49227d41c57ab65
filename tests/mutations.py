"""A deterministic corpus of damaged inputs, and the promises every command must keep on each of them.

Why: lcconvert exists so that nobody ships a silently broken network. Whatever
the input — truncated, bit-flipped, with fields doubled or removed, shapes
changed, NaN/Inf injected, a decompression bomb — every command must either
succeed honestly or fail with one line `lcconvert: FILE: problem` and exit 2
(exit 1 for a failed verification), leave no output file behind, never modify
its input, print only valid JSON, and never let a NumPy warning reach stderr;
and a file it writes must pass its own `verify` structure check.

`cases()` builds the corpus from the real networks in ../shared/data and a small
generated one, seeded, so every run sees the same cases; `run_case()` runs one
command on one case and returns the violations. tests/test_fuzz_corpus.py runs
it in CI; `python tests/mutations.py --seeds N` runs N times as many mutations
outside CI and prints the outcomes by kind and the slowest case.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# The gzip inflate cap while the corpus runs: small, so that the bombs below hit it in milliseconds.
BOMB_CAP = "8M"
BOMB_BYTES = 64 << 20


@dataclasses.dataclass
class Case:
    """One damaged input and the command to run on it."""

    name: str  # base:mutation:index
    data: bytes  # the input file's bytes
    suffix: str  # the input's file name ending (.pb.gz, .txt, ...)
    command: str  # inspect, inspect-betas-json, convert, verify, fold-bias, eval, diff
    family: str  # chess or go: which planes `eval` gets


@dataclasses.dataclass
class Outcome:
    case: str
    command: str
    exit_code: int
    seconds: float
    violations: list[str]
    first_line: str


# -- the corpus ------------------------------------------------------------------------------

def _payload(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _small_chess(tmp: Path) -> bytes:
    """A 1-block × 8-filter SE chess net with learned γ/β, conv policy, WDL, moves-left (made here)."""
    from lcconvert import pipeline, synth

    net = synth.make_network(blocks=1, filters=8, se_ratio=4, moves_left=True, seed=7)
    path = tmp / "small.pb.gz"
    pipeline.save(net, str(path), force=True)
    return path.read_bytes()


def bases(tmp: Path) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, suffix, family) of the undamaged inputs."""
    return {
        "lz-0k": ((DATA / "lz-0k.txt").read_bytes(), ".txt", "go"),
        "lz-random": ((DATA / "lz-random-2x16.txt.gz").read_bytes(), ".txt.gz", "go"),
        "tiny-format1": ((DATA / "reference/planes/tiny-format1.pb.gz").read_bytes(), ".pb.gz", "chess"),
        "tiny-format4": ((DATA / "reference/planes/tiny-format4.pb.gz").read_bytes(), ".pb.gz", "chess"),
        "small-se": (_small_chess(tmp), ".pb.gz", "chess"),
        "attention": ((DATA / "attention/attn-body-headformat.pb.gz").read_bytes(), ".pb.gz", "chess"),
    }


def _top_level_fields(payload: bytes) -> list[tuple[int, int]]:
    """(start, end) of each top-level protobuf field of `payload`."""
    from lcconvert.formats.lc0_proto import top_level_fields

    return [(start, end) for _, start, end in top_level_fields(payload)]


def _layers(msg):
    """Every Layer message inside a parsed Net, depth first."""
    stack = [msg.weights]
    while stack:
        m = stack.pop()
        for field, value in m.ListFields():
            if field.message_type is None:
                continue
            values = value if getattr(field, "is_repeated", False) else [value]
            for v in values:
                if field.message_type.name == "Layer":
                    yield v
                else:
                    stack.append(v)


def _pb_mutations(payload: bytes, rng: np.random.Generator):
    """(kind, payload) pairs: structural damage made through the schema and on the wire."""
    from lcconvert._proto import net_pb2

    msg = net_pb2.Net.FromString(payload)
    layers = list(_layers(msg))
    spans = _top_level_fields(payload)

    def edited(fn):
        m = net_pb2.Net()
        m.CopyFrom(msg)
        fn(m, list(_layers(m)))
        return m.SerializeToString()

    i = int(rng.integers(len(spans)))
    s, e = spans[i]
    yield "duplicate-field", payload + payload[s:e]
    yield "remove-field", payload[:s] + payload[e:]
    yield "concatenate", payload + payload
    k = int(rng.integers(len(layers)))
    yield "drop-layer", edited(lambda m, ls: ls[k].Clear())
    yield "shape-shorter", edited(lambda m, ls: setattr(ls[k], "params", ls[k].params[:-2]))
    yield "shape-longer", edited(lambda m, ls: setattr(ls[k], "params", ls[k].params + b"\x01\x02"))
    yield "odd-bytes", edited(lambda m, ls: setattr(ls[k], "params", ls[k].params + b"\x01"))
    for bad in (float("nan"), float("inf"), -float("inf")):
        yield f"range-{bad}", edited(lambda m, ls: setattr(ls[k], "min_val", bad))
    yield "range-reversed", edited(lambda m, ls: (setattr(ls[k], "min_val", 1.0), setattr(ls[k], "max_val", -1.0)))

    def float32_with(value):
        def fn(m, ls):
            layer = ls[k]
            n = max(1, len(layer.params) // 2)
            v = np.ones(n, dtype="<f4")
            v[int(rng.integers(n))] = value
            layer.params, layer.encoding = v.tobytes(), 4
            layer.ClearField("min_val")
            layer.ClearField("max_val")
        return fn

    yield "float32-nan", edited(float32_with(np.nan))
    yield "float32-inf", edited(float32_with(np.inf))
    yield "float32-huge", edited(float32_with(3e38))
    for field, number in (("input", 1), ("output", 2), ("network", 3), ("policy", 4), ("value", 5)):
        yield f"unknown-{field}", _with_unknown_enum(msg, number, 99)
    yield "weights-encoding-7", _with_unknown_weights_encoding(msg, 7)
    yield "license-not-utf8", payload + b"\x12\x02\xff\xfe" if not msg.HasField("license") else payload
    yield "magic-wrong", edited(lambda m, ls: setattr(m, "magic", 0x1C1))
    yield "min-version-huge", edited(lambda m, ls: setattr(m.min_version, "major", 99))


def _with_unknown_enum(msg, number: int, value: int) -> bytes:
    """`msg` with NetworkFormat field `number` set to a value the schema does not know (on the wire)."""
    from lcconvert._proto import net_pb2

    m = net_pb2.Net()
    m.CopyFrom(msg)
    fmt = net_pb2.Format()
    fmt.CopyFrom(m.format)
    m.ClearField("format")
    nf = fmt.network_format
    name = nf.DESCRIPTOR.fields_by_number[number].name
    nf.ClearField(name)
    nf_bytes = nf.SerializeToString() + bytes([number << 3, value])
    fmt.ClearField("network_format")
    fmt_bytes = fmt.SerializeToString() + b"\x12" + _len(nf_bytes) + nf_bytes
    return m.SerializeToString() + b"\x22" + _len(fmt_bytes) + fmt_bytes


def _with_unknown_weights_encoding(msg, value: int) -> bytes:
    from lcconvert._proto import net_pb2

    m = net_pb2.Net()
    m.CopyFrom(msg)
    fmt = net_pb2.Format()
    fmt.CopyFrom(m.format)
    m.ClearField("format")
    fmt.ClearField("weights_encoding")
    fmt_bytes = fmt.SerializeToString() + bytes([1 << 3, value])
    return m.SerializeToString() + b"\x22" + _len(fmt_bytes) + fmt_bytes


def _len(b: bytes) -> bytes:
    n, out = len(b), bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text_mutations(payload: bytes, rng: np.random.Generator):
    lines = payload.split(b"\n")
    i = int(rng.integers(1, len(lines) - 1))
    yield "delete-line", b"\n".join(lines[:i] + lines[i + 1:])
    yield "duplicate-line", b"\n".join(lines[:i + 1] + lines[i:])
    yield "version-line", b"\n".join([b"7"] + lines[1:])
    tokens = lines[i].split(b" ")
    for junk in (b"nan", b"inf", b"-inf", b"1e999", b"x", b"0x10", b""):
        j = int(rng.integers(len(tokens)))
        yield f"token-{junk.decode() or 'empty'}", b"\n".join(
            lines[:i] + [b" ".join(tokens[:j] + [junk] + tokens[j + 1:])] + lines[i + 1:])
    yield "line-shorter", b"\n".join(lines[:i] + [b" ".join(tokens[:-1])] + lines[i + 1:])
    yield "line-longer", b"\n".join(lines[:i] + [lines[i] + b" 0.5"] + lines[i + 1:])
    yield "variance-negative", b"\n".join(lines[:4] + [b" ".join(b"-1" for _ in lines[4].split(b" "))] + lines[5:])
    yield "not-utf8", payload[:100] + b"\xff\xfe" + payload[100:]


def _byte_mutations(data: bytes, rng: np.random.Generator, payload: bytes):
    """Damage to the file as bytes: truncations, byte and bit flips (gzip stream and payload)."""
    compressed = data[:2] == b"\x1f\x8b"
    for frac in (0.0, 0.01, 0.5, 0.99):
        cut = int(len(data) * frac)
        yield f"truncate-{frac}", data[:cut]
    for n in range(4):
        b = bytearray(data)
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
        yield f"bit-flip-{n}", bytes(b)
    for n in range(4):
        p = bytearray(payload)
        for _ in range(1 + n):
            p[int(rng.integers(len(p)))] = int(rng.integers(256))
        yield f"payload-bytes-{n}", gzip.compress(bytes(p)) if compressed else bytes(p)
    cut = int(len(payload) * float(rng.uniform(0.05, 0.95)))
    yield "payload-truncated", gzip.compress(payload[:cut]) if compressed else payload[:cut]
    yield "trailing-garbage", data + b"garbage"
    yield "concatenated-file", data + data


def _bombs():
    c = gzip.compress(bytes(BOMB_BYTES), compresslevel=9)
    yield "bomb", c
    yield "bomb-after-valid-member", gzip.compress(b"\x0d\xc0\x01\x00\x00") + c


COMMANDS = ("inspect", "inspect-betas-json", "convert", "verify", "fold-bias", "eval", "diff")


def cases(tmp: Path, seeds: int = 1) -> list[Case]:
    """The corpus: every mutation of every base input, for every command (deterministic per seed)."""
    out: list[Case] = []
    for seed in range(seeds):
        for base, (data, suffix, family) in bases(tmp).items():
            rng = np.random.default_rng(abs(hash_name(base)) % (1 << 32) + seed)
            payload = _payload(data)
            mutated = list(_byte_mutations(data, rng, payload))
            pb = suffix.startswith(".pb")
            inner = _pb_mutations(payload, rng) if pb else _text_mutations(payload, rng)
            for kind, p in inner:
                mutated.append((kind, gzip.compress(p) if suffix.endswith(".gz") else p))
            if seed == 0:
                mutated += [("empty", b""), ("one-byte", data[:1]), *_bombs()]
            for i, (kind, blob) in enumerate(mutated):
                for command in COMMANDS:
                    out.append(Case(f"{base}:{kind}:{seed}.{i}", blob, suffix, command, family))
    return out


def hash_name(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


# -- running one case -----------------------------------------------------------------------

def _planes(workdir: Path, family: str) -> Path:
    path = workdir / f"planes-{family}.npy"
    if not path.exists():
        if family == "chess":
            planes = np.load(DATA / "reference/maia-1100.lc0.npz")["planes"][:2]
        else:
            planes = np.load(DATA / "reference/lz-0k.leelaz.npz")["planes"][:2]
        np.save(path, planes)
    return path


def _strict_json(text: str):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def run_case(case: Case, workdir: Path, base_path: Path | None = None) -> Outcome:
    """Run one command on one damaged input in `workdir` (in-process); return what it broke."""
    from click.testing import CliRunner

    from lcconvert import io, verify
    from lcconvert.cli import main

    src = workdir / f"in{case.suffix}"
    src.write_bytes(case.data)
    before = hashlib.sha256(case.data).hexdigest()
    out_suffix = ".txt" if case.suffix.startswith(".txt") else ".pb.gz"
    out = workdir / f"out{out_suffix}"
    args = {
        "inspect": ["inspect", src],
        "inspect-betas-json": ["inspect", "--betas", "--json", src],
        "convert": ["convert", src, out],
        "verify": ["verify", "--positions", "4", src],
        "fold-bias": ["fold-bias", src, out],
        "eval": ["eval", src, "--planes", _planes(workdir, case.family), "--json"],
        "diff": ["diff", base_path or src, src, "--json"],
    }[case.command]
    listing = set(os.listdir(workdir))
    runner = CliRunner()
    start = time.perf_counter()
    result = runner.invoke(main, [os.fspath(a) for a in args], catch_exceptions=True)
    seconds = time.perf_counter() - start
    violations: list[str] = []
    code = result.exit_code
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        violations.append(f"exception {type(result.exception).__name__}: {result.exception}")
    if code not in (0, 1, 2):
        violations.append(f"exit code {code}")
    if "Traceback" in stderr or "Traceback" in result.stdout:
        violations.append("traceback")
    if "Warning" in stderr:
        violations.append("warning on stderr: " + next(l for l in stderr.splitlines() if "Warning" in l))
    error_lines = [line for line in stderr.splitlines() if line.startswith("lcconvert: ")]
    if code == 2 and (len(stderr.splitlines()) != 1 or len(error_lines) != 1):
        violations.append(f"exit 2 without exactly one error line: {stderr[:300]!r}")
    if code == 1 and len(error_lines) != 1:
        violations.append(f"exit 1 without exactly one error line: {stderr[:300]!r}")
    if any(len(line) > 1000 for line in stderr.splitlines()):
        violations.append("an error line longer than 1000 characters")
    if code == 0 and case.command in ("inspect-betas-json", "eval", "diff"):
        try:
            _strict_json(result.stdout)
        except ValueError as e:
            violations.append(f"invalid JSON: {e}")
    if hashlib.sha256(src.read_bytes()).hexdigest() != before:
        violations.append("input modified")
    leftovers = set(os.listdir(workdir)) - listing - ({out.name} if code == 0 else set())
    if leftovers:
        violations.append(f"files left behind: {sorted(leftovers)}")
    if code == 0 and case.command in ("convert", "fold-bias"):
        try:
            problems = verify.check(io.load(str(out), strict=False))
        except Exception as e:  # noqa: BLE001 - any failure to read back is the violation
            problems = [f"output unreadable: {e}"]
        if problems:
            violations.append(f"wrote a file that verify rejects: {problems[0]}")
    if out.exists():
        out.unlink()
    first = (error_lines or stderr.splitlines() or [""])[0]
    return Outcome(case.name, case.command, code, seconds, violations, first)


def run_all(corpus: list[Case], workdir: Path, base_files: dict[str, Path]) -> list[Outcome]:
    os.environ["LCCONVERT_MAX_INFLATE"] = BOMB_CAP
    return [run_case(c, workdir, base_files.get(c.name.split(":")[0])) for c in corpus]


def summary(outcomes: list[Outcome]) -> str:
    """Outcomes by command and exit code, the violations, and the slowest case."""
    lines = [f"{len(outcomes)} runs"]
    by = {}
    for o in outcomes:
        by.setdefault(o.command, {}).setdefault(o.exit_code, 0)
        by[o.command][o.exit_code] += 1
    for command, codes in sorted(by.items()):
        lines.append(f"  {command:<20} " + ", ".join(f"exit {k}: {v}" for k, v in sorted(codes.items())))
    bad = [o for o in outcomes if o.violations]
    lines.append(f"violations: {len(bad)}")
    lines += [f"  {o.case} {o.command}: {o.violations[0]}" for o in bad[:20]]
    slowest = max(outcomes, key=lambda o: o.seconds)
    lines.append(f"slowest: {slowest.case} {slowest.command} {slowest.seconds:.2f} s (exit {slowest.exit_code})")
    lines.append(f"total: {sum(o.seconds for o in outcomes):.1f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="rounds of seeded mutations (1 = the CI corpus)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lcconvert-fuzz-") as tmp:
        tmp = Path(tmp)
        corpus = cases(tmp, args.seeds)
        base_files = {}
        for name, (data, suffix, _) in bases(tmp).items():
            base_files[name] = tmp / f"base-{name}{suffix}"
            base_files[name].write_bytes(data)
        work = tmp / "work"
        work.mkdir()
        outcomes = run_all(corpus, work, base_files)
        print(summary(outcomes))
        return 1 if any(o.violations for o in outcomes) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
