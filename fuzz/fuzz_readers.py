"""Coverage-guided fuzzing of every lcconvert reader with atheris (long runs, outside CI).

    pip install atheris
    python fuzz/fuzz_readers.py -max_total_time=3600 -rss_limit_mb=4096 fuzz/corpus/

The first byte of each input picks a reader (Lc0 protobuf, text weights, gzip,
planes file, training YAML); the rest is that reader's input. The harness also
evaluates, folds and re-serializes every network a reader accepts. Anything but
an `LcconvertError` is a finding: atheris stops and writes the input as
`crash-…` in the current folder; reproduce it with
`python fuzz/fuzz_readers.py crash-…`. Seed the corpus folder with real files
(`python fuzz/fuzz_readers.py --seed-corpus fuzz/corpus/` copies ../shared/data's
small networks there, each with the selector byte its reader needs).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
READERS = ("pb", "text", "gzip", "planes", "yaml")


def _check_network(net) -> None:
    import numpy as np

    from lcconvert import fold, forward, io, verify
    from lcconvert.constants import Family

    if verify.usable_problems(net):
        return
    planes = np.ones((1, net.input_planes, net.board_size, net.board_size), dtype=np.float32)
    forward.evaluate(net, planes)
    if net.family is Family.CHESS and not net.attention_body:
        folded, _ = fold.fold(net)
        io.serialize(folded, io.PB)


def one_input(data: bytes) -> None:
    from lcconvert.errors import LcconvertError
    from lcconvert.formats import gz, lc0_proto, planes, text, training_config

    if not data:
        return
    reader, body = READERS[data[0] % len(READERS)], data[1:]
    try:
        if reader == "pb":
            _check_network(lc0_proto.read(body, "fuzz.pb"))
        elif reader == "text":
            _check_network(text.read(body, "fuzz.txt"))
        elif reader == "gzip":
            gz.gunzip(body, "fuzz.gz", limit=64 << 20)
        elif reader == "planes":
            planes.read(body, "fuzz.npy")
        else:
            with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
                f.write(body)
                f.flush()
                training_config.load(f.name)
    except LcconvertError as e:
        if "\n" in e.message:
            raise AssertionError(f"multi-line error: {e.message!r}") from None


def seed_corpus(folder: Path) -> None:
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    seeds = {
        "pb": [gzip.decompress((DATA / "reference/planes" / f"tiny-format{n}.pb.gz").read_bytes()) for n in (1, 4)],
        "text": [(DATA / "lz-0k.txt").read_bytes()],
        "gzip": [(DATA / "lz-random-2x16.txt.gz").read_bytes()],
        "planes": [],
    }
    for reader, blobs in seeds.items():
        for i, blob in enumerate(blobs):
            (folder / f"{reader}-{i}").write_bytes(bytes([READERS.index(reader)]) + blob)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-corpus":
        seed_corpus(Path(sys.argv[2]))
        return
    import atheris

    os.environ.setdefault("LCCONVERT_MAX_INFLATE", "64M")
    with atheris.instrument_imports():
        import lcconvert.formats.lc0_proto  # noqa: F401
        import lcconvert.formats.planes  # noqa: F401
        import lcconvert.formats.text  # noqa: F401
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
