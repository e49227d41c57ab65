"""Progress of long work on stderr — only for a person watching a terminal.

Why: on the largest networks (40 blocks × 512 filters, a ~0.4 GB payload) reading,
folding, verifying and writing take from seconds to minutes; a silent terminal
looks hung. Why only then: a log, a pipe or a CI job would collect bar redraws as
garbage, so nothing is drawn when stderr is not a terminal, nor after `quiet()`
(the CLI's `--quiet`), nor when LCCONVERT_PROGRESS=0.

Bars are tqdm's (a dependency). The model and the readers stay free of any
terminal: they call `stage` or `steps` with plain descriptions, and get a no-op
object when nothing is to be drawn. This module imports nothing from lcconvert,
so any layer may use it.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
ENV = "LCCONVERT_PROGRESS"
_quiet = False


def quiet(value: bool = True) -> None:
    """Draw nothing from now on (the CLI's --quiet)."""
    global _quiet
    _quiet = value


def enabled() -> bool:
    """Whether progress is drawn: stderr is a terminal, not quiet, and LCCONVERT_PROGRESS is not 0."""
    if _quiet or os.environ.get(ENV, "").strip() == "0":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class _Nothing:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def _bar(description: str, total: int | None, unit: str):
    from tqdm import tqdm

    scale = unit == "B"
    return tqdm(total=total, desc=description, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                file=sys.stderr, leave=False, dynamic_ncols=True, mininterval=0.2)


@contextlib.contextmanager
def stage(description: str, total: int | None = None, unit: str = "it") -> Iterator[object]:
    """A bar for one stage of work (`update(n)` as it advances); a no-op object when not drawn."""
    if not enabled():
        yield _Nothing()
        return
    bar = _bar(description, total, unit)
    try:
        yield bar
    finally:
        bar.close()


def steps(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """`items`, one bar step each (e.g. each block folded)."""
    if not enabled():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with stage(description, total) as bar:
        for item in items:
            yield item
            bar.update(1)
