"""The README's example sessions are run and their output compared, so the README cannot drift from the program.

Every fenced block whose first line starts with `$ lcconvert` is a session: each
`$ COMMAND` line is run with bash from the repository root (stdout and stderr
together, as a terminal shows them), and the lines up to the next `$` must match
its output. `$ echo $?` prints the previous command's exit status. The declared
volatile parts: a line `...` stands for any number of lines (a table shortened in
the README), and `…` inside a line for any run of characters (a timing, a path of
this machine). Anything else must match exactly, so a change in what a command
prints fails here until the README follows.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def sessions() -> list[tuple[int, list[tuple[str, list[str]]]]]:
    """(line number, [(command, expected output lines)]) for every session block of the README."""
    found, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```") and i + 1 < len(lines) and lines[i + 1].startswith("$ lcconvert"):
            start, i = i + 1, i + 1
            steps: list[tuple[str, list[str]]] = []
            while not lines[i].startswith("```"):
                if lines[i].startswith("$ "):
                    steps.append((lines[i][2:], []))
                else:
                    steps[-1][1].append(lines[i])
                i += 1
            found.append((start + 1, steps))
        i += 1
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` fits `expected`, where a line `...` matches any lines and `…` any characters."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head.strip() == "...":
        return any(_matches(rest, actual[k:]) for k in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.split("…"))
    return re.fullmatch(pattern, actual[0].rstrip()) is not None and _matches(rest, actual[1:])


SESSIONS = sessions()


def test_readme_has_sessions():
    commands = {step[0].split()[1] for _, steps in SESSIONS for step in steps if step[0].startswith("lcconvert")}
    assert {"fold-bias", "verify", "inspect", "eval"} <= commands


@pytest.mark.parametrize("line, steps", SESSIONS, ids=[f"README.md:{n}" for n, _ in SESSIONS])
def test_readme_session(line, steps):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="120")
    status = 0
    for command, expected in steps:
        if command.strip() == "echo $?":
            output = f"{status}\n"
        else:
            r = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=600)
            status, output = r.returncode, r.stdout
        actual = output.splitlines()
        assert _matches([e.rstrip() for e in expected], actual), (
            f"README.md:{line}: `$ {command}` printed:\n" + output + "\nexpected:\n" + "\n".join(expected))
