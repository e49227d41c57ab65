"""The import layering of lcconvert/ (pyproject's [tool.importlinter] contracts) holds, and would catch a back-edge.

The contracts: layers point one way (cli > pipeline > reports > io and transforms >
formats > model > bottom), formats/ never imports what transforms or reports, only
io imports formats/ from above the model, the model imports nothing above it, and
no sibling modules import each other in a cycle.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("importlinter")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_contracts_kept():
    r = _lint(ROOT, ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("module, line, broken", [
    # the cycle issue 9 removed: the model importing its own checks
    ("network.py", "from lcconvert import shapes", "Layers point one way"),
    # a reader reaching up into the fold
    ("formats/text.py", "from lcconvert import fold", "formats/ holds readers and writers"),
    # a report reaching past io into a reader
    ("stats.py", "from lcconvert.formats import lc0_proto", "Above the model, only io imports formats/"),
])
def test_a_back_edge_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "lcconvert", tmp_path / "lcconvert", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "lcconvert" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    r = _lint(tmp_path, tmp_path)
    assert r.returncode != 0
    assert f"{broken}" in r.stdout.replace("\n", " ") and "BROKEN" in r.stdout
