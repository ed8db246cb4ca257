"""The state of a tag run on disk: one status file per shard, and `manifest.json` built from them.

Several processes (`--workers`, SLURM array tasks) finish shards at the same time. Each one writes only the
status files of its own shards (`OUT/shards/<name>.status.json`, atomically): they are the source of truth.
`OUT/manifest.json` is rebuilt from all of them, under an exclusive `flock` on `OUT/.lock`, whenever a
shard finishes: a rebuild never loses another process's shard, and a kill at any moment leaves both the
status files and the manifest whole (at worst the manifest lags one shard behind until the next rebuild).
"""

from __future__ import annotations

import fcntl
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ner.files import write_json
from ner.tagging.shards import Shard

STATUS_DIR = "shards"
STATUS_SUFFIX = ".status.json"
MANIFEST = "manifest.json"
FINISHED, FAILED, RUNNING, INTERRUPTED, PENDING = "done", "failed", "running", "interrupted", "pending"


def status_path(out: Path, name: str) -> Path:
    return out / STATUS_DIR / f"{name}{STATUS_SUFFIX}"


def read_status(out: Path, name: str) -> dict | None:
    """A shard's status, or None when it has none (never started) or it cannot be read (it is redone)."""
    path = status_path(out, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        print(f"warning: {path}: unreadable status ({error}); the shard is tagged again", file=sys.stderr)
        return None


def write_status(out: Path, status: dict) -> None:
    write_json(status_path(out, status["name"]), status)


def why_not_finished(out: Path, status: dict | None, fingerprint: dict) -> str | None:
    """None when the shard is finished for this fingerprint (input, model, formats), else the reason."""
    if status is None:
        return "new"
    if status.get("status") != FINISHED:
        return str(status.get("status"))
    for part in ("input", "model", "formats"):
        if status.get("fingerprint", {}).get(part) != fingerprint[part]:
            return f"{part} changed"
    for output in status.get("outputs", {}).values():
        path = out / output["path"]
        if not path.is_file() or path.stat().st_size != output["bytes"]:
            return f"{output['path']} missing or incomplete"
    return None


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `OUT/.lock` (waiting for it); the kernel drops it if the process dies."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def all_statuses(out: Path) -> dict[str, dict]:
    """Every shard status under OUT, by shard name: also those of other processes and earlier runs."""
    found = {}
    for path in sorted((out / STATUS_DIR).rglob(f"*{STATUS_SUFFIX}")):
        name = path.relative_to(out / STATUS_DIR).as_posix()[: -len(STATUS_SUFFIX)]
        status = read_status(out, name)
        if status is not None:
            found[name] = status
    return found


def totals(entries: Sequence[dict]) -> dict:
    done = [e for e in entries if e["status"] == FINISHED]
    counts = {state: sum(e["status"] == state for e in entries) for state in (FINISHED, FAILED, PENDING)}
    return {
        "shards": len(entries),
        **counts,
        "other": len(entries) - sum(counts.values()),  # running or interrupted
        "documents": sum(e["documents"] for e in done),
        "entities": sum(e["entities"] for e in done),
        "bad_records": sum(len(e["bad_records"]) for e in done),
        "deleted": sum(len(e["deleted"]) for e in done),
    }


def rebuild_manifest(out: Path, planned: Sequence[Shard]) -> dict:
    """Write OUT/manifest.json from every status file; planned shards without one are `pending`."""
    with locked(out):
        statuses = all_statuses(out)
        for shard in planned:
            statuses.setdefault(shard.name, {"name": shard.name, "input": str(shard.path), "status": PENDING})
        entries = [statuses[name] for name in sorted(statuses)]
        complete = all(e["status"] == FINISHED for e in entries)
        manifest = {
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "complete": complete,
            "totals": totals(entries),
            "shards": entries,
        }
        write_json(out / MANIFEST, manifest)
    return manifest
