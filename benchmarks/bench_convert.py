"""Benchmark: `convert` of an untouched .pb.gz against the gzip codec floor, in the same run.

    python benchmarks/bench_convert.py [--blocks 20] [--filters 256] [--repeat 3]

Generates a 20-block × 256-filter SE network (LINEAR16, random weights: the
payload compresses about as badly as a real network's) with lcconvert.synth and
writes it as .pb.gz at gzip level 9, as lczero-training does. Then, best of
`--repeat` each:

- lcconvert: `pipeline.write_file` (pb.gz → pb.gz, no re-encoding) — what
  `lcconvert convert IN OUT` does after argument parsing;
- floor: read the same file, gunzip it, gzip the payload at level 9 and write it,
  with zlib alone — no tool that reads and rewrites the file can do less;
- reference: the `net.py`-style pipeline — parse, decode every LINEAR16 layer to
  floats and encode it back, serialize, gzip — which is what a converter pays
  when it does not keep the original bytes.

Prints each figure, the per-stage split of the lcconvert path, and the ratio to
the floor (target ≤ 1.5×). Exit status 1 when the ratio is above the target.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import zlib

from bench_setup import network_parser, write_network

TARGET_RATIO = 1.5


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = network_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)

    from lcconvert import codecs, files, io, pipeline
    from lcconvert.formats import gz, lc0_proto
    from lcconvert.tensor import Tensor
    from lcconvert.transforms import map_tensors

    with tempfile.TemporaryDirectory(prefix="lcconvert-bench-") as tmp:
        src = os.path.join(tmp, "net.pb.gz")
        out = os.path.join(tmp, "out.pb.gz")
        floor_out = os.path.join(tmp, "floor.pb.gz")
        net, setup = write_network(args, src)
        del net
        size = os.path.getsize(src)
        with open(src, "rb") as f:
            payload_size = len(zlib.decompress(f.read(), wbits=31))
        print(f"network: {args.blocks} blocks x {args.filters} filters, SE ratio {args.se_ratio}, LINEAR16; "
              f"{size / 1e6:.1f} MB gzip level {gz.DEFAULT_LEVEL}, {payload_size / 1e6:.1f} MB payload "
              f"(generated and written in {setup:.1f} s)")

        def lcconvert_convert():
            pipeline.write_file(src, out, force=True)

        def floor():
            with open(src, "rb") as f:
                data = zlib.decompress(f.read(), wbits=31)
            c = zlib.compressobj(gz.DEFAULT_LEVEL, zlib.DEFLATED, 31)
            packed = c.compress(data) + c.flush()
            with open(floor_out, "wb") as f:
                f.write(packed)

        def full_decode_encode():
            loaded = io.load(src)

            def roundtrip(_name, t):
                raw, lo, hi = codecs.encode(t.values, t.encoding)
                return Tensor(t.encoding, raw, lo, hi)

            pipeline.save(map_tensors(loaded, roundtrip), out, force=True, inputs=(src,))

        t_floor = best_of(args.repeat, floor)
        t_ours = best_of(args.repeat, lcconvert_convert)
        t_full = best_of(args.repeat, full_decode_encode)

        # The same untouched path split into stages (one run each, after the timed runs).
        stages = {}
        t0 = time.perf_counter()
        raw = files.read_file(src)
        t1 = time.perf_counter()
        data = gz.gunzip(raw, src)
        t2 = time.perf_counter()
        loaded = lc0_proto.read(data, src)
        t3 = time.perf_counter()
        serialized, _ = io.serialize(loaded, io.PB)
        t4 = time.perf_counter()
        packed = gz.gzip_bytes(serialized)
        t5 = time.perf_counter()
        files.write_atomic(out, packed)
        t6 = time.perf_counter()
        stages = {"read": t1 - t0, "gunzip": t2 - t1, "parse+check": t3 - t2, "serialize": t4 - t3,
                  "gzip -9": t5 - t4, "write": t6 - t5}
        identical = serialized == data

    ratio = t_ours / t_floor
    print(f"floor  (read + gunzip + gzip -9 + write, zlib only): {t_floor:7.3f} s")
    print(f"lcconvert convert (pipeline.write_file, untouched):    {t_ours:7.3f} s")
    print(f"net.py-style (full LINEAR16 decode + encode):        {t_full:7.3f} s   ({t_full / t_floor:.2f}x floor)")
    print("stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))
    print(f"payload byte-identical after the round trip: {'yes' if identical else 'NO'}")
    print(f"ratio lcconvert / floor: {ratio:.2f}x (target <= {TARGET_RATIO}x): "
          f"{'ok' if ratio <= TARGET_RATIO else 'ABOVE TARGET'}")
    return 0 if ratio <= TARGET_RATIO and identical else 1


if __name__ == "__main__":
    sys.exit(main())
