"""Encoders beyond BERT: a tiny random RoBERTa (byte-level BPE trained here on the sample) trains, predicts
and exports offline.

Byte-level BPE marks a word start by its leading space, which pre-split words lack: without
`add_prefix_space=True` every word is tokenized as if it were inside another (and older transformers
refuse pre-split words outright).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    RobertaConfig,
    RobertaModel,
    RobertaTokenizerFast,
)

from ner.data.reader import read_iob2
from ner.data.windows import special_tokens, word_pieces
from ner.encoders import load_tokenizer
from ner.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "ner" / "data" / "sample"
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def sample_sentences() -> list[tuple[str, ...]]:
    return [s.tokens for name in ("train", "test") for s in read_iob2(SAMPLE / f"{name}.iob2").sentences]


@pytest.fixture(scope="module")
def roberta(tmp_path_factory) -> Path:
    """A RoBERTa folder as the hub ships one: tokenizer files (no add_prefix_space) and random weights."""
    folder = tmp_path_factory.mktemp("tiny-roberta")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        (" ".join(s) for s in sample_sentences()), vocab_size=1000, special_tokens=specials
    )
    names = ("bos_token", "pad_token", "eos_token", "unk_token", "mask_token")
    tokens = dict(zip(names, specials, strict=True))
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer, cls_token="<s>", sep_token="</s>", **tokens
    )
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def test_pre_split_words_tokenize_as_running_text(roberta):
    tokenizer = load_tokenizer(str(roberta))
    assert special_tokens(tokenizer) == ([tokenizer.bos_token_id], [tokenizer.eos_token_id])  # <s> ... </s>
    sentences = sample_sentences()
    running = tokenizer([" ".join(s) for s in sentences], add_special_tokens=False)["input_ids"]
    pieces = word_pieces(tokenizer, sentences)
    assert [[i for word in s for i in word] for s in pieces] == running
    # not vacuous: the folder's tokenizer as saved splits words differently
    plain = AutoTokenizer.from_pretrained(roberta)
    assert word_pieces(plain, sentences) != pieces


def exported_tags(folder: Path, sentences: list[tuple[str, ...]]) -> list[list[str]]:
    """Tags from the exported folder alone: its tokenizer, its model, each word's first subword."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, trust_remote_code=True).eval()
    tags = []
    for words in sentences:
        encoding = tokenizer(list(words), is_split_into_words=True, return_tensors="pt")
        word_ids = encoding.word_ids()
        first = [word_ids.index(w) for w in range(len(words))]
        with torch.no_grad():
            emissions = model(**encoding).logits[:, first]  # (1, words, labels)
        if hasattr(model, "decode"):  # exported with its head's decoder (remote code)
            path = model.decode(emissions, torch.ones(emissions.shape[:2], dtype=torch.bool))[0][0]
        else:  # a standard token classifier: argmax
            path = emissions[0].argmax(-1).tolist()
        tags.append([model.config.id2label[i] for i in path])
    return tags


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_roberta_trains_predicts_and_exports_offline(roberta, tmp_path, head):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "experiments/run.py",
        "experiment=quickstart",
        f"head={head}",
        f"model.encoder={roberta}",
        "trainer.max_epochs=1",
        "progress_bar=false",
        f"hydra.run.dir={run}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    checkpoint = run / "checkpoints" / metrics["best_checkpoint"]

    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    written = read_iob2(run / "predictions" / "test.iob2", with_predictions=True).sentences
    assert predictor.predict([list(s.tokens) for s in written]) == [list(s.predicted) for s in written]

    out = tmp_path / f"export-{head}"  # remote code is imported by folder name: one name per model
    export = [sys.executable, "-m", "ner", "export", "--ckpt", str(checkpoint), "--out", str(out)]
    result = subprocess.run(export, cwd=ROOT, capture_output=True, text=True, env=OFFLINE)
    assert result.returncode == 0, result.stderr[-3000:]
    tokenizer = predictor.tokenizer
    # sentences the predictor sees in one window (the exported model sees whole sentences)
    sentences = [
        s.tokens
        for s in written
        if len(tokenizer(list(s.tokens), is_split_into_words=True)["input_ids"]) <= 128
    ]
    assert len(sentences) >= 20
    assert exported_tags(out, sentences) == [list(t.tags) for t in predictor.tag(sentences)]
