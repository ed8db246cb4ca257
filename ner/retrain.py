"""The final retrain (`data.dev=none`): the model trained on train+dev, with its epochs fixed from a run.

With no dev set there is nothing to select an epoch on, so the number of epochs comes from a dev-selected run
(`retrain_from=RUN`: its best epoch, of its LR schedule, under the same recipe) or is given by hand
(`trainer.max_epochs`). Here: that plan (`retrain_plan`, checked against the run's recipe) and the two
callbacks a run without validation needs. `ner.train` calls into it; everything else there is shared.
"""

from __future__ import annotations

import filecmp
import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from ner.callbacks import EpochHistory
from ner.errors import NerError
from ner.evaluation.run_folder import RunFolder

log = logging.getLogger(__name__)

# What a retrain must share with the dev-selected run it takes its epochs from (`retrain_from`); the seed may
# differ, and trainer.max_epochs is the schedule's length, which must be the same too (see `retrain_plan`).
# The corpus is compared by its files, not by `data.dir` (see `check_same_corpus`).
RECIPE_KEYS = (
    "model.encoder",
    "model.dropout",
    "head",
    "optim",
    "trainer.max_epochs",
    "trainer.precision",
    "trainer.gradient_clip_val",
    "trainer.accumulate_grad_batches",
    "data.types",
    "data.scheme",
    "data.max_length",
    "data.stride",
    "data.batch_size",
    "data.bucket",
    "data.context",
    "data.context_dropout",
)


class TrainEpochHistory(EpochHistory):
    """`EpochHistory` for a run without dev: an epoch is recorded when its training ends (no dev scores)."""

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        seconds = self.fit_seconds - sum(e["seconds"] for e in self.epochs)
        self.epochs.append(
            {"epoch": trainer.current_epoch, "step": trainer.global_step, "seconds": round(seconds, 2)}
        )


class StopAfterEpochs(Callback):
    """Stops training after `epochs` epochs of a longer LR schedule (a retrain replaying a run's best epoch);
    also when resumed from a checkpoint of the last of them."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        trainer.should_stop = trainer.should_stop or trainer.current_epoch >= self.epochs

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        trainer.should_stop = trainer.should_stop or trainer.current_epoch + 1 >= self.epochs


def config_value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


CORPUS_FILES = ("train.iob2", "dev.iob2", "test.iob2")


def check_same_corpus(here: Path, there: Path, run: Path) -> None:
    """A study restored on another machine finds its corpus at another path: the files, not the path, must
    match. Where the run's corpus folder is not on this machine, nothing can be compared: the log says so."""
    if here.resolve() == there.resolve():
        return
    if not there.is_dir():
        log.warning(
            "retrain_from=%s: the run's corpus folder %s is not on this machine; "
            "cannot check that data.dir=%s holds the same corpus",
            run,
            there,
            here,
        )
        return
    differ = []
    for name in CORPUS_FILES:
        ours, theirs = here / name, there / name
        if ours.exists() != theirs.exists():
            differ.append(f"{name} ({'missing here' if theirs.exists() else 'only here'})")
        elif ours.exists() and not filecmp.cmp(ours, theirs, shallow=False):
            differ.append(f"{name} (different contents)")
    if differ:
        raise NerError(
            f"retrain_from={run}: data.dir={here} is not the run's corpus ({there}): " + ", ".join(differ)
        )


def retrain_plan(cfg: DictConfig) -> dict[str, Any] | None:
    """For `data.dev=none`: how many epochs to train and why (metrics.json `protocol.retrain`); None with dev.

    From `retrain_from=RUN`, the run trains RUN's LR schedule (RUN's `trainer.max_epochs`, checked equal)
    and stops after RUN's best epoch. Not a schedule of best-epoch length: that would decay the LR faster
    and reach 0 at the end, a trajectory no dev score ever validated; replaying RUN's schedule up to its best
    epoch gives the selected model's own learning rates, step for step per epoch, on more data.
    """
    retrain_from = cfg.get("retrain_from")
    if cfg.data.dev != "none":
        if retrain_from:
            raise NerError(f"retrain_from={retrain_from} trains on train+dev: add data.dev=none")
        return None
    if not retrain_from:
        epochs = int(cfg.trainer.max_epochs)
        label = f"trained on train+dev, epochs given: {epochs}"
        return {
            "trained_on": "train+dev",
            "from": None,
            "epochs": epochs,
            "schedule_epochs": epochs,
            "label": label,
        }
    run = RunFolder(retrain_from)
    if not run.finished:
        raise NerError(
            f"retrain_from={run.path}: no metrics.json (the run has not finished, or is not a run folder); "
            "retrain from a finished dev-selected run"
        )
    metrics = run.metrics
    protocol, best = metrics.get("protocol", {}), metrics.get("best_epoch")
    if protocol.get("retrain") or metrics.get("dev") is None or best is None:
        raise NerError(
            f"retrain_from={run.path}: that run has no dev-selected epoch (trained with data.dev=none, or no "
            "dev batch was scored); retrain from a run selected on dev"
        )
    if protocol.get("dev_is_test"):
        raise NerError(f"retrain_from={run.path}: its epoch was selected on the TEST set (data.dev=test)")
    differ = [
        f"{key}: {config_value(cfg, key)!r} here, {config_value(run.config, key)!r} in the run"
        for key in RECIPE_KEYS
        if config_value(cfg, key) != config_value(run.config, key)
    ]
    if differ:
        raise NerError(f"retrain_from={run.path}: not the run's recipe; " + "; ".join(differ))
    check_same_corpus(Path(cfg.data.dir), Path(config_value(run.config, "data.dir")), run.path)
    epochs, schedule = int(best) + 1, int(run.config.trainer.max_epochs)
    plural = "s" * (epochs != 1)
    label = (
        f"trained on train+dev, epochs fixed from {run.path}: {epochs} epoch{plural} (its best epoch {best}) "
        f"of its {schedule}-epoch LR schedule"
    )
    return {
        "trained_on": "train+dev",
        "from": str(run.path),
        "epochs": epochs,
        "schedule_epochs": schedule,
        "label": label,
    }
