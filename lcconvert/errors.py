"""One exception hierarchy. Every message names the file and the problem.

The CLI turns an `LcconvertError` into one line on stderr and its `exit_code`;
nothing else in the package knows about exit codes.
"""
from __future__ import annotations

import os


class LcconvertError(Exception):
    """Bad input or usage: exit code 2."""

    exit_code = 2

    def __init__(self, source, problem: str):
        self.source = os.fspath(source) if source is not None else None
        self.problem = problem
        super().__init__(self.message)

    def __reduce__(self):
        # Rebuilt from (source, problem), so that an error raised in a worker process (Dask)
        # reaches the CLI as the same one-line error.
        return (self.__class__, (self.source, self.problem))

    @property
    def message(self) -> str:
        return f"{self.source}: {self.problem}" if self.source else self.problem


def first_problem(problems: list[str]) -> str:
    """The first of several problems and how many more: what fits on one error line."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def refuse_problems(source, problems: list[str], error: type | None = None) -> None:
    """Raise `error` (NetworkError by default) naming the first problem and how many more, if any."""
    if problems:
        raise (error or NetworkError)(source, first_problem(problems))


class FormatError(LcconvertError):
    """A file that cannot be read as the format it claims or appears to be."""


class NetworkError(LcconvertError):
    """A readable file whose network is inconsistent (shapes, values, enums)."""


class UnsupportedError(LcconvertError):
    """A valid network that lcconvert does not evaluate or fold (attention bodies...)."""


class OutputError(LcconvertError):
    """An output path that must not be written (the input itself, an existing file)."""


class DependencyError(LcconvertError):
    """An optional dependency (TensorFlow, matplotlib) is needed and missing."""


class VerificationFailed(LcconvertError):
    """A network that does not compute what it should: exit code 1."""

    exit_code = 1
