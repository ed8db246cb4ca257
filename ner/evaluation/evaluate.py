"""Re-evaluate a finished run's checkpoint: another decode mode, another checkpoint, another split.

`python -m ner evaluate RUN_DIR [--checkpoint best|last|epochN|PATH] [--decode viterbi] [--split test]
[--out FILE] [--json]` decodes with the run's own data and tokenizer (rebuilt from `RUN_DIR/config.yaml`),
prints the scores and optionally writes a `token<TAB>gold<TAB>pred` file. The study uses the same
functions to decode every epoch checkpoint once and score the decode-only arms without retraining.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from rich.console import Console

from ner.data.datamodule import NerDataModule
from ner.data.writer import corpus_predictions, sentence_predictions
from ner.errors import NerError, user_errors
from ner.evaluation.run_folder import RunFolder
from ner.files import atomic_write_text
from ner.metrics import score_sentences


def precision_context(precision: str, device: torch.device) -> AbstractContextManager:
    """The forward pass at a run's `trainer.precision`, so that a re-decoding sees the emissions that the
    run's own predictions came from (bf16 and fp32 emissions can differ in a few words of a test set)."""
    precision = str(precision)
    if precision in ("bf16-mixed", "16-mixed"):  # Lightning's own plugin: the autocast training used
        return MixedPrecision(precision, device.type).forward_context()
    if precision in ("32-true", "32", "64-true", "64"):
        return nullcontext()
    raise NerError(f"decoding at precision {precision!r} is not supported: 32-true, bf16-mixed or 16-mixed")


def decode_checkpoint(
    checkpoint: str | Path,
    datamodule: NerDataModule,
    splits: Sequence[str] = ("test",),
    modes: Sequence[str | None] = (None,),
    device: str = "auto",
    precision: str = "32-true",
) -> dict[str | None, dict[str, list[list[str]]]]:
    """Predicted tags `{mode: {split: [tags per sentence]}}`: one forward pass per batch, every mode from it.

    `mode` None decodes as the head was trained; any other of the head's `decode_modes` (`argmax` /
    `viterbi` for the softmax head) re-decodes the same emissions. `precision`: the forward pass's
    (`trainer.precision`; the run's own, to reproduce its predictions).
    """
    from ner.inference.predictor import load_model  # the checkpoint loader, with its clear errors

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(checkpoint, device)
    if list(model.labels) != list(datamodule.labels):
        raise NerError(f"{checkpoint}: labels {model.labels} differ from the data's {datamodule.labels}")
    unknown = [mode for mode in modes if mode is not None and mode not in model.head.decode_modes]
    if unknown:
        raise NerError(
            f"{checkpoint}: no decode mode {unknown[0]!r}; expected one of {model.head.decode_modes}"
        )
    out: dict[str | None, dict[str, list[list[str]]]] = {mode: {} for mode in modes}
    with torch.inference_mode(), precision_context(precision, model.device):
        for split in splits:
            tags: dict[str | None, dict[int, list[str]]] = {mode: {} for mode in modes}
            for batch in datamodule.eval_dataloader(split):
                batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                emissions, mask = model.sentence_emissions(batch)  # (sentences, words, labels)
                for mode in modes:
                    paths = model.head.decode(emissions, mask, mode)
                    for sentence, path in zip(batch["sentence_index"], paths, strict=True):
                        tags[mode][sentence] = [model.labels[t] for t in path]
            n = len(datamodule.sentences[split])
            for mode in modes:
                if len(tags[mode]) != n:
                    raise RuntimeError(f"{split}: some sentences were never decoded")  # a sampler bug
                out[mode][split] = [tags[mode][i] for i in range(n)]
    return out


def predictions_text(datamodule: NerDataModule, split: str, tags: Sequence[Sequence[str]]) -> str:
    """The predictions file of a split, in the same layout as a run's `predictions/{split}.iob2`."""
    if split == "test":
        return corpus_predictions(datamodule.test_corpus, tags)
    return sentence_predictions(datamodule.sentences[split], tags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder (config.yaml, checkpoints/)")
    parser.add_argument(
        "--checkpoint", default="best", help="best | last | epochN | a .ckpt path (default best)"
    )
    parser.add_argument("--decode", default=None, help="argmax | viterbi (softmax head); default: as trained")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--out", help="also write the token<TAB>gold<TAB>pred file here")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--precision", help="32-true | bf16-mixed | 16-mixed (default: the run's trainer.precision)"
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    with user_errors():
        run = RunFolder(args.run_dir)
        datamodule = run.datamodule()
        checkpoint = run.checkpoint(args.checkpoint)
        precision = args.precision or run.precision
        decoded = decode_checkpoint(
            checkpoint, datamodule, [args.split], [args.decode], args.device, precision
        )
        predicted = decoded[args.decode][args.split]
    gold = [s.tags for s in datamodule.sentences[args.split]]
    scores = score_sentences(gold, predicted, datamodule.types)
    if args.out:
        atomic_write_text(args.out, predictions_text(datamodule, args.split, predicted))
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        from ner.evaluation.score import _score_table

        Console().print(
            _score_table(scores, f"{checkpoint} ({args.decode or 'as trained'}, {args.split}, {precision})")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
