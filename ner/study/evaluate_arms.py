"""Evaluation arms of one finished run, written next to it: `RUN/eval/<arm>.json` (+ its predictions).

- An arm that decodes as the run was trained (softmax/argmax, crf) is the run's own result: `metrics.json`.
- A decode-only arm (softmax + constrained Viterbi) re-decodes every kept epoch checkpoint
  (`checkpoints/epochN.ckpt`), selects the epoch by dev F1 *under that decoding*, and scores it on test.
  Without per-epoch checkpoints it falls back to the argmax-selected best checkpoint, and says so.
- The model card protocol (`RUN/eval/card-<arm>.json`) re-scores the test predictions of every epoch.
Each (checkpoint, split) is decoded once, in every mode needed, into `RUN/eval/epochs/epochN/<mode>/`;
files are written atomically and anything already there is reused, so evaluation is restartable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ner.data.reader import Sentence, read_iob2
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.evaluation.evaluate import (
    best_checkpoint,
    datamodule_for_run,
    decode_checkpoint,
    epoch_checkpoints,
    load_run_config,
    predictions_text,
)
from ner.files import atomic_write_text, write_json
from ner.metrics import score_sentences
from ner.study.arms import Arm
from ner.study.protocol import CARD_LABEL, CARD_MAX_LENGTH, card_protocol, kept_words
from ner.tags import types_of


def arm_file(run_dir: Path, arm: str) -> Path:
    return run_dir / "eval" / f"{arm}.json"


def card_file(run_dir: Path, arm: str) -> Path:
    return run_dir / "eval" / f"card-{arm}.json"


class EpochDecodes:
    """Predictions of a run's epoch checkpoints, decoded on demand and kept as files."""

    def __init__(
        self, run_dir: Path, trained: str, device: str = "auto", log: Callable[[str], None] = print
    ) -> None:
        self.run_dir, self.trained, self.device, self.log = run_dir, trained, device, log
        self.checkpoints = epoch_checkpoints(run_dir)
        self.per_epoch = bool(self.checkpoints)
        if not self.per_epoch:  # trained without keep_epoch_checkpoints: only the dev-selected epoch
            epoch, path = best_checkpoint(run_dir)
            self.checkpoints = {epoch: path}
        self._datamodule = None

    @property
    def datamodule(self):
        if self._datamodule is None:
            self._datamodule = datamodule_for_run(self.run_dir)
        return self._datamodule

    def file(self, epoch: int, mode: str, split: str) -> Path:
        return self.run_dir / "eval" / "epochs" / f"epoch{epoch}" / mode / f"{split}.iob2"

    def ensure(self, epochs: Sequence[int], split: str, modes: Sequence[str]) -> None:
        """Decode `split` with each checkpoint of `epochs` in the `modes` not on disk (one forward pass)."""
        for epoch in epochs:
            missing = [m for m in modes if not self.file(epoch, m, split).exists()]
            if not missing:
                continue
            checkpoint = self.checkpoints[epoch]
            self.log(f"{self.run_dir.name}: decoding {split} with {checkpoint.name} ({', '.join(missing)})")
            as_asked = [None if m == self.trained else m for m in missing]  # None: the head as trained
            decoded = decode_checkpoint(checkpoint, self.datamodule, [split], as_asked, self.device)
            for mode, asked in zip(missing, as_asked, strict=True):
                text = predictions_text(self.datamodule, split, decoded[asked][split])
                atomic_write_text(self.file(epoch, mode, split), text)

    def read(self, epoch: int, mode: str, split: str, types: Sequence[str]) -> list[Sentence]:
        return read_iob2(self.file(epoch, mode, split), types, with_predictions=True).sentences


def score_file_sentences(sentences: Sequence[Sentence], types: Sequence[str]) -> dict:
    return score_sentences([s.tags for s in sentences], [s.predicted for s in sentences], types)


def native_arm(arm: Arm, metrics: dict, trained: str) -> dict:
    """An arm that is the run itself (decoded as trained, `trained`): its metrics.json, relabelled."""
    return {
        "arm": arm.name,
        "protocol": "honest",
        "native": True,  # the run's own result, not a re-decoding
        "head": metrics["model"]["head"],
        "decode": trained,
        "seed": metrics["seed"],
        "selection": metrics["protocol"]["selection"],
        "dev_is_test": metrics["protocol"]["dev_is_test"],
        "epoch": metrics["best_epoch"],
        "dev": metrics["dev"],
        "test": metrics["test"],
        "predictions": {"dev": "predictions/dev.iob2", "test": "predictions/test.iob2"},
    }


def decoded_arm(run_dir: Path, arm: Arm, metrics: dict, decodes: EpochDecodes, types: Sequence[str]) -> dict:
    """A decode-only arm: epoch selected by dev F1 under the arm's decoding, then scored on test."""
    epochs = list(decodes.checkpoints)
    decodes.ensure(epochs, "dev", [arm.decode])
    dev = {e: score_file_sentences(decodes.read(e, arm.decode, "dev", types), types) for e in epochs}
    epoch = max(epochs, key=lambda e: dev[e]["micro"]["f1"])  # earliest on ties, as ModelCheckpoint
    decodes.ensure([epoch], "test", [arm.decode])
    test_sentences = decodes.read(epoch, arm.decode, "test", types)
    out = run_dir / "eval" / arm.name / "predictions"
    for split in ("dev", "test"):
        atomic_write_text(out / f"{split}.iob2", decodes.file(epoch, arm.decode, split).read_text())
    if decodes.per_epoch:
        selection = f"dev F1 under {arm.decode} decoding, over every epoch checkpoint"
    else:
        selection = (
            f"the argmax-selected best checkpoint (no per-epoch checkpoints), decoded with {arm.decode}"
        )
    return {
        "arm": arm.name,
        "protocol": "honest",
        "native": False,
        "head": metrics["model"]["head"],
        "decode": arm.decode,
        "seed": metrics["seed"],
        "selection": selection,
        "dev_is_test": metrics["protocol"]["dev_is_test"],
        "epoch": epoch,
        "dev": dev[epoch],
        "test": score_file_sentences(test_sentences, types),
        "epochs": [{"epoch": e, "dev_f1": dev[e]["micro"]["f1"]} for e in epochs],
        "predictions": {s: str((out / f"{s}.iob2").relative_to(run_dir)) for s in ("dev", "test")},
    }


def card_arm(
    run_dir: Path, arm: Arm, mode: str, metrics: dict, decodes: EpochDecodes, types: Sequence[str]
) -> dict:
    """The model card protocol on every epoch's test predictions, with the honest numbers beside it."""
    if not decodes.per_epoch:
        raise NerError(
            f"{run_dir}: the card protocol selects an epoch on test and needs every epoch's "
            "checkpoint; train with keep_epoch_checkpoints=true"
        )
    epochs = list(decodes.checkpoints)
    decodes.ensure(epochs, "test", [mode])
    test = {e: decodes.read(e, mode, "test", types) for e in epochs}
    gold = [s.tags for s in test[epochs[0]]]
    if mode == decodes.trained:
        dev_epoch = metrics["best_epoch"]
    else:  # selected as the decode-only arm selects it
        decodes.ensure(epochs, "dev", [mode])
        dev_epoch = max(
            epochs,
            key=lambda e: score_file_sentences(decodes.read(e, mode, "dev", types), types)["micro"]["f1"],
        )
    config = load_run_config(run_dir)
    kept = kept_words(
        load_tokenizer(config.model.encoder), [s.tokens for s in test[epochs[0]]], CARD_MAX_LENGTH
    )
    result = card_protocol(
        gold, {e: [s.predicted for s in sents] for e, sents in test.items()}, dev_epoch, kept, types
    )
    selected = test[result["selected_epoch"]]
    lines = []
    for sentence, k in zip(selected, kept, strict=True):
        lines += [
            f"{t}\t{g}\t{p}"
            for t, g, p in list(zip(sentence.tokens, sentence.tags, sentence.predicted, strict=True))[:k]
        ]
        lines.append("")
    out = run_dir / "eval" / f"card-{arm.name}"
    atomic_write_text(out / "PROTOCOL.txt", CARD_LABEL + "\n")
    atomic_write_text(out / "predictions" / "test.truncated.iob2", "\n".join(lines) + "\n")
    return {
        "arm": arm.name,
        "head": metrics["model"]["head"],
        "decode": mode,
        "seed": metrics["seed"],
        **result,
        "predictions": {"test": str((out / "predictions" / "test.truncated.iob2").relative_to(run_dir))},
    }


def trained_decode(run_dir: Path) -> str:
    """How the run decodes as trained: the softmax head's decode mode, else the head's name (`crf`)."""
    head = load_run_config(run_dir).head
    return str(head.decode) if "decode" in head else str(head.name)


def evaluate_run(
    run_dir: str | Path,
    arms: Sequence[Arm],
    card_arms: Sequence[Arm] = (),
    device: str = "auto",
    redo: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write `eval/<arm>.json` for the arms of this run's head, and `eval/card-<arm>.json` for `card_arms`.

    Skips result files already written unless `redo` (decoded predictions under `eval/epochs/` are always
    reused). Returns the files written."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise NerError(f"{run_dir}: no metrics.json, the run has not finished")
    metrics = json.loads(metrics_path.read_text())
    head, trained = metrics["model"]["head"], trained_decode(run_dir)
    types = types_of(metrics["model"]["labels"])
    arms = [a for a in arms if a.head == head and (redo or not arm_file(run_dir, a.name).exists())]
    cards = [a for a in card_arms if a.head == head and (redo or not card_file(run_dir, a.name).exists())]
    card_modes = {a.name: a.decode or trained for a in cards}
    redecoded = {a.decode for a in arms if a.decode not in (None, trained)}
    decodes = EpochDecodes(run_dir, trained, device, log) if redecoded or cards else None
    if decodes is not None:  # plan first: each (checkpoint, split) decoded once, in every mode asked for
        epochs = list(decodes.checkpoints)
        dev_modes = redecoded | {m for m in card_modes.values() if m != trained}
        if dev_modes:
            decodes.ensure(epochs, "dev", sorted(dev_modes))
        if cards and decodes.per_epoch:
            decodes.ensure(epochs, "test", sorted(redecoded | set(card_modes.values())))

    written = []
    for arm in arms:
        if arm.decode in (None, trained):
            result = native_arm(arm, metrics, trained)
        else:
            result = decoded_arm(run_dir, arm, metrics, decodes, types)
        written.append(write_json(arm_file(run_dir, arm.name), result))
    for arm in cards:
        result = card_arm(run_dir, arm, card_modes[arm.name], metrics, decodes, types)
        written.append(write_json(card_file(run_dir, arm.name), result))
    return written
