"""Evaluation arms of one finished run, written next to it: `RUN/eval/<arm>.json` (+ its predictions).

- An arm without `decode` (or with the run's own, `metrics.json` `model.decode`) is the run's own result.
- A decode-only arm (softmax + constrained Viterbi: another decode mode of the head) re-decodes every
  kept epoch checkpoint (`checkpoints/epochN.ckpt`), selects the epoch by dev F1 *under that decoding*,
  and scores it on test. Without per-epoch checkpoints it falls back to the argmax-selected best
  checkpoint, and says so.
- The model card protocol (`RUN/eval/card-<arm>.json`) re-scores the test predictions of every epoch.
- A final retrain on train+dev (`data.dev=none`) has no dev: each of its arms is its kept (last) epoch,
  decoded the arm's way and scored on test, and says how it was trained (`retrain`); no card protocol.
Each honest arm's file keeps its per-document test counts (`test_documents`), which is all the paired tests
need: the comparison runs again from these files alone, without predictions or checkpoints.
Each (checkpoint, split) is decoded once, in every mode needed, into `RUN/eval/epochs/epochN/<mode>/`;
files are written atomically and anything already there is reused, so evaluation is restartable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

from ner.data.reader import Sentence, read_iob2
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.evaluation.evaluate import decode_checkpoint, predictions_text
from ner.evaluation.run_folder import RunFolder
from ner.files import atomic_write_text, write_json
from ner.metrics import score_sentences
from ner.study.arms import Arm
from ner.study.protocol import CARD_LABEL, CARD_MAX_LENGTH, card_protocol, kept_words
from ner.study.stats import document_record


class EpochDecodes:
    """Predictions of a run's epoch checkpoints, decoded on demand and kept as files."""

    def __init__(self, run: RunFolder, trained: str, device: str, log: Callable) -> None:
        self.run, self.trained, self.device, self.log = run, trained, device, log
        self.checkpoints = run.epoch_checkpoints()
        self.per_epoch = bool(self.checkpoints)
        if run.retrain:  # no dev to select on: the kept (last) epoch is the model
            kept = run.metrics["kept_epoch"]
            self.checkpoints, self.per_epoch = {kept: run.checkpoint("last")}, False
        elif not self.per_epoch:  # trained without keep_epoch_checkpoints: only the dev-selected epoch
            epoch, path = run.best_checkpoint()
            self.checkpoints = {epoch: path}

    @cached_property
    def datamodule(self):
        return self.run.datamodule()

    def file(self, epoch: int, mode: str, split: str) -> Path:
        return self.run.path / "eval" / "epochs" / f"epoch{epoch}" / mode / f"{split}.iob2"

    def ensure(self, split: str, modes: Sequence[str], epochs: Sequence[int] | None = None) -> None:
        """Decode `split` with each checkpoint (of `epochs`) in the `modes` not on disk (one forward pass)."""
        for epoch in self.checkpoints if epochs is None else epochs:
            missing = [m for m in modes if not self.file(epoch, m, split).exists()]
            if not missing:
                continue
            checkpoint = self.checkpoints[epoch]
            self.log(
                f"{self.run.path.name}: decoding {split} with {checkpoint.name} ({', '.join(missing)}; "
                f"{self.run.precision})"
            )
            as_asked = [None if m == self.trained else m for m in missing]  # None: the head as trained
            decoded = decode_checkpoint(
                checkpoint, self.datamodule, [split], as_asked, self.device, self.run.precision
            )
            for mode, asked in zip(missing, as_asked, strict=True):
                text = predictions_text(self.datamodule, split, decoded[asked][split])
                atomic_write_text(self.file(epoch, mode, split), text)

    def read(self, epoch: int, mode: str, split: str) -> list[Sentence]:
        return read_iob2(self.file(epoch, mode, split), self.run.types, with_predictions=True).sentences

    def scores(self, epoch: int, mode: str, split: str) -> dict:
        sentences = self.read(epoch, mode, split)
        return score_sentences([s.tags for s in sentences], [s.predicted for s in sentences], self.run.types)

    def dev_selected(self, mode: str) -> tuple[int, dict[int, dict]]:
        """The epoch of the highest dev F1 decoded with `mode` (earliest on ties, as ModelCheckpoint), and
        every epoch's dev scores."""
        self.ensure("dev", [mode])
        dev = {e: self.scores(e, mode, "dev") for e in self.checkpoints}
        return max(dev, key=lambda e: dev[e]["micro"]["f1"]), dev


def arm_result(arm: Arm, metrics: dict, decode: str) -> dict:
    """The fields every arm file starts with (and, for a retrain on train+dev, how it was trained)."""
    result = {"arm": arm.name, "head": metrics["model"]["head"], "decode": decode, "seed": metrics["seed"]}
    if retrain := metrics["protocol"].get("retrain"):
        result["retrain"] = retrain
    return result


def native_arm(arm: Arm, metrics: dict, trained: str) -> dict:
    """An arm that is the run itself (decoded as trained, `trained`): its metrics.json, relabelled."""
    return {
        **arm_result(arm, metrics, trained),
        "protocol": "honest",
        "native": True,  # the run's own result, not a re-decoding
        "selection": metrics["protocol"]["selection"],
        "dev_is_test": metrics["protocol"]["dev_is_test"],
        "epoch": metrics.get("kept_epoch", metrics["best_epoch"]),
        **{split: metrics[split] for split in ("dev", "test") if split in metrics},  # retrain: no dev
        "predictions": {split: f"predictions/{split}.iob2" for split in ("dev", "test") if split in metrics},
    }


def decoded_arm(arm: Arm, metrics: dict, decodes: EpochDecodes) -> dict:
    """A decode-only arm: epoch selected by dev F1 under the arm's decoding, then scored on test."""
    if decodes.run.retrain:
        return retrained_arm(arm, metrics, decodes)
    epoch, dev = decodes.dev_selected(arm.decode)
    decodes.ensure("test", [arm.decode], [epoch])
    predictions = {
        split: str(Path("eval", arm.name, "predictions", f"{split}.iob2")) for split in ("dev", "test")
    }
    for split, path in predictions.items():
        atomic_write_text(decodes.run.path / path, decodes.file(epoch, arm.decode, split).read_text())
    if decodes.per_epoch:
        selection = f"dev F1 under {arm.decode} decoding, over every epoch checkpoint"
    else:
        selection = (
            f"the argmax-selected best checkpoint (no per-epoch checkpoints), decoded with {arm.decode}"
        )
    return {
        **arm_result(arm, metrics, arm.decode),
        "protocol": "honest",
        "native": False,
        "selection": selection,
        "dev_is_test": metrics["protocol"]["dev_is_test"],
        "decode_precision": decodes.run.precision,  # the run's: its own predictions came from it too
        "epoch": epoch,
        "dev": dev[epoch],
        "test": decodes.scores(epoch, arm.decode, "test"),
        "epochs": [{"epoch": e, "dev_f1": scores["micro"]["f1"]} for e, scores in dev.items()],
        "predictions": predictions,
    }


def retrained_arm(arm: Arm, metrics: dict, decodes: EpochDecodes) -> dict:
    """A decode-only arm of a run without dev: its kept epoch decoded the arm's way, scored on test."""
    (epoch,) = decodes.checkpoints
    decodes.ensure("test", [arm.decode], [epoch])
    predictions = {"test": str(Path("eval", arm.name, "predictions", "test.iob2"))}
    atomic_write_text(
        decodes.run.path / predictions["test"], decodes.file(epoch, arm.decode, "test").read_text()
    )
    return {
        **arm_result(arm, metrics, arm.decode),
        "protocol": "honest",
        "native": False,
        "selection": f"none: the kept (last) epoch, decoded with {arm.decode}",
        "dev_is_test": False,
        "decode_precision": decodes.run.precision,
        "epoch": epoch,
        "test": decodes.scores(epoch, arm.decode, "test"),
        "predictions": predictions,
    }


def card_arm(arm: Arm, mode: str, metrics: dict, decodes: EpochDecodes) -> dict:
    """The model card protocol on every epoch's test predictions, with the honest numbers beside it."""
    if not decodes.per_epoch:
        raise NerError(
            f"{decodes.run.path}: the card protocol selects an epoch on test and needs every epoch's "
            "checkpoint; train with keep_epoch_checkpoints=true"
        )
    decodes.ensure("test", [mode])
    test = {e: decodes.read(e, mode, "test") for e in decodes.checkpoints}
    # selected on dev as the decode-only arm selects it, unless the run itself is the arm
    dev_epoch = metrics["best_epoch"] if mode == decodes.trained else decodes.dev_selected(mode)[0]
    sentences = next(iter(test.values()))
    tokenizer = load_tokenizer(decodes.datamodule.tokenizer_name)  # the run's own subwords
    kept = kept_words(tokenizer, [s.tokens for s in sentences], CARD_MAX_LENGTH)
    predicted = {e: [s.predicted for s in epoch] for e, epoch in test.items()}
    result = card_protocol([s.tags for s in sentences], predicted, dev_epoch, kept, decodes.run.types)
    lines = []
    for s, k in zip(test[result["selected_epoch"]], kept, strict=True):
        lines += [f"{t}\t{g}\t{p}" for t, g, p in zip(s.tokens[:k], s.tags[:k], s.predicted[:k], strict=True)]
        lines.append("")
    out = Path("eval", f"card-{arm.name}")
    atomic_write_text(decodes.run.path / out / "PROTOCOL.txt", CARD_LABEL + "\n")
    predictions = {"test": str(out / "predictions" / "test.truncated.iob2")}
    atomic_write_text(decodes.run.path / predictions["test"], "\n".join(lines) + "\n")
    return {**arm_result(arm, metrics, mode), **result, "predictions": predictions}


def trained_decode(run: RunFolder) -> str:
    """How the run decodes as trained: `metrics.json` `model.decode` (argmax, viterbi, crf), else its head."""
    return str(run.metrics["model"].get("decode") or run.head)


def evaluate_run(
    run_dir: str | Path,
    arms: Sequence[Arm],
    card_arms: Sequence[Arm] = (),
    device: str = "auto",
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write `eval/<arm>.json` for the arms of this run's head, and `eval/card-<arm>.json` for `card_arms`.

    Skips result files already written (decoded predictions under `eval/epochs/` are reused too). Returns
    the files written."""
    run = RunFolder(run_dir)
    metrics, trained = run.metrics, trained_decode(run)

    def todo(candidates: Sequence[Arm], prefix: str) -> dict[Path, Arm]:
        files = {run.path / "eval" / f"{prefix}{a.name}.json": a for a in candidates if a.matches(run)}
        return {path: arm for path, arm in files.items() if not path.exists()}

    # a retrain on train+dev has no dev-selected epoch to hold the card's test-selected one against
    arms, cards = todo(arms, ""), todo(card_arms, "card-") if not run.retrain else {}
    redecoded = {a.decode for a in arms.values() if a.decode not in (None, trained)}
    card_modes = {a.decode or trained for a in cards.values()}
    decodes = EpochDecodes(run, trained, device, log) if redecoded or cards else None
    # plan first: each (checkpoint, split) decoded once, in every mode asked for
    if (redecoded or card_modes - {trained}) and not run.retrain:
        decodes.ensure("dev", sorted(redecoded | card_modes - {trained}))
    if cards and decodes.per_epoch:
        decodes.ensure("test", sorted(redecoded | card_modes))

    written = []
    for path, arm in arms.items():
        native = arm.decode in (None, trained)
        result = native_arm(arm, metrics, trained) if native else decoded_arm(arm, metrics, decodes)
        test = read_iob2(run.path / result["predictions"]["test"], run.types, with_predictions=True)
        result["test_documents"] = document_record(test, run.types)
        written.append(write_json(path, result))
    for path, arm in cards.items():
        written.append(write_json(path, card_arm(arm, arm.decode or trained, metrics, decodes)))
    return written
