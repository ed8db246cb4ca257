"""The one reader of a run folder written by `ner.train`: its config, scores, predictions and checkpoints.

Evaluation, analysis, the study, summaries and the export all read runs through `RunFolder`, so the layout
of a run folder (README, *Outputs of a run*) is known in this file alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from ner.errors import NerError

if TYPE_CHECKING:  # the data module pulls in torch and transformers: only for type hints here
    from ner.data.datamodule import NerDataModule
    from ner.data.reader import Sentence

EPOCH_CHECKPOINT = re.compile(r"^epoch(\d+)\.ckpt$")
BEST_CHECKPOINT = re.compile(r"^best-epoch(\d+)\.ckpt$")


@dataclass(frozen=True)
class RunFolder:
    """A run folder: `config.yaml`, `metrics.json` (present once the run finished), `predictions/`,
    `checkpoints/` (`best-epochN.ckpt`, `last.ckpt`, and `epochN.ckpt` with keep_epoch_checkpoints)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def finished(self) -> bool:
        """`metrics.json` is written last: its presence means the run finished."""
        return self.metrics_path.is_file()

    @cached_property
    def config(self) -> DictConfig:
        """The resolved config the run saved (`config.yaml`)."""
        path = self.path / "config.yaml"
        if not path.is_file():
            raise NerError(f"{path}: not found; is {self.path} a run folder written by experiments/run.py?")
        try:
            return OmegaConf.load(path)
        except Exception as error:  # noqa: BLE001 - yaml's and OmegaConf's errors have no common base
            raise NerError(f"{path}: unreadable ({error})") from None

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """`metrics.json`; a NerError when the run has not finished."""
        if not self.finished:
            raise NerError(f"{self.path}: no metrics.json (the run has not finished)")
        try:
            return json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise NerError(f"{self.metrics_path}: unreadable ({error})") from None

    @property
    def retrain(self) -> dict[str, Any] | None:
        """How a run without dev was trained (`data.dev=none`: `{trained_on, from, epochs, schedule_epochs,
        label}`, metrics.json `protocol.retrain`); None for a dev-selected run."""
        return self.metrics["protocol"].get("retrain")

    @property
    def precision(self) -> str:
        """The run's `trainer.precision` (32-true when the config has none): re-decodings use it too."""
        return str(OmegaConf.select(self.config, "trainer.precision", default="32-true"))

    @property
    def head(self) -> str:
        return str(self.metrics["model"]["head"]) if self.finished else str(self.config.head.name)

    @property
    def types(self) -> list[str]:
        from ner.tags import types_of

        return types_of(self.metrics["model"]["labels"])

    def predictions_file(self, split: str = "test") -> Path:
        path = self.path / "predictions" / f"{split}.iob2"
        if not path.is_file():
            raise NerError(f"{self.path}: no predictions/{split}.iob2")
        return path

    def predictions(self, split: str = "test") -> list[Sentence]:
        """The predicted sentences of `split`, each with `.tags` (gold) and `.predicted`."""
        from ner.data.reader import read_iob2

        return read_iob2(self.predictions_file(split), with_predictions=True).sentences

    # ------------------------------------------------------------------------------------- checkpoints

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def _by_epoch(self, name: re.Pattern) -> dict[int, Path]:
        found = {int(m[1]): p for p in self.checkpoints_dir.glob("*.ckpt") if (m := name.match(p.name))}
        return dict(sorted(found.items()))

    def epoch_checkpoints(self) -> dict[int, Path]:
        """`{epoch: checkpoints/epochN.ckpt}` (written with keep_epoch_checkpoints=true), sorted by epoch."""
        return self._by_epoch(EPOCH_CHECKPOINT)

    def best_checkpoint(self) -> tuple[int, Path]:
        """The dev-selected checkpoint and its epoch."""
        found = self._by_epoch(BEST_CHECKPOINT)
        if not found and self.finished and self.retrain:
            raise NerError(f"{self.path}: trained without dev (data.dev=none), no best checkpoint; use last")
        if len(found) != 1:
            raise NerError(
                f"{self.checkpoints_dir}: expected exactly one best-epochN.ckpt, found {len(found)}"
            )
        return next(iter(found.items()))

    def checkpoint(self, name: str = "best") -> Path:
        """`best`, `last`, `epochN` (a kept epoch checkpoint) or a path."""
        if name == "best":
            return self.best_checkpoint()[1]
        if name == "last" or re.fullmatch(r"epoch\d+", name):
            path = self.checkpoints_dir / f"{name}.ckpt"
        else:
            path = Path(name)
        if not path.exists():
            raise NerError(f"{path}: checkpoint not found")
        return path

    def datamodule(self) -> NerDataModule:
        """The run's data module (same files, dev split, tokenizer and windowing), set up and ready."""
        from ner.config import register_resolvers
        from ner.train import build_datamodule  # here, not at import: ner.train pulls in the whole trainer

        register_resolvers()
        datamodule = build_datamodule(self.config)
        datamodule.setup("fit")
        return datamodule


def run_folder_of_checkpoint(checkpoint: str | Path) -> RunFolder | None:
    """The run folder a checkpoint lies in (`RUN/checkpoints/X.ckpt`), or None for a loose checkpoint."""
    folder = Path(checkpoint).resolve().parent.parent
    return RunFolder(folder) if (folder / "config.yaml").is_file() else None
