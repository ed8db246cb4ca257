"""Where each training task of a study stands, read from its folder, so any process can pick a sweep up.

- done: `metrics.json` exists (a run writes it last);
- running: a process trains it now: one this runner started, another local `experiments/run.py` whose
  `hydra.run.dir` is the folder (e.g. a sweep started by hand or by another runner), or a live lock file;
- interrupted: the folder exists without `metrics.json` (resumes from `checkpoints/last.ckpt` when present);
- failed: the last attempt exited non-zero (`{run}.failed` beside the folder; a retry resumes it);
- pending: nothing yet.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ner.errors import NerError
from ner.files import atomic_write_text
from ner.study.arms import TrainTask

DONE, RUNNING, INTERRUPTED, FAILED, PENDING = "done", "running", "interrupted", "failed", "pending"


@dataclass(frozen=True)
class TaskState:
    status: str
    detail: str = ""
    pid: int | None = None


def lock_path(task: TrainTask) -> Path:
    return task.run_dir.with_name(task.run_dir.name + ".lock")


def failed_path(task: TrainTask) -> Path:
    return task.run_dir.with_name(task.run_dir.name + ".failed")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_trainers() -> dict[Path, int]:
    """`{run folder: pid}` of every `experiments/run.py` process on this machine (Linux /proc; else empty)."""
    found: dict[Path, int] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if not any(a.endswith("run.py") for a in args):
                continue
            dirs = [a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")]
            if dirs:
                cwd = Path(os.readlink(entry / "cwd"))
                found[(cwd / dirs[-1]).resolve()] = int(entry.name)
        except OSError:  # the process ended while we looked, or is not ours to read
            continue
    return found


def read_lock(task: TrainTask) -> dict | None:
    try:
        return json.loads(lock_path(task).read_text())
    except (OSError, ValueError):
        return None


def lock_is_live(lock: dict) -> bool:
    """A lock from this host is live while its pid is; one from another host is trusted (see force=true)."""
    if lock.get("host") != socket.gethostname():
        return True
    return isinstance(lock.get("pid"), int) and pid_alive(lock["pid"])


def take_lock(task: TrainTask, pid: int, force: bool = False) -> None:
    """Claim a task for this process tree; refuses a live lock of another process unless `force`."""
    lock = read_lock(task)
    if lock is not None and lock_is_live(lock) and lock.get("pid") != pid and not force:
        raise NerError(
            f"{lock_path(task)}: {task.name} is being trained by pid {lock.get('pid')} on {lock.get('host')} "
            "(delete the lock or pass force=true if that process is gone)"
        )
    body = {"host": socket.gethostname(), "pid": pid, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(lock_path(task), json.dumps(body) + "\n")


def release_lock(task: TrainTask) -> None:
    lock_path(task).unlink(missing_ok=True)


def mark_failed(task: TrainTask, returncode: int, tail: str) -> None:
    atomic_write_text(failed_path(task), f"exit code {returncode}\n{tail}")


def task_state(
    task: TrainTask, trainers: dict[Path, int] | None = None, trust_locks: bool = True
) -> TaskState:
    """The task's state from its files and the machine's processes (`trainers`: from `local_trainers()`).

    `trust_locks=False` ignores lock files (force=true: a lock left by a process on a node that died)."""
    run_dir = task.run_dir
    if (run_dir / "metrics.json").exists():
        return TaskState(DONE)
    pid = (trainers or {}).get(run_dir.resolve())
    if pid is not None:
        return TaskState(RUNNING, f"pid {pid}", pid)
    lock = read_lock(task) if trust_locks else None
    if lock is not None and lock_is_live(lock):
        return TaskState(RUNNING, f"pid {lock.get('pid')} on {lock.get('host')}", lock.get("pid"))
    if failed_path(task).exists():
        first = failed_path(task).read_text().splitlines()[:1]
        return TaskState(FAILED, first[0] if first else "")
    if run_dir.exists():
        has_last = (run_dir / "checkpoints" / "last.ckpt").exists()
        return TaskState(
            INTERRUPTED, "resumes from last.ckpt" if has_last else "restarts (no checkpoint yet)"
        )
    return TaskState(PENDING)


def epochs_done(task: TrainTask) -> int:
    """Finished epochs: from metrics.json when done, else the kept epoch checkpoints."""
    metrics = task.run_dir / "metrics.json"
    if metrics.exists():
        try:
            return len(json.loads(metrics.read_text()).get("epochs", []))
        except (OSError, ValueError):
            return 0
    return len(list((task.run_dir / "checkpoints").glob("epoch*.ckpt")))
