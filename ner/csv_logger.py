"""The CSV training curve (RUN/logs/metrics.csv) kept across a resume.

Lightning's CSVLogger deletes metrics.csv when a new process opens the run folder, so a resumed run lost its
curve up to the checkpoint (kept by our code for that reason; `tests/test_resume.py` shows the difference).
Here the old rows are held back when the file is opened, and `KeepCurveOnResume` writes back those from
before the checkpoint's step once the checkpoint is restored: the resumed run redoes the later ones.
"""

from __future__ import annotations

import csv
import io
import os

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ner.files import atomic_write_text


class ResumableExperimentWriter(ExperimentWriter):
    """Holds the rows of an existing metrics.csv instead of losing them with the file."""

    def _check_log_dir_exists(self) -> None:
        """Lightning's warns that the file will be deleted, and deletes it; here its rows are held first."""
        self.previous_rows: list[dict[str, str]] = []
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self.previous_rows = list(csv.DictReader(handle))
            os.remove(self.metrics_file_path)

    def keep_rows_before(self, step: int) -> None:
        """Writes back the held rows logged before `step` (the restored checkpoint's global step)."""
        kept = [row for row in self.previous_rows if row.get("step") and int(row["step"]) < step]
        self.previous_rows = []
        if not kept:
            return
        self.save()  # anything logged since the file was opened, so that it follows the kept rows
        rows = kept
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                rows = kept + list(csv.DictReader(handle))
        keys = sorted({key for row in rows for key, value in row.items() if value not in (None, "")})
        self.metrics_keys = keys
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, text.getvalue())


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger with `ResumableExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class KeepCurveOnResume(L.Callback):
    """After the checkpoint is restored (train start), gives back the curve up to its step."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger) and trainer.is_global_zero:
                logger.experiment.keep_rows_before(trainer.global_step)
