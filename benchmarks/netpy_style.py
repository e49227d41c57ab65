"""The baseline users run today: a net.py-style round trip of an Lc0 .pb.gz, as one process.

    python benchmarks/netpy_style.py IN.pb.gz OUT.pb.gz

What lczero-training's tf/net.py does to a network file it loads and saves:
parse the protobuf, decode every LINEAR16 layer to float32
(v = min + u16/65535·(max − min)), quantize every layer back from its floats
(new min/max, rounding to the nearest of 65536 levels), serialize, and write
through Python's gzip module at its default level, 9. Written for the benchmarks
(bench_big.py times it as a process beside lcconvert's commands); it depends only
on numpy and the protobuf classes.
"""
from __future__ import annotations

import gzip
import sys

import numpy as np


def _layers(message):
    """Every Weights.Layer inside `message`, depth first."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if getattr(field, "is_repeated", False) or hasattr(value, "__len__") and not hasattr(value, "ListFields") else [value]
        for item in items:
            if item.DESCRIPTOR.name == "Layer":
                yield item
            else:
                yield from _layers(item)


def _decode(layer) -> np.ndarray:
    u = np.frombuffer(layer.params, np.uint16).astype(np.float32) / np.float32(65535)
    return u * np.float32(layer.max_val - layer.min_val) + np.float32(layer.min_val)


def _encode(layer, values: np.ndarray) -> None:
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 0.0
    span = hi - lo
    u = (values - lo) / span if span > 0 else values - lo
    layer.min_val, layer.max_val = lo, hi
    layer.params = np.round(u * 65535).astype(np.uint16).tobytes()


def main(argv=None) -> int:
    src, out = (argv or sys.argv[1:])[:2]
    from lcconvert._proto import net_pb2

    net = net_pb2.Net()
    with gzip.open(src, "rb") as f:
        net.ParseFromString(f.read())
    for layer in _layers(net.weights):
        if layer.params:
            _encode(layer, _decode(layer))
    with gzip.open(out, "wb", compresslevel=9) as f:
        f.write(net.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
