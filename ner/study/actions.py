"""What `experiments/ablate.py action=...` does, one function per action, on a built `Study`.

- list: one line per training task, `INDEX<TAB>RUN<TAB>STATUS<TAB>COMMAND` (for SLURM arrays and scripts);
- status: the table of runs, nothing started;
- one: train (or resume, or skip) task INDEX in the foreground;
- train: every training task, `jobs` processes at a time;
- evaluate: the evaluation arms of every finished run (decode-only arms, card protocol);
- compare: evaluate, then compare the arms and write `STUDY/comparison/`;
- run: train, then compare (the default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console

from ner.errors import NerError
from ner.files import atomic_write_text, write_json
from ner.study.arms import Study
from ner.study.compare import compare
from ner.study.evaluate_arms import evaluate_run
from ner.study.plots import plot_all
from ner.study.report import markdown, print_comparison
from ner.study.runner import Runner, run_one, status_table
from ner.study.status import DONE, local_trainers, task_state

ACTIONS = ("list", "status", "one", "train", "evaluate", "compare", "run")


def make_console(stderr: bool = False) -> Console:
    """A rich console; wide when writing to a file or pipe (a log), where rich would assume 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)


def list_tasks(study: Study, script: str | Path, out: TextIO = sys.stdout) -> None:
    trainers = local_trainers()
    for task in study.tasks:
        state = task_state(task, trainers)
        print(f"{task.index}\t{task.name}\t{state.status}\t{task.shell(sys.executable, script)}", file=out)


def show_status(study: Study, console: Console) -> None:
    trainers = local_trainers()
    console.print(status_table(study.tasks, {t.index: task_state(t, trainers) for t in study.tasks}, {}))


def train(
    study: Study, script: str | Path, jobs: int, gpus: Sequence[str], force: bool, console: Console
) -> int:
    """Every training task; returns how many failed."""
    runner = Runner(study.tasks, script, jobs=jobs, gpus=gpus, force=force, console=console)
    runner.run()
    return len(runner.failed)


def train_one(study: Study, index: int | None, script: str | Path, force: bool, console: Console) -> int:
    if index is None or not 0 <= index < len(study.tasks):
        raise NerError(f"action=one needs index=0..{len(study.tasks) - 1} (see action=list), got {index}")
    return run_one(study.tasks[index], script, force=force, console=console)


def finished_runs(study: Study) -> list[Path]:
    return [t.run_dir for t in study.tasks if (t.run_dir / "metrics.json").exists()]


def evaluate(study: Study, device: str, redo: bool, console: Console) -> int:
    """Evaluation arms of every finished run; a run that fails to evaluate is reported, the others go on.
    Returns the number of failures."""
    missing = [t.name for t in study.tasks if not (t.run_dir / "metrics.json").exists()]
    if missing:
        console.print(f"[yellow]not finished yet, left out:[/] {', '.join(missing)}")
    failures = 0
    for run_dir in finished_runs(study):
        try:
            written = evaluate_run(
                run_dir, study.honest_arms, study.card_arms_used, device, redo, log=lambda m: console.print(m)
            )
        except Exception as error:  # noqa: BLE001 -- one broken run must not stop the others
            failures += 1
            console.print(f"[bold red]evaluation failed[/] {run_dir}: {type(error).__name__}: {error}")
            continue
        for path in written:
            console.print(f"wrote {path}")
    return failures


def write_comparison(comparison: dict, out_dir: Path) -> list[Path]:
    """comparison.json, comparison.md and the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json(out_dir / "comparison.json", comparison)]
    written.append(atomic_write_text(out_dir / "comparison.md", markdown(comparison)))
    written += plot_all(comparison, out_dir)
    return written


def compare_runs(
    run_dirs: Sequence[Path],
    out_dir: Path,
    resamples: int,
    seed: int,
    out: Console,
    arm_order: Sequence[str] = (),
) -> dict:
    """Compare, print the tables on `out`, write the files."""
    comparison = compare(run_dirs, out_dir, resamples, seed, arm_order)
    print_comparison(comparison, out)
    for path in write_comparison(comparison, out_dir):
        out.print(f"wrote {path}")
    return comparison


def default_out_dir(run_dirs: Sequence[Path]) -> Path:
    """`comparison/` beside the runs: in the study folder for `STUDY/runs/*`, else in their common folder."""
    common = Path(os.path.commonpath([Path(p).absolute().parent for p in run_dirs]))
    return (common.parent if common.name == "runs" else common) / "comparison"


def run_action(
    study: Study,
    action: str,
    script: str | Path,
    *,
    index: int | None = None,
    jobs: int = 1,
    gpus: Sequence[str] = (),
    force: bool = False,
    device: str = "auto",
    redo: bool = False,
    resamples: int = 10_000,
    seed: int = 0,
    progress: Console | None = None,
    out: Console | None = None,
) -> int:
    """Do `action`; returns the process exit code (non-zero when a run or an evaluation failed).

    `progress` shows runs and evaluations (default: stderr), `out` the comparison tables (default: stdout)."""
    progress, out = progress or make_console(stderr=True), out or make_console()
    if action not in ACTIONS:
        raise NerError(f"action={action!r}: expected one of {', '.join(ACTIONS)}")
    if action == "list":
        list_tasks(study, script)
        return 0
    if action == "status":
        show_status(study, out)
        return 0
    if action == "one":
        return train_one(study, index, script, force, progress)
    failed = train(study, script, jobs, gpus, force, progress) if action in ("train", "run") else 0
    if action == "train":
        return 1 if failed else 0
    failed += evaluate(study, device, redo, progress)
    if action == "evaluate":
        return 1 if failed else 0
    runs = finished_runs(study)
    if not runs:
        raise NerError(f"no finished runs under {study.runs_dir} to compare")
    states = [task_state(t) for t in study.tasks]
    if any(s.status != DONE for s in states):
        progress.print("[yellow]comparing the finished runs only; the comparison is partial[/]")
    compare_runs(runs, study.comparison_dir, resamples, seed, out, [a.name for a in study.arms])
    return 1 if failed else 0
