"""Every command's --help teaches it: a summary, examples that use only real options, grouped options, exit status."""
from __future__ import annotations

import shlex

import click
import pytest

from lcconvert.cli import main
from lcconvert.cli_help import EXAMPLES

COMMANDS = sorted(main.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_examples_and_exit_status(run_cli, name):
    r = run_cli(name, "--help")
    assert r.exit_code == 0
    for heading in ("Options:", "Examples:", "Exit status:", "Files:"):
        assert heading in r.stdout, (name, heading)
    assert len(EXAMPLES[name]) >= 2


@pytest.mark.parametrize("name", COMMANDS)
def test_examples_use_real_options(name):
    command = main.commands[name]
    known = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
    for line, _ in EXAMPLES[name]:
        words = shlex.split(line.split("|")[-1].split(">")[0])
        assert words[:2] == ["lcconvert", name], line
        for word in words[2:]:
            if word.startswith("--"):
                assert word in known, (name, word)


def test_checkpoint_options_have_their_own_heading(run_cli):
    text = run_cli("diff", "--help").stdout
    options, checkpoint = text.split("TF checkpoint input (ignored for other inputs):")
    assert "--config" in checkpoint and "--config" not in options.split("Options:")[1]


def test_no_stale_examples():
    assert set(EXAMPLES) == set(main.commands)


def test_binary_output_to_a_terminal_is_refused(tmp_path):
    """`convert net -` with a terminal as stdout refuses (exit 2) unless --force; a pipe gets the bytes."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import MAIA

    code = "import sys; from lcconvert.cli import main; sys.exit(main())"
    main_fd, tty_fd = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-c", code, "convert", str(MAIA), "-"], stdout=tty_fd,
                           stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(tty_fd)
        os.close(main_fd)
    assert r.returncode == 2 and b"standard output is a terminal" in r.stderr
    r = subprocess.run([sys.executable, "-c", code, "convert", str(MAIA), "-"], capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout[:2] == b"\x1f\x8b"


def test_quiet_prints_only_errors_and_data(run_cli, tmp_path):
    from conftest import MAIA

    r = run_cli("verify", "-q", MAIA, "--legacy")
    assert r.exit_code == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1
    r = run_cli("fold-bias", "--quiet", MAIA, tmp_path / "f.pb.gz")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == "" and (tmp_path / "f.pb.gz").exists()
    r = run_cli("inspect", "--quiet", "--json", MAIA)
    assert r.exit_code == 0 and r.stdout.startswith("{")  # data asked for is still printed


def test_several_networks_one_report_each_worst_status(run_cli, tmp_path):
    import json

    from conftest import LZ_0K, MAIA

    r = run_cli("inspect", "--json", MAIA, LZ_0K, tmp_path / "missing.pb.gz")
    docs = json.loads(r.stdout)
    assert r.exit_code == 2 and len(docs) == 3 and docs[1]["family"] == "go" and "no such file" in docs[2]["error"]
    assert r.stderr.count("lcconvert: ") == 1
    r = run_cli("verify", LZ_0K, MAIA, "--legacy", "--positions", "4")
    assert r.exit_code == 1 and r.stdout.count("verdict: ") == 2
    assert "verdict: pass" in r.stdout and "verdict: FAIL" in r.stdout
