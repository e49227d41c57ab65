"""Benchmark networks of any size that compress like a real one: a real network resampled per output channel.

Why: random normal weights do not compress like trained ones (lcconvert.synth's
networks gzip to 0.92–0.93 of their payload, real residual towers to ~0.88), and
gzip time and output size are part of what the benchmarks measure. So the
network is built by `lcconvert.synth.make_network` (any blocks × filters, SE,
convolution policy, WDL value, γ and β as training exports them (β learned everywhere, γ on
input and conv2, exactly 1 on conv1), means
and variances calibrated on activations), except that every weight matrix is
resampled from a real network (default: maia-1100, 6×64) per output channel:
each output channel (row) takes a random row of the real network's weights of
that kind (3×3 residual convolutions for convolutions, fully connected rows for
FC layers), normalized to unit RMS and scaled to synth's He scale, and draws its
entries from that row's values with replacement, each with a random sign. A
row's distribution of magnitudes (tails, dead rows, the share of tiny weights) is
kept; its exact sequence is not (a copied sequence would let deflate find
repeats no trained network has), nor its mean (a trained network's row means
fit its training; in an untrained deep tower they saturate every output).

Since the batch-norm statistics are measured on the resampled weights, the
network computes sane outputs at any depth (resampling the real statistics too
would saturate every output of a 20-block tower). The compression ratio of the
result is measured and printed by the benchmarks (`describe`).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

DEFAULT_SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "maia-1100.pb.gz")
SOURCE_ENV = "LCCONVERT_BENCH_SOURCE"


def source_path() -> str:
    path = os.environ.get(SOURCE_ENV) or DEFAULT_SOURCE
    if not os.path.exists(path):
        raise SystemExit(f"benchmark source network {path} not found (set {SOURCE_ENV} to a real .pb.gz)")
    return path


def _pools(real) -> dict[str, list[np.ndarray]]:
    """The real network's weight rows, each at unit RMS: 3×3 convolution rows and FC rows."""
    conv, fc = [], []
    for name, block in real.conv_blocks():
        if name.startswith("residual."):
            cout = block.out_channels
            conv += list(block.weights.values.astype(np.float64).reshape(cout, -1))
    for r in real.residual:
        if r.se is not None:
            fc += list(r.se.w1.values.astype(np.float64).reshape(r.se.b1.size, -1))
            fc += list(r.se.w2.values.astype(np.float64).reshape(r.se.b2.size, -1))
    for w, b in (("ip1_val_w", "ip1_val_b"), ("ip2_val_w", "ip2_val_b"), ("ip1_mov_w", "ip1_mov_b")):
        if getattr(real, w) is not None:
            fc += list(getattr(real, w).values.astype(np.float64).reshape(getattr(real, b).size, -1))

    def unit(rows):
        rows = [r / np.sqrt(np.mean(r * r)) for r in rows if np.any(r)]
        # The less peaked half of the rows (kurtosis at most the median): a row that is one or two
        # large weights passes a single input channel on, and chains of those through an untrained
        # tower amplify LINEAR16 rounding into different policies (a trained network's do not).
        kurtosis = np.array([np.mean(r ** 4) for r in rows])
        return [r for r, k in zip(rows, kurtosis) if k <= np.median(kurtosis)]

    return {"conv": unit(conv), "fc": unit(fc)}


@contextlib.contextmanager
def _resampled_weights(real, seed: int):
    """While active, synth's weight draws (`_Builder.normal` of a matrix) come from the real rows."""
    from lcconvert import synth

    pools = _pools(real)
    rng = np.random.default_rng(seed + 1)
    plain = synth._Builder.normal

    def normal(self, shape, std):
        shape = tuple(np.atleast_1d(shape))
        if len(shape) not in (2, 4) or shape[1] == 1:
            return plain(self, shape, std)  # per-channel vectors and scales stay synth's
        rows, cols = shape[0], int(np.prod(shape[1:]))
        pool = pools["conv" if len(shape) == 4 else "fc"]
        picks = rng.integers(0, len(pool), size=rows)
        out = np.empty((rows, cols), np.float32)
        for i, k in enumerate(picks):
            out[i] = rng.choice(pool[k], size=cols) * std
        # Random signs: each row keeps its magnitudes, but not its mean, which on positions unlike
        # the calibration boards would drive an untrained deep tower to saturation.
        out *= rng.choice(np.array([-1.0, 1.0], np.float32), size=out.shape)
        return out.reshape(shape)

    synth._Builder.normal = normal
    try:
        yield
    finally:
        synth._Builder.normal = plain


def make_network(blocks: int, filters: int, se_ratio: int = 8, seed: int = 0, source: str | None = None):
    """A LINEAR16 network of `blocks` × `filters` whose weights are resampled from a real network."""
    from lcconvert import io
    from lcconvert.synth import make_network as synth_network

    real = io.load(source or source_path())
    with _resampled_weights(real, seed):
        net = synth_network(blocks=blocks, filters=filters, se_ratio=se_ratio, gammas=True, betas=True,
                            biases=False, seed=seed)
    net.source.path = f"<{blocks}x{filters} resampled from {os.path.basename(source or source_path())}>"
    return net


def write_network(blocks: int, filters: int, path: str, se_ratio: int = 8, seed: int = 0) -> dict:
    """Write the benchmark network as .pb.gz (gzip level 9, as lczero-training does); returns its facts."""
    import zlib

    from lcconvert import io

    net = make_network(blocks, filters, se_ratio, seed)
    payload, _ = io.serialize(net, io.PB)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # zlib level 9, as lczero-training's gzip.open writes
    packed = c.compress(payload) + c.flush()
    with open(path, "wb") as f:
        f.write(packed)
    return {"blocks": blocks, "filters": filters, "parameters": net.parameters,
            "float32_bytes": 4 * net.parameters, "payload_bytes": len(payload), "file_bytes": len(packed),
            "compression_ratio": len(packed) / len(payload)}


def describe(facts: dict) -> str:
    return (f"network: {facts['blocks']}x{facts['filters']} SE, resampled per output channel from a real network, "
            f"{facts['parameters'] / 1e6:.1f} M parameters (float32 {facts['float32_bytes'] / 1e6:.0f} MB); "
            f"LINEAR16 payload {facts['payload_bytes'] / 1e6:.1f} MB, .pb.gz {facts['file_bytes'] / 1e6:.1f} MB: "
            f"compression ratio {facts['compression_ratio']:.3f} (gzip -9)")
