"""Re-evaluate a finished run's checkpoint: another decode mode, another checkpoint, another split.

`python -m ner evaluate RUN_DIR [--checkpoint best|last|epochN|PATH] [--decode viterbi] [--split test]
[--out FILE] [--json]` decodes with the run's own data and tokenizer (rebuilt from `RUN_DIR/config.yaml`),
prints the scores and optionally writes a `token<TAB>gold<TAB>pred` file. The ablation runner uses the same
functions to decode every epoch checkpoint once and score the decode-only arms without retraining.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ner.config import register_resolvers
from ner.data.datamodule import NerDataModule
from ner.data.windows import merge_windows
from ner.data.writer import corpus_predictions, sentence_predictions
from ner.errors import NerError
from ner.files import atomic_write_text
from ner.heads import SoftmaxHead
from ner.metrics import score_sentences
from ner.model import NerTagger

EPOCH_CHECKPOINT = re.compile(r"^epoch(\d+)\.ckpt$")
BEST_CHECKPOINT = re.compile(r"^best-epoch(\d+)\.ckpt$")


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config a run saved (`config.yaml`), or a NerError naming what is missing."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise NerError(f"{path}: not found; is {run_dir} a run folder written by experiments/run.py?")
    return OmegaConf.load(path)


def datamodule_for_run(run_dir: str | Path) -> NerDataModule:
    """The run's data module (same files, dev split, tokenizer and windowing), set up and ready to decode."""
    from ner.train import build_datamodule  # here, not at import: ner.train pulls in the whole trainer

    register_resolvers()
    datamodule = build_datamodule(load_run_config(run_dir))
    datamodule.setup("fit")
    return datamodule


def epoch_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """`{epoch: checkpoints/epochN.ckpt}` (written with keep_epoch_checkpoints=true), sorted by epoch."""
    folder = Path(run_dir) / "checkpoints"
    found = {int(m[1]): p for p in folder.glob("epoch*.ckpt") if (m := EPOCH_CHECKPOINT.match(p.name))}
    return dict(sorted(found.items()))


def best_checkpoint(run_dir: str | Path) -> tuple[int, Path]:
    """The dev-selected checkpoint of a run and its epoch."""
    folder = Path(run_dir) / "checkpoints"
    found = [(int(m[1]), p) for p in folder.glob("best-epoch*.ckpt") if (m := BEST_CHECKPOINT.match(p.name))]
    if len(found) != 1:
        raise NerError(f"{folder}: expected exactly one best-epochN.ckpt, found {len(found)}")
    return found[0]


def resolve_checkpoint(run_dir: str | Path, name: str) -> Path:
    """`best`, `last`, `epochN` (a kept epoch checkpoint) or a path."""
    folder = Path(run_dir) / "checkpoints"
    if name == "best":
        return best_checkpoint(run_dir)[1]
    path = folder / f"{name}.ckpt" if name == "last" or re.fullmatch(r"epoch\d+", name) else Path(name)
    if not path.exists():
        raise NerError(f"{path}: checkpoint not found")
    return path


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _decoder(head: torch.nn.Module, mode: str | None) -> Callable:
    """The head's own decode, or a softmax head's other decode mode (the softmax head has no parameters)."""
    if mode is None or mode == getattr(head, "decode_mode", None):
        return head.decode
    if isinstance(head, SoftmaxHead):
        return SoftmaxHead(head.labels, decode=mode).to(head.start_log_allowed.device).decode
    raise NerError(
        f"a {type(head).__name__} has no decode mode {mode!r}; only the softmax head switches modes"
    )


def decode_checkpoint(
    checkpoint: str | Path,
    datamodule: NerDataModule,
    splits: Sequence[str] = ("test",),
    modes: Sequence[str | None] = (None,),
    device: str = "auto",
) -> dict[str | None, dict[str, list[list[str]]]]:
    """Predicted tags `{mode: {split: [tags per sentence]}}`: one forward pass per batch, every mode from it.

    `mode` None is the head as trained; `argmax` / `viterbi` switch a softmax head's decoding.
    """
    target = resolve_device(device)
    model = NerTagger.load_from_checkpoint(str(checkpoint), map_location=target)
    model.eval()
    if list(model.labels) != list(datamodule.labels):
        raise NerError(f"{checkpoint}: labels {model.labels} differ from the data's {datamodule.labels}")
    decoders = {mode: _decoder(model.head, mode) for mode in modes}
    out: dict[str | None, dict[str, list[list[str]]]] = {mode: {} for mode in modes}
    with torch.inference_mode():
        for split in splits:
            n = len(datamodule.sentences[split])
            tags: dict[str | None, list] = {mode: [None] * n for mode in modes}
            for batch in datamodule.eval_dataloader(split):
                inputs = [batch[k].to(target) for k in ("input_ids", "attention_mask", "word_index")]
                emissions = model(*inputs)  # (windows, words, labels)
                mask = batch["word_mask"].to(target)
                for mode, decode in decoders.items():
                    paths = decode(emissions, mask)
                    n_items = len(batch["sentence_index"])
                    merged = merge_windows(paths, batch["window_owned"], batch["window_item"], n_items)
                    for i, sentence in enumerate(batch["sentence_index"]):
                        tags[mode][sentence] = [model.labels[t] for t in merged[i]]
            for mode in modes:
                if any(t is None for t in tags[mode]):
                    raise RuntimeError(f"{split}: some sentences were never decoded")  # a sampler bug
                out[mode][split] = tags[mode]
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
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    try:
        datamodule = datamodule_for_run(args.run_dir)
        checkpoint = resolve_checkpoint(args.run_dir, args.checkpoint)
        tags = decode_checkpoint(checkpoint, datamodule, [args.split], [args.decode], args.device)[
            args.decode
        ]
    except NerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    predicted = tags[args.split]
    gold = [s.tags for s in datamodule.sentences[args.split]]
    scores = score_sentences(gold, predicted, datamodule.types)
    if args.out:
        atomic_write_text(args.out, predictions_text(datamodule, args.split, predicted))
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        from ner.evaluation.score import _score_table

        Console().print(_score_table(scores, f"{checkpoint} ({args.decode or 'as trained'}, {args.split})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
