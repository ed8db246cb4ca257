"""User-facing errors: one clear message, shown without a traceback by the command-line entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

USER_ERROR_EXIT = 2


class NerError(Exception):
    """An error caused by the user's input or environment (bad file, missing model, ...).

    Entry points print its message and exit non-zero instead of showing a traceback.
    """


class DataError(NerError):
    """A problem with a data file; the message names the file and, where it applies, the line."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `NerError` into `error: <message>` on stderr and exit code 2, without a traceback."""
    try:
        yield
    except NerError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]error:[/] {error}", markup=True
        )
        sys.exit(USER_ERROR_EXIT)
