"""Reading text files with errors that name file and line, writing files atomically (a crash never leaves a
half-written file behind), and a run folder's lock."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ner.errors import DataError, NerError


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; a DataError naming it when it is missing, not a file or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" if not path.exists() else "not a regular file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(path, f"cannot be read ({error.strerror or error})") from None


def decode_text(name: str | Path, data: bytes, encoding: str = "utf-8") -> str:
    """`data` decoded; a DataError naming `name` and the line of the first byte that is not UTF-8."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(name, f"not valid UTF-8 (byte {data[error.start]:#04x})", line) from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def run_lock(folder: str | Path) -> Iterator[None]:
    """Hold `folder/.lock` while a run trains in `folder`; a second process gets a NerError, not a second run.

    `fcntl.flock`: the kernel drops the lock when its process ends, even on SIGKILL, so a crashed run never
    leaves a stale lock behind. The file itself stays (unlinking it would let two processes lock two files).
    Only the first process of a DDP run locks: the others train the same run in the same folder."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only  # reads the rank from the environment

    if rank_zero_only.rank != 0:
        yield
        return
    path = Path(folder) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise NerError(
                f"{folder}: {holder} is training this run; not starting it twice (wait for it, or stop it)"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # closing the file releases the lock
