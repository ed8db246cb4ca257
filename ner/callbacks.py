"""Lightning callbacks of our own: a per-epoch history that survives resumes."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class EpochHistory(L.Callback):
    """Records, per epoch, wall time and the dev scores; saved in checkpoints, so a resumed run keeps it."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # After the module computed its dev scores, before ModelCheckpoint saves (it runs last).
        if trainer.sanity_checking or trainer.state.fn != "fit" or "dev" not in module.results:
            return
        micro = module.results["dev"]["micro"]
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                "seconds": round(time.perf_counter() - self._start, 2) if self._start else None,
                "dev_f1": micro["f1"],
                "dev_precision": micro["precision"],
                "dev_recall": micro["recall"],
                "dev_macro_f1": module.results["dev"]["macro"]["f1"],
            }
        )

    @property
    def best(self) -> dict[str, Any] | None:
        """The first epoch with the highest dev F1: the one ModelCheckpoint(mode='max') keeps."""
        return max(self.epochs, key=lambda e: e["dev_f1"], default=None)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict["epochs"])
