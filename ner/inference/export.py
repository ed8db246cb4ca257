"""Export a checkpoint as a Hugging Face model folder: `python -m ner export --ckpt PATH --out DIR`.

- softmax head with argmax decoding (the model card's model): a standard `*ForTokenClassification`
  (weights, tokenizer, `id2label`); `pipeline("ner", model=DIR, tokenizer=DIR)` and
  `AutoModelForTokenClassification.from_pretrained(DIR)` work as the card shows, no extra code.
- CRF head, or softmax with `decode=viterbi`: labels come from a Viterbi search, which a plain token
  classifier cannot express. The folder ships its transitions and the code that decodes with them
  (`ner/hf/`: a config, a model class and a pipeline); load it with `trust_remote_code=True`. Without
  that flag loading fails, instead of silently decoding with an argmax.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, PreTrainedModel

from ner.errors import NerError, user_errors
from ner.heads import CRFHead
from ner.inference.predictor import load_checkpoint
from ner.model import NerTagger

HF_CODE = Path(__file__).parent / "hf"
REMOTE_FILES = ("configuration_ner_tagger.py", "modeling_ner_tagger.py", "pipeline_ner_tagger.py")
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


def decoder_of(model: NerTagger) -> str | None:
    """None when word labels are a plain argmax (a standard classifier), else the remote decoder's name."""
    if isinstance(model.head, CRFHead):
        return "crf"
    return "softmax_viterbi" if getattr(model.head, "decode_mode", "argmax") == "viterbi" else None


def standard_model(model: NerTagger) -> PreTrainedModel:
    """The encoder and emission layer as the encoder family's own `*ForTokenClassification`."""
    config = copy.deepcopy(model.encoder.config)
    config.id2label = dict(enumerate(model.labels))
    config.label2id = {label: i for i, label in enumerate(model.labels)}
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


def remote_model(model: NerTagger, decoder: str) -> PreTrainedModel:
    """The tagger as `ner.inference.hf`'s model class, with the head's (constrained) transition scores."""
    from ner.inference.hf.configuration_ner_tagger import NerTaggerConfig
    from ner.inference.hf.modeling_ner_tagger import NerTaggerForTokenClassification

    encoder = {k: v for k, v in model.encoder.config.to_dict().items() if k not in ENCODER_KEYS_DROPPED}
    config = NerTaggerConfig(
        encoder=encoder,
        decoder=decoder,
        id2label=dict(enumerate(model.labels)),
        label2id={label: i for i, label in enumerate(model.labels)},
    )
    config.auto_map = AUTO_MAP
    config.custom_pipelines = {"ner": PIPELINE, "token-classification": PIPELINE}
    hf = NerTaggerForTokenClassification(config).eval()
    hf.encoder.load_state_dict(model.encoder.state_dict())
    hf.classifier.load_state_dict(model.emissions.state_dict())
    head = model.head
    if decoder == "crf":  # the parametrized attributes read back with disallowed entries pinned
        scores = (head.crf.start_transitions, head.crf.end_transitions, head.crf.transitions)
    else:
        scores = (head.start_log_allowed, head.end_log_allowed, head.transitions_log_allowed)
    with torch.no_grad():
        for target, value in zip(
            (hf.start_transitions, hf.end_transitions, hf.transitions), scores, strict=True
        ):
            target.copy_(value)
    return hf


def model_card(model: NerTagger, decoder: str | None, metrics: dict | None) -> str:
    remote = ", trust_remote_code=True" if decoder else ""
    encoder = model.hparams.encoder
    encoder = Path(encoder).name if Path(encoder).is_dir() else encoder  # a local folder: not its path
    lines = [
        "# Biomedical NER (JNLPBA)",
        "",
        f"Encoder `{encoder}`, head `{model.hparams.head}`"
        + (f" (labels decoded by `{decoder}`: Viterbi, shipped as code in this folder)" if decoder else "")
        + f"; labels: {', '.join(model.labels)}.",
    ]
    if metrics and "test" in metrics:
        micro = metrics["test"]["micro"]
        lines += [
            "",
            f"Test scores of the run's selected checkpoint `{metrics.get('best_checkpoint')}` (official"
            f" JNLPBA scoring): precision {micro['precision']:.4f}, "
            f"recall {micro['recall']:.4f}, F1 {micro['f1']:.4f}.",
        ]
    lines += [
        "",
        "```python",
        "from transformers import pipeline",
        f'ner = pipeline("ner", model=DIR, tokenizer=DIR, aggregation_strategy="first"{remote})',
        'ner("Mouse thymus was used as a source of glucocorticoid receptor from normal CS lymphocytes.")',
        "```",
        "",
        "The model was trained on GENIA-tokenized words (punctuation split off, hyphenated terms whole),"
        ' labelling each word at its first subword: `aggregation_strategy="first"` reads it the same way.',
    ]
    return "\n".join(lines) + "\n"


def export(ckpt: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the Hugging Face folder for checkpoint `ckpt` into `out`; returns `out`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise NerError(f"{out} exists and is not an empty folder (pass --overwrite to replace its files)")
    model, tokenizer = load_checkpoint(ckpt)
    decoder = decoder_of(model)
    hf = remote_model(model, decoder) if decoder else standard_model(model)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if decoder:
        for name in REMOTE_FILES:
            shutil.copyfile(HF_CODE / name, out / name)
    metrics_path = Path(ckpt).resolve().parent.parent / "metrics.json"  # a run folder's own scores
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
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
