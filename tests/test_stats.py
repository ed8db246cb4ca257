"""Seed summaries and the paired significance tests, on constructed inputs with known answers."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from ner.data.reader import Sentence
from ner.metrics import score_sentences
from ner.study.stats import document_counts, f1, paired_test, summarize

TYPES = ["DNA", "protein"]


def counts(rows: list[tuple[int, int, int]], types: int = 1) -> np.ndarray:
    """(docs, 3, types) from one (tp, n_pred, n_gold) per document, all on the first type."""
    out = np.zeros((len(rows), 3, types), dtype=np.int64)
    for d, row in enumerate(rows):
        out[d, :, 0] = row
    return out


def test_summarize_matches_the_statistics_module():
    values = [0.71, 0.74, 0.725]
    s = summarize(values)
    assert s["mean"] == pytest.approx(statistics.mean(values))
    assert s["std"] == pytest.approx(statistics.stdev(values))  # sample std (n - 1)
    assert (s["min"], s["max"], s["n"], s["values"]) == (0.71, 0.74, 3, values)
    assert summarize([0.5])["std"] == 0.0


def test_f1_from_counts_matches_the_scorer():
    gold = [["B-DNA", "I-DNA", "O", "B-protein"], ["B-protein", "O"]]
    pred = [["B-DNA", "I-DNA", "O", "O"], ["B-protein", "B-DNA"]]
    sentences = [
        Sentence(tuple("abcd"[: len(g)]), tuple(g), f"d{i}", (), tuple(p))
        for i, (g, p) in enumerate(zip(gold, pred, strict=True))
    ]
    docs, c = document_counts(sentences, TYPES)
    assert docs == ["d0", "d1"] and c.shape == (2, 3, 2)
    scores = score_sentences(gold, pred, TYPES)
    assert f1(c.sum(0)) == pytest.approx(scores["micro"]["f1"])
    assert f1(c.sum(0), "macro") == pytest.approx(scores["macro"]["f1"])


def test_sentences_without_documents_are_their_own_units():
    s = [Sentence(("x",), ("B-DNA",), None, (), ("B-DNA",)), Sentence(("y",), ("O",), None, (), ("O",))]
    docs, c = document_counts(s, TYPES)
    assert docs == ["sentence0", "sentence1"] and c[:, 0].sum() == 1


def test_identical_arms_are_not_different():
    rng = np.random.default_rng(1)
    tp = rng.integers(0, 10, 50)
    a = counts([(t, t + rng.integers(0, 5), t + rng.integers(0, 5)) for t in tp])
    result = paired_test(a, a.copy(), resamples=2000)
    assert result["difference"] == 0.0
    assert result["p_bootstrap"] == pytest.approx(1.0) and result["p_randomization"] == pytest.approx(1.0)
    assert result["ci_low"] == result["ci_high"] == 0.0


def test_a_clearly_better_arm_is_significant():
    # 60 abstracts with 10 entities each: arm b finds 9, arm a 5 (and predicts as many)
    a = counts([(5, 10, 10)] * 60)
    b = counts([(9, 10, 10)] * 60)
    result = paired_test(a, b, resamples=2000)
    assert result["difference"] == pytest.approx(0.4)
    assert result["p_bootstrap"] < 0.01 and result["p_randomization"] < 0.01
    assert 0 < result["ci_low"] <= 0.4 <= result["ci_high"]
    reverse = paired_test(b, a, resamples=2000)  # the direction flips, the evidence does not
    assert reverse["difference"] == pytest.approx(-0.4) and reverse["ci_high"] < 0


def test_a_small_noisy_difference_is_not_significant():
    rng = np.random.default_rng(0)
    a_rows, b_rows = [], []
    for _ in range(40):  # the same true skill, per-abstract noise
        a_tp, b_tp = rng.binomial(10, 0.7), rng.binomial(10, 0.7)
        a_rows.append((a_tp, 10, 10))
        b_rows.append((b_tp, 10, 10))
    result = paired_test(counts(a_rows), counts(b_rows), resamples=2000)
    assert result["p_bootstrap"] > 0.05 and result["p_randomization"] > 0.05
    assert result["ci_low"] < 0 < result["ci_high"]


def test_pairs_must_cover_the_same_documents():
    with pytest.raises(ValueError, match="same documents"):
        paired_test(counts([(1, 1, 1)]), counts([(1, 1, 1), (0, 1, 1)]))


def test_a_repeated_document_id_is_still_two_abstracts():
    def sentence(doc: str) -> Sentence:
        return Sentence(("x",), ("B-DNA",), doc, (), ("B-DNA",))

    docs, c = document_counts([sentence("7"), sentence("7"), sentence("8"), sentence("7")], TYPES)
    assert docs == ["7", "8", "7"] and c[:, 0, 0].tolist() == [2, 1, 1]
