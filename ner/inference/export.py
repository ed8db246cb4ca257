"""Export a checkpoint as a Hugging Face model folder: `python -m ner export --ckpt PATH --out DIR`.

- softmax head with argmax decoding (the model card's model): a standard `*ForTokenClassification`
  (weights, tokenizer, `id2label`); `pipeline("ner", model=DIR, tokenizer=DIR)` and
  `AutoModelForTokenClassification.from_pretrained(DIR)` work as the card shows, no extra code.
- a head whose decoding is more than an argmax (`Head.export_decoder`: CRF, softmax with `decode=viterbi`):
  labels come from a Viterbi search, which a plain token classifier cannot express. The folder ships the
  head's transition scores, the heads' own decoding code (`ner/heads/viterbi.py`) and the model class and
  pipeline that call it (`ner/inference/hf/`); load it with `trust_remote_code=True`. Without that flag
  loading fails, instead of silently decoding with an argmax.
"""

from __future__ import annotations

import argparse
import copy
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
from ner.inference.predictor import load_checkpoint
from ner.model import NerTagger

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
"""


def export(ckpt: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the Hugging Face folder for checkpoint `ckpt` into `out`; returns `out`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise NerError(f"{out} exists and is not an empty folder (pass --overwrite to replace its files)")
    model, tokenizer = load_checkpoint(ckpt)
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
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner export", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint of a run (e.g. RUN/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, help="folder to write (created; must be empty)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    args = parser.parse_args(argv)
    with user_errors():
        out = export(args.ckpt, args.out, args.overwrite)
        print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
