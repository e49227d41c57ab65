"""Shared fixtures: the real networks in ../shared/data and a CLI runner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MAIA = DATA / "maia-1100.pb.gz"
LZ_0K = DATA / "lz-0k.txt"
LZ_RANDOM = DATA / "lz-random-2x16.txt.gz"
REFERENCE = DATA / "reference"


@pytest.fixture
def run_cli():
    """Run `lcconvert ARGS` in-process; returns the click Result (exit_code, stdout, stderr)."""
    from lcconvert.cli import main

    def run(*args, input=None):
        runner = CliRunner()
        return runner.invoke(main, [os.fspath(a) for a in args], input=input, catch_exceptions=False)

    return run
