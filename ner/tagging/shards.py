"""Which shards a tag run has, what their outputs are called, which of them this process takes, and the
fingerprints that decide whether a finished shard is still finished.

Output names: a shard's name is its path relative to the common folder of all shards, without the input
suffix (`.xml.gz`, `.txt`, ...): `in/2024/a.xml.gz` and `in/2025/a.xml.gz` become `2024/a` and `2025/a`, so
two inputs with the same file name in different folders never share an output. Where two shards of one
folder differ only in their suffix (`a.txt`, `a.jsonl`), both keep their full file name (`a.txt`, `a.jsonl`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ner.errors import NerError
from ner.tagging.inputs import shard_stem


@dataclass(frozen=True)
class Shard:
    """One input file of a tag run and the name its outputs and status file are derived from."""

    path: Path  # absolute
    name: str  # posix relative path without the input suffix, e.g. "2024/pubmed24n0001"


def name_shards(paths: Sequence[Path]) -> list[Shard]:
    """Shards with unique names (see the module docstring), in the order of `paths`."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    if not absolute:
        return []
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    relative = [PurePosixPath(p.relative_to(root).as_posix()) for p in absolute]
    names = [str(r.with_name(shard_stem(r.name))) for r in relative]
    clashes = {name for name, n in Counter(names).items() if n > 1}
    names = [str(r) if name in clashes else name for r, name in zip(relative, names, strict=True)]
    if len(set(names)) != len(names):  # e.g. `a.txt`, `a.jsonl` and `a.txt.xml` in one folder
        twice = sorted(name for name, n in Counter(names).items() if n > 1)
        raise NerError(f"cannot name the outputs of these inputs apart: {', '.join(twice)}; rename one")
    return [Shard(path, name) for path, name in zip(absolute, names, strict=True)]


def select(shards: Sequence[Shard], index: int, count: int) -> list[Shard]:
    """Every `count`-th shard from `index` (shards i, i+N, ...): the part of one process of N."""
    if count < 1 or not 0 <= index < count:
        raise NerError(f"--shard-index {index} --shard-count {count}: expected 0 <= index < count")
    return list(shards[index::count])


def slurm_partition(environ: dict[str, str]) -> tuple[int, int] | None:
    """(index, count) of this SLURM array task among its array, or None outside an array job.

    Task ids need not start at 0 nor be contiguous (`--array=1-9:2`): the index counts tasks from the
    first id in steps of the array's step.
    """
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    try:
        task, count = int(environ["SLURM_ARRAY_TASK_ID"]), int(environ["SLURM_ARRAY_TASK_COUNT"])
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(environ.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
    except ValueError:
        raise NerError("SLURM_ARRAY_TASK_* are not numbers: pass --shard-index and --shard-count") from None
    index = (task - first) // step
    if not 0 <= index < count or (task - first) % step:
        raise NerError(
            f"SLURM array task {task} is not one of {count} evenly spaced tasks from {first}"
            " (an --array list?): pass --shard-index and --shard-count"
        )
    return index, count


def file_fingerprint(path: str | Path) -> dict:
    """Size and modification time: a file rewritten in place, or replaced, gets a new fingerprint."""
    stat = Path(path).stat()
    return {"path": os.path.abspath(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def input_fingerprint(path: Path) -> dict:
    """The input's size and mtime, not its path: moving the input folder keeps its shards finished."""
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def model_fingerprint(ckpt: str, backend: str, onnx_model: str | None, precision: str, max_length) -> dict:
    """Everything about the model that changes what it tags (batch size and device do not)."""
    return {
        "checkpoint": file_fingerprint(ckpt),
        "backend": backend,
        "onnx_model": file_fingerprint(onnx_model) if onnx_model else None,
        "precision": precision,
        "max_length": max_length,
    }
