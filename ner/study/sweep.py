"""The study as a Hydra sweep: `python experiments/run.py -m ablation=heads model=minilm data.dir=DIR`.

`experiments/configs/ablation/heads.yaml` sets the sweep (head x seed into `STUDY/runs/<head>-seed<seed>/`)
and registers `StudySweep` as a Hydra callback; `ablation/recipe.yaml` is the same with context arms, and
`ablation/retrain.yaml` retrains one arm on train+dev into `STUDY/retrain/`, compared as its own section.
Hydra's launcher trains the runs (one after the other, `hydra/launcher=joblib` N at once,
`hydra/launcher=slurm` as a SLURM array); the callback

- after each run, in the process that trained it (on its GPU): evaluates the run's arms, `RUN/eval/`;
- when a run fails: records why (`RUN/failed.txt`) and lets the sweep go on, so one broken run never
  stops the comparison of the others;
- when the sweep ends: evaluates what is still missing, compares every finished run of the study folder
  and writes `STUDY/comparison/`; it exits non-zero (without a traceback) when a run or an evaluation
  failed or has not finished.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from ner.errors import NerError
from ner.evaluation.run_folder import RunFolder
from ner.study.arms import arms_in_use
from ner.study.evaluate_arms import evaluate_run
from ner.study.report import make_console, report

FAILED = "failed.txt"  # in a run folder: why the last attempt of this run in a sweep failed


def describe(error: BaseException) -> str:
    """A NerError's message (the user's problem); anything else with its traceback after the first line."""
    if isinstance(error, NerError):
        return str(error)
    return f"{type(error).__name__}: {error}\n" + "".join(traceback.format_exception(error)).rstrip()


class StudySweep(Callback):
    """Evaluates each run's arms when it ends and compares the arms over seeds when the sweep ends.

    `arms`: `{name: {head, decode, [training config keys, e.g. context]}}`; `card_arms`: the arms also
    scored under the model card's protocol; `protocol`: honest | card | both; `resamples` / `stats_seed`:
    the significance tests; `device`: where the decode-only arms decode (auto | cpu | cuda)."""

    def __init__(
        self,
        arms: Mapping[str, Mapping[str, str | None]],
        card_arms: Sequence[str] = (),
        protocol: str = "both",
        resamples: int = 10_000,
        stats_seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.arms, self.card_arms = arms_in_use(arms, card_arms, protocol)
        self.resamples, self.stats_seed, self.device = resamples, stats_seed, device

    @property
    def progress(self) -> Console:  # made when used: the launchers pickle the callback into every job
        return make_console(stderr=True)

    def warn(self, label: str, text: str, style: str = "bold red") -> None:
        self.progress.print(f"[{style}]{label}[/] {escape(text)}")

    @property
    def heads(self) -> set[str]:
        return {arm.head for arm in (*self.arms, *self.card_arms)}

    def selects(self, run: RunFolder) -> bool:
        """Whether the run is one of an arm's (its head and the training settings the arm names)."""
        return any(arm.matches(run) for arm in (*self.arms, *self.card_arms))

    def evaluate(self, run: RunFolder) -> bool:
        """The run's arms (files already there are kept); False, with the reason printed, when it failed."""
        try:
            for path in evaluate_run(run.path, self.arms, self.card_arms, self.device, self.progress.print):
                self.progress.print(f"wrote {path}")
        except Exception as error:  # noqa: BLE001 -- one run's evaluation must not stop the others
            self.warn("evaluation failed", f"{run.path}: {describe(error)}")
            return False
        return True

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        if rank_zero_only.rank != 0:  # a DDP run's other processes: rank 0 records and evaluates
            return
        run = RunFolder(config.hydra.runtime.output_dir)
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # the run's exception (`.return_value` would raise it again)
            (run.path / FAILED).write_text(describe(error) + "\n")
            self.warn("FAILED", f"{run.path}: {describe(error)}")
            # Hydra's sweepers re-raise a failed job's error after the batch, and on_multirun_end never
            # comes: the failure is recorded above, the sweep goes on, the comparison reports it
            job_return.status, job_return.return_value = JobStatus.COMPLETED, None
            return
        (run.path / FAILED).unlink(missing_ok=True)
        if run.finished and self.selects(run):
            self.evaluate(run)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            code = self.finish(Path(config.hydra.sweep.dir))
        except Exception as error:  # noqa: BLE001 -- after hours of training, a message, never a traceback
            self.warn("the comparison failed:", describe(error))
            code = 1
        if code:
            raise SystemExit(code)

    def finish(self, folder: Path) -> int:
        """Evaluate and compare every finished run of the study folder; the exit code (1: incomplete)."""
        runs = [RunFolder(p.parent) for p in sorted(folder.glob("**/.hydra"))]  # the jobs Hydra made
        unfinished = [run for run in runs if not run.finished]
        for run in unfinished:
            failed = run.path / FAILED
            why = failed.read_text().splitlines()[0] if failed.exists() else "no metrics.json yet"
            self.warn("not finished, left out:", f"{run.path.name} ({why})", "yellow")
        finished = [run for run in runs if run.finished and self.selects(run)]
        if not finished:
            self.warn("no finished runs to compare", f"under {folder}")
            return 1
        evaluated = [run.path for run in finished if self.evaluate(run)]
        if evaluated:
            order = [arm.name for arm in self.arms]
            report(evaluated, folder / "comparison", self.resamples, self.stats_seed, order)
        return 0 if evaluated and not unfinished and len(evaluated) == len(finished) else 1
