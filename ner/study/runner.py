"""Run a study's training tasks: each one process, `jobs` at a time, with a live table of where each stands.

Finished runs are skipped, interrupted ones resume (`ckpt_path=last`), and a failed run is reported with the
end of its log while the others go on. While another process trains runs of the same grid (a sweep started
elsewhere, e.g. a shell loop over the same folders), this runner starts nothing: it waits, and takes over
what is left once no other trainer has been seen for `takeover_seconds`. Two processes never train one
folder, and a sweep already in progress is not doubled up on the same cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ner.study.arms import TrainTask
from ner.study.status import (
    DONE,
    FAILED,
    RUNNING,
    TaskState,
    epochs_done,
    failed_path,
    local_trainers,
    mark_failed,
    release_lock,
    take_lock,
    task_state,
)

STYLES = {DONE: "green", RUNNING: "cyan", FAILED: "bold red", "interrupted": "yellow", "pending": "dim"}


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Launched:
    process: subprocess.Popen
    started: float
    log: object  # the open log file
    slot: int  # which of the `jobs` slots (picks the GPU when `gpus` is given)


def status_table(
    tasks: Sequence[TrainTask],
    states: dict[int, TaskState],
    started: dict[int, float],
    ended: dict[int, float] | None = None,
) -> Table:
    """One row per task: its state, epochs finished, time in this session, and its log file."""
    table = Table(title="training runs", title_justify="left")
    for column in ("#", "run", "status", "epochs", "time", "log"):
        table.add_column(column, justify="right" if column in ("#", "epochs", "time") else "left")
    for task in tasks:
        state = states[task.index]
        status = Text(state.status, style=STYLES.get(state.status, ""))
        if state.detail:
            status.append(f" ({state.detail})", style="dim")
        end = (ended or {}).get(task.index, time.time())
        elapsed = f"{end - started[task.index]:.0f}s" if task.index in started else ""
        table.add_row(str(task.index), task.name, status, str(epochs_done(task)), elapsed, str(task.log))
    counts = {s: sum(st.status == s for st in states.values()) for s in STYLES}
    table.caption = "  ".join(f"{s}: {n}" for s, n in counts.items() if n)
    return table


class Runner:
    """Schedules training tasks as subprocesses. `python` and `script` make the command of each task."""

    def __init__(
        self,
        tasks: Sequence[TrainTask],
        script: str | Path,
        jobs: int = 1,
        gpus: Sequence[str] = (),
        force: bool = False,
        poll_seconds: float = 5.0,
        console: Console | None = None,
        python: str = sys.executable,
        takeover_seconds: float = 60.0,
    ) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.tasks, self.script, self.python = list(tasks), script, python
        self.jobs, self.gpus, self.force, self.poll = jobs, list(gpus), force, poll_seconds
        self.console = console or Console(stderr=True)
        self.launched: dict[int, Launched] = {}
        self.started: dict[int, float] = {}
        self.ended: dict[int, float] = {}
        self.failed: dict[int, int] = {}  # task index -> exit code, this session
        self.takeover = takeover_seconds
        self.others_seen = -float("inf")  # when a run of the grid was last seen trained by another process

    def states(self) -> dict[int, TaskState]:
        trainers = local_trainers()
        for index, launched in self.launched.items():  # our own children, even off /proc
            trainers[self.tasks_by_index[index].run_dir.resolve()] = launched.process.pid
        states = {}
        for task in self.tasks:
            if task.index in self.failed:
                states[task.index] = TaskState(FAILED, f"exit code {self.failed[task.index]}")
            else:
                states[task.index] = task_state(task, trainers, trust_locks=not self.force)
        return states

    @property
    def tasks_by_index(self) -> dict[int, TrainTask]:
        return {t.index: t for t in self.tasks}

    def _launch(self, task: TrainTask, slot: int) -> None:
        task.run_dir.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
        log = open(task.log, "a", encoding="utf-8")  # noqa: SIM115 -- closed when the process ends
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {task.shell(self.python, self.script)}\n")
        log.flush()
        failed_path(task).unlink(missing_ok=True)
        process = subprocess.Popen(
            task.command(self.python, self.script), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        take_lock(task, process.pid, force=True)  # states() found no other live owner before launching
        self.launched[task.index] = Launched(process, time.time(), log, slot)
        self.started[task.index] = time.time()
        self.console.print(f"started {task.name} (pid {process.pid}), log {task.log}")

    def _reap(self) -> None:
        for index, launched in list(self.launched.items()):
            code = launched.process.poll()
            if code is None:
                continue
            launched.log.close()
            self.ended[index] = time.time()
            task = self.tasks_by_index[index]
            release_lock(task)
            del self.launched[index]
            if code == 0 and (task.run_dir / "metrics.json").exists():
                self.console.print(f"[green]finished[/] {task.name} in {time.time() - launched.started:.0f}s")
                continue
            self.failed[index] = code
            tail = log_tail(task.log)
            mark_failed(task, code, tail)
            self.console.print(
                f"[bold red]FAILED[/] {task.name} (exit code {code}); end of {task.log}:\n{tail}"
            )

    def _launchable(self, states: dict[int, TaskState]) -> list[TrainTask]:
        ready = []
        for task in self.tasks:
            state = states[task.index]
            if task.index in self.launched or task.index in self.failed or state.status in (DONE, RUNNING):
                continue
            ready.append(task)  # pending, interrupted, or failed in an earlier session (retried: resumes)
        return ready

    def run(self) -> dict[int, TaskState]:
        """Run until every task is done or failed; returns the final states. Ctrl-C stops our children
        (they keep their last checkpoint, so the next call resumes them)."""
        try:
            with Live(console=self.console, refresh_per_second=1, transient=False) as live:
                while True:
                    self._reap()
                    states = self.states()
                    if any(s.status == RUNNING and i not in self.launched for i, s in states.items()):
                        self.others_seen = time.time()
                    slots = self.jobs - len(self.launched)
                    if time.time() - self.others_seen < self.takeover:
                        slots = 0  # another sweep is at work: wait for it, take over after it stops
                    for task in self._launchable(states)[:slots]:
                        busy = {launched.slot for launched in self.launched.values()}
                        self._launch(task, min(set(range(self.jobs)) - busy))
                        states[task.index] = TaskState(RUNNING, "started")
                    live.update(Group(status_table(self.tasks, states, self.started, self.ended)))
                    waiting = any(s.status == RUNNING for s in states.values())
                    if not self.launched and not waiting and not self._launchable(states):
                        break
                    time.sleep(self.poll)
            self.console.print()
            return states
        except KeyboardInterrupt:
            self.console.print("interrupted: stopping the runs started here (they resume next time)")
            for launched in self.launched.values():
                launched.process.terminate()
            for index, launched in self.launched.items():
                launched.process.wait()
                launched.log.close()
                release_lock(self.tasks_by_index[index])
            raise


def run_one(task: TrainTask, script: str | Path, force: bool = False, console: Console | None = None) -> int:
    """Run one task in the foreground (a SLURM array element): skip it when done, else train or resume it.

    Returns the training process's exit code (0 when already done)."""
    console = console or Console(stderr=True)
    state = task_state(task, local_trainers(), trust_locks=not force)
    if state.status == DONE:
        console.print(f"{task.name}: already finished ({task.run_dir / 'metrics.json'})")
        return 0
    if state.status == RUNNING:
        console.print(
            f"[red]{task.name} is being trained by another process ({state.detail}); not starting it"
        )
        return 3
    runner = Runner([task], script, jobs=1, force=force, console=console, takeover_seconds=0)
    final = runner.run()
    return 0 if final[task.index].status == DONE else runner.failed.get(task.index, 1)
