"""Export a checkpoint as a Hugging Face model folder: `python -m ner export --ckpt PATH --out DIR`.

- softmax head with argmax decoding (the model card's model): a standard `*ForTokenClassification`
  (weights, tokenizer, `id2label`); `pipeline("ner", model=DIR, tokenizer=DIR)` and
  `AutoModelForTokenClassification.from_pretrained(DIR)` work as the card shows, no extra code.
- a head whose decoding is more than an argmax (`Head.export_decoder`: CRF, softmax with `decode=viterbi`):
  labels come from a Viterbi search, which a plain token classifier cannot express. The folder ships the
  head's transition scores, the heads' own decoding code (`ner/heads/viterbi.py`) and the model class and
  pipeline that call it (`ner/inference/hf/`); load it with `trust_remote_code=True`. Without that flag
  loading fails, instead of silently decoding with an argmax.

A model trained with document context (`data.context > 0`) saw each sentence with up to N subwords of its
neighbouring sentences. The Hugging Face pipeline cannot give it that: it tags each input on its own, with
no unlabelled context around it. `export` warns, and the model card says so; `ner.Predictor` and
`python -m ner predict` (also with the ONNX graph) do give the context.

`--onnx` adds `model.onnx`: the encoder and emission layer as an ONNX graph for ONNX Runtime, emissions out,
decoding left to the heads' code (`python -m ner predict --backend onnx --onnx-model DIR/model.onnx`, see
`ner.inference.onnx`); `--int8` also writes `model.int8.onnx`, its int8 quantization (approximate).
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, PreTrainedModel

from ner.errors import NerError, user_errors
from ner.evaluation.run_folder import run_folder_of_checkpoint
from ner.heads import ExportedDecoder, viterbi
from ner.inference import hf as hf_code
from ner.inference.onnx import FILE as ONNX_FILE
from ner.inference.onnx import INT8_FILE, export_onnx, quantize_int8
from ner.inference.predictor import load_checkpoint
from ner.model import NerTagger

log = logging.getLogger(__name__)
# shipped in the folder: the model class, its config and pipeline, and the heads' own decoding code
REMOTE_FILES = [
    Path(hf_code.__file__).parent / name
    for name in ("configuration_ner_tagger.py", "modeling_ner_tagger.py", "pipeline_ner_tagger.py")
] + [Path(viterbi.__file__)]
AUTO_MAP = {
    "AutoConfig": "configuration_ner_tagger.NerTaggerConfig",
    "AutoModelForTokenClassification": "modeling_ner_tagger.NerTaggerForTokenClassification",
}
# the encoder's own bookkeeping, meaningless (or a local path) inside the exported config
ENCODER_KEYS_DROPPED = ("_name_or_path", "architectures", "id2label", "label2id", "transformers_version")
CONTEXT_NOTE = (
    "Trained with document context (`data.context={context}`): each sentence was encoded with up to"
    " {context} subwords of the neighbouring sentences of its document on each side, unlabelled. This"
    " pipeline cannot do that: it tags each input on its own, so given one sentence at a time the model"
    " sees no context and may score lower than in training. `ner.Predictor` and `python -m ner predict`"
    " give every sentence the other sentences of its document as context."
)
PIPELINE = {
    "impl": "pipeline_ner_tagger.NerTaggerPipeline",
    "pt": ["AutoModelForTokenClassification"],
    "type": "text",
}


def standard_model(model: NerTagger) -> PreTrainedModel:
    """The encoder and emission layer as the encoder family's own `*ForTokenClassification`."""
    config = copy.deepcopy(model.encoder.config)
    config.id2label = dict(enumerate(model.labels))
    config.label2id = {label: i for i, label in config.id2label.items()}
    config.architectures = None
    hf = AutoModelForTokenClassification.from_config(config)
    classifier = getattr(hf, "classifier", None)
    if not isinstance(classifier, torch.nn.Linear) or classifier.weight.shape != model.emissions.weight.shape:
        raise NerError(
            f"cannot export a {config.model_type} encoder: its token classifier is not one linear layer"
        )
    hf.base_model.load_state_dict(model.encoder.state_dict())  # strict: every weight has its place
    classifier.load_state_dict(model.emissions.state_dict())
    return hf


def remote_model(model: NerTagger, decoder: ExportedDecoder) -> PreTrainedModel:
    """The tagger as `ner.inference.hf`'s model class, with the head's (constrained) transition scores."""
    from ner.inference.hf.configuration_ner_tagger import NerTaggerConfig
    from ner.inference.hf.modeling_ner_tagger import NerTaggerForTokenClassification

    encoder = {k: v for k, v in model.encoder.config.to_dict().items() if k not in ENCODER_KEYS_DROPPED}
    id2label = dict(enumerate(model.labels))
    label2id = {label: i for i, label in id2label.items()}
    config = NerTaggerConfig(encoder=encoder, decoder=decoder.kind, id2label=id2label, label2id=label2id)
    config.auto_map = AUTO_MAP
    config.custom_pipelines = {"ner": PIPELINE, "token-classification": PIPELINE}
    hf = NerTaggerForTokenClassification(config).eval()
    hf.encoder.load_state_dict(model.encoder.state_dict())
    hf.classifier.load_state_dict(model.emissions.state_dict())
    with torch.no_grad():
        hf.start_transitions.copy_(decoder.start)
        hf.end_transitions.copy_(decoder.end)
        hf.transitions.copy_(decoder.transitions)
    return hf


def model_card(model: NerTagger, decoder: ExportedDecoder | None, metrics: dict | None) -> str:
    encoder = model.hparams.encoder
    encoder = Path(encoder).name if Path(encoder).is_dir() else encoder  # a local folder: not its path
    decoding = (
        f" (labels decoded by `{decoder.kind}`: Viterbi, shipped as code in this folder)" if decoder else ""
    )
    scores = ""
    if metrics and "test" in metrics:
        micro = metrics["test"]["micro"]
        scores = (
            f"\nTest scores of the run's selected checkpoint `{metrics.get('best_checkpoint')}` (official"
            f" JNLPBA scoring): precision {micro['precision']:.4f}, recall {micro['recall']:.4f},"
            f" F1 {micro['f1']:.4f}.\n"
        )
    remote = ", trust_remote_code=True" if decoder else ""
    context = model.hparams.get("context", 0)
    context_note = f"\n{CONTEXT_NOTE.format(context=context)}\n" if context else ""
    return f"""# Biomedical NER (JNLPBA)

Encoder `{encoder}`, head `{model.hparams.head}`{decoding}; labels: {", ".join(model.labels)}.
{scores}
```python
from transformers import pipeline
ner = pipeline("ner", model=DIR, tokenizer=DIR, aggregation_strategy="first"{remote})
ner("Mouse thymus was used as a source of glucocorticoid receptor from normal CS lymphocytes.")
```

The model was trained on GENIA-tokenized words (punctuation split off, hyphenated terms whole), labelling each
word at its first subword: `aggregation_strategy="first"` reads it the same way.
{context_note}"""


def export(
    ckpt: str | Path, out: str | Path, overwrite: bool = False, onnx: bool = False, int8: bool = False
) -> Path:
    """Write the Hugging Face folder for checkpoint `ckpt` into `out`; returns `out`.

    `onnx`: also `out/model.onnx` (`ner.inference.onnx`); `int8`: and `out/model.int8.onnx` (implies onnx).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise NerError(f"{out} exists and is not an empty folder (pass --overwrite to replace its files)")
    model, tokenizer = load_checkpoint(ckpt)
    if model.hparams.get("context", 0):
        log.warning(
            "%s was trained with data.context=%d: the exported Hugging Face pipeline tags each input without"
            " the neighbouring sentences it had as context (see the folder's README.md)",
            ckpt,
            model.hparams.context,
        )
    decoder = model.head.export_decoder()  # as trained
    hf = remote_model(model, decoder) if decoder else standard_model(model)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if decoder:
        for path in REMOTE_FILES:
            shutil.copyfile(path, out / path.name)
    run = run_folder_of_checkpoint(ckpt)
    metrics = run.metrics if run and run.finished else None  # the run's own scores, for the card
    (out / "README.md").write_text(model_card(model, decoder, metrics), encoding="utf-8")
    if onnx or int8:
        export_onnx(model, out / ONNX_FILE, source=Path(ckpt).resolve())
    if int8:
        quantize_int8(out / ONNX_FILE, out / INT8_FILE)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner export", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of a run (e.g. RUN/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, help="folder to write (created; must be empty)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    parser.add_argument(
        "--onnx", action="store_true", help="also model.onnx: encoder + emission layer for ONNX Runtime"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also model.int8.onnx, int8-quantized (approximate; implies --onnx)",
    )
    args = parser.parse_args(argv)
    with user_errors():
        out = export(args.ckpt, args.out, args.overwrite, onnx=args.onnx, int8=args.int8)
        print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
