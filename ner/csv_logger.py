"""The CSV training curve (RUN/logs/metrics.csv) kept across a resume.

Lightning's CSVLogger deletes metrics.csv when a new process opens the run folder, so a resumed run lost its
curve up to the checkpoint (kept by our code for that reason; `tests/test_resume.py` shows the difference).
Here the file stays, and `KeepCurveOnResume` cuts it back to the rows from before the checkpoint's step once
the checkpoint is restored: the resumed run logs the later ones again.
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
    """Keeps an existing metrics.csv until the resumed step is known."""

    def _check_log_dir_exists(self) -> None:
        """Lightning's deletes metrics.csv here; it stays until `keep_rows_before` knows the resumed step."""

    def keep_rows_before(self, step: int) -> None:
        """Cuts metrics.csv back to the rows logged before `step` (the restored checkpoint's global step), in
        one atomic write so that a crash in between loses nothing; the run appends its own rows after them."""
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as handle:
            reader = csv.DictReader(handle)
            keys = list(reader.fieldnames or [])
            kept = [row for row in reader if int(row["step"]) < step]
        if not kept:  # a fresh start (step 0): the folder's old curve is not this run's
            os.remove(self.metrics_file_path)
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.metrics_file_path, text.getvalue())
        self.metrics_keys = keys  # Lightning's save appends under this header (and rewrites it for new keys)


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
            if trainer.is_global_zero and isinstance(logger, ResumableCSVLogger):
                logger.experiment.keep_rows_before(trainer.global_step)
