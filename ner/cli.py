"""Command-line entry points share this: a user error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from ner.errors import NerError

USER_ERROR_EXIT = 2


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
