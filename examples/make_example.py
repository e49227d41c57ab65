"""Regenerate examples/example-4x32-se.pb.gz, the bundled example network.

A small Lc0-style chess network shaped like real lczero-training output
(SE residual tower, convolution policy, WDL value, moves-left head, LINEAR16),
with learned batch-norm gammas and betas and no conv biases: exactly the kind of
file that old engines silently misread and that `lcconvert fold-bias` exists to
fix. Deterministic (seed 2018): running this again rewrites the same bytes.

    python examples/make_example.py
"""
from pathlib import Path

from lcconvert.synth import make_network, write_pb

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "example-4x32-se.pb.gz"


def main() -> None:
    net = make_network("chess", blocks=4, filters=32, se_ratio=4, policy="convolution", value="wdl",
                       moves_left=True, gammas=True, betas=True, biases=False, seed=2018)
    write_pb(net, EXAMPLE)
    print(f"wrote {EXAMPLE}")


if __name__ == "__main__":
    main()
