"""Entity metrics: hand-counted cases, plus a port of evalIOB2.pl and seqeval as independent references."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from ner.metrics import COUNT_NAMES, Chunk, EntityF1, count_sentence, entity_chunks, score_sentences

TYPES = ["DNA", "RNA", "cell_line", "cell_type", "protein"]


def evaliob2_reference(gold: list[str], pred: list[str]) -> dict[str, Counter]:
    """A position-by-position port of the counting loop of evalIOB2.pl (2004.10.14, Jin-Dong Kim).

    Written from the Perl, not from ner.metrics, so the two implementations check each other.
    """

    def iob2_iobes(tags: list[str]) -> list[str]:
        out = list(tags)
        for i, tag in enumerate(tags):
            next_is_i = i + 1 < len(tags) and tags[i + 1][0] == "I"
            if tag[0] == "I" and not next_is_i:
                out[i] = "E" + tag[1:]
            elif tag[0] == "B" and not next_is_i:
                out[i] = "S" + tag[1:]
        return out

    counts = {name: Counter() for name in ("tp", "n_pred", "n_gold", "left_tp", "right_tp")}
    match = False
    for rtag, atag in zip(iob2_iobes(gold), iob2_iobes(pred), strict=True):
        riob, rcls = rtag[0], rtag[2:] if rtag[1:2] == "-" else ""
        aiob, acls = atag[0], atag[2:] if atag[1:2] == "-" else ""
        if riob in "SB":
            counts["n_gold"][rcls] += 1
        if aiob in "SB":
            counts["n_pred"][acls] += 1
        if acls == rcls:
            if aiob == "S" and riob == "S":
                counts["tp"][rcls] += 1
                counts["left_tp"][rcls] += 1
                counts["right_tp"][rcls] += 1
            if (aiob, riob) in (("S", "E"), ("E", "S")):
                counts["right_tp"][rcls] += 1
            if (aiob, riob) in (("S", "B"), ("B", "S")):
                counts["left_tp"][rcls] += 1
            if aiob == "B" and riob == "B":
                counts["left_tp"][rcls] += 1
                match = True
            if aiob == "E" and riob == "E":
                counts["right_tp"][rcls] += 1
                if match:
                    counts["tp"][rcls] += 1
        if atag != rtag or aiob not in "BI":
            match = False
    return counts


def random_tags(rng: random.Random, length: int, valid: bool, types: list[str] = TYPES) -> list[str]:
    """Random tags; `valid` ones never put an I- anywhere but after a B-/I- of the same type."""
    tags: list[str] = []
    for _ in range(length):
        choice = rng.choice(["O", "B", "I"])
        entity_type = rng.choice(types[:3])  # few types, so spans and types collide often
        if valid and choice == "I":
            if not tags or tags[-1] == "O":
                choice = "O"
            else:
                entity_type = tags[-1][2:]
        tags.append("O" if choice == "O" else f"{choice}-{entity_type}")
    return tags


def random_corpus(seed: int, valid: bool, sentences: int = 300) -> tuple[list[list[str]], list[list[str]]]:
    rng = random.Random(seed)
    gold, pred = [], []
    for _ in range(sentences):
        length = rng.randint(0, 12)
        gold.append(random_tags(rng, length, valid=True))  # gold is valid BIO in real corpora
        pred.append(random_tags(rng, length, valid=valid))
    return gold, pred


def totals(counts: dict[str, list[int]], types: list[str] = TYPES) -> dict[str, dict[str, int]]:
    """`{name: {type: count}}` without zero entries, the shape the hand-written expectations use."""
    return {name: {t: n for t, n in zip(types, values, strict=True) if n} for name, values in counts.items()}


# ---- chunking ----------------------------------------------------------------------------------------------


def test_entity_chunks_follow_the_official_scorer():
    tags = ["I-DNA", "I-DNA", "O", "B-protein", "I-RNA", "B-RNA", "B-RNA", "O", "I-protein"]
    assert entity_chunks(tags) == [
        Chunk(0, 2, "DNA", begun_by_b=False),  # an I- at the sentence start opens a chunk, but no entity
        Chunk(3, 5, "protein", begun_by_b=True),  # I-RNA continues a B-protein chunk
        Chunk(5, 6, "RNA", begun_by_b=True),  # B- after B- starts a new chunk
        Chunk(6, 7, "RNA", begun_by_b=True),
        Chunk(8, 9, "protein", begun_by_b=False),  # I- after O
    ]
    assert entity_chunks([]) == []


# ---- hand-counted cases ------------------------------------------------------------------------------------

HAND_CASES = [
    pytest.param(
        # protein [0,2) matches fully; DNA starts right (left boundary) but runs one token too far
        ["B-protein", "I-protein", "O", "B-DNA", "O"],
        ["B-protein", "I-protein", "O", "B-DNA", "I-DNA"],
        {
            "tp": {"protein": 1},
            "n_pred": {"protein": 1, "DNA": 1},
            "n_gold": {"protein": 1, "DNA": 1},
            "left_tp": {"protein": 1, "DNA": 1},
            "right_tp": {"protein": 1},
            "seqeval_tp": {"protein": 1},
            "seqeval_n_pred": {"protein": 1, "DNA": 1},
            "seqeval_n_gold": {"protein": 1, "DNA": 1},
        },
        id="valid",
    ),
    pytest.param(
        # predicted I- after O: no entity (n_pred 0), but its chunk ends where the gold protein ends (right
        # boundary); seqeval's lenient mode starts an entity at that I- and counts a full match
        ["O", "B-protein", "I-protein", "O"],
        ["O", "I-protein", "I-protein", "O"],
        {
            "n_gold": {"protein": 1},
            "right_tp": {"protein": 1},
            "seqeval_tp": {"protein": 1},
            "seqeval_n_pred": {"protein": 1},
            "seqeval_n_gold": {"protein": 1},
        },
        id="I-after-O",
    ),
    pytest.param(
        # B-protein I-DNA is one protein entity over gold's DNA span: no complete or left match; the chunk
        # ends with I-DNA where the gold DNA ends, so it is a right-boundary match typed by its last tag, DNA.
        # seqeval's lenient mode splits it into protein [0,0] and DNA [1,1], neither equal to DNA [0,1]
        ["B-DNA", "I-DNA", "O"],
        ["B-protein", "I-DNA", "O"],
        {
            "n_pred": {"protein": 1},
            "n_gold": {"DNA": 1},
            "right_tp": {"DNA": 1},
            "seqeval_n_pred": {"protein": 1, "DNA": 1},
            "seqeval_n_gold": {"DNA": 1},
        },
        id="I-X-after-B-Y",
    ),
    pytest.param(
        # a sentence starting with I-: a chunk but no entity; right boundary matches the one-token gold RNA
        ["B-RNA", "O"],
        ["I-RNA", "O"],
        {
            "n_gold": {"RNA": 1},
            "right_tp": {"RNA": 1},
            "seqeval_tp": {"RNA": 1},
            "seqeval_n_pred": {"RNA": 1},
            "seqeval_n_gold": {"RNA": 1},
        },
        id="starts-with-I",
    ),
    pytest.param(
        # same span, wrong type: nothing matches under any rule
        ["B-cell_type", "I-cell_type"],
        ["B-cell_line", "I-cell_line"],
        {
            "n_pred": {"cell_line": 1},
            "n_gold": {"cell_type": 1},
            "seqeval_n_pred": {"cell_line": 1},
            "seqeval_n_gold": {"cell_type": 1},
        },
        id="same-span-wrong-type",
    ),
]


@pytest.mark.parametrize("gold, pred, expected", HAND_CASES)
def test_hand_counted_cases(gold, pred, expected):
    counts = totals(count_sentence(gold, pred, TYPES))
    assert counts == {name: expected.get(name, {}) for name in COUNT_NAMES}
    reference = evaliob2_reference(gold, pred)
    assert {name: dict(reference[name]) for name in reference} == {name: counts[name] for name in reference}


def test_multi_sentence_counts_are_sums():
    gold = [case.values[0] for case in HAND_CASES]
    pred = [case.values[1] for case in HAND_CASES]
    scores = score_sentences(gold, pred, TYPES)
    # complete match: 1 (protein, case 1); entities: predicted 2+0+1+0+1, gold 2+1+1+1+1
    assert {k: scores["micro"][k] for k in ("tp", "n_pred", "n_gold")} == {"tp": 1, "n_pred": 4, "n_gold": 6}
    assert scores["left_boundary"]["tp"] == 2  # both entities of case 1
    assert scores["right_boundary"]["tp"] == 4  # protein in case 1, then cases 2, 3 and 4
    # seqeval lenient: tp 1+1+0+1+0, predicted 2+1+2+1+1, gold 2+1+1+1+1
    assert {k: scores["seqeval_default"][k] for k in ("tp", "n_pred", "n_gold")} == {
        "tp": 3,
        "n_pred": 7,
        "n_gold": 6,
    }
    assert scores["micro"]["precision"] == pytest.approx(1 / 4)
    assert scores["micro"]["recall"] == pytest.approx(1 / 6)
    assert scores["micro"]["f1"] == pytest.approx(2 * (1 / 4) * (1 / 6) / (1 / 4 + 1 / 6))
    assert scores["per_type"]["protein"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "tp": 1, "n_pred": 2, "n_gold": 2}
    )


def test_right_boundary_precision_is_not_capped_on_invalid_predictions():
    # as in evalIOB2.pl, I-begun chunks score right-boundary matches but are not predicted entities:
    # 2 right-boundary matches over 1 predicted entity
    scores = score_sentences([["B-DNA", "O", "B-DNA"]], [["B-DNA", "O", "I-DNA"]])
    assert scores["right_boundary"]["tp"] == 2 and scores["right_boundary"]["n_pred"] == 1
    assert scores["right_boundary"]["precision"] == pytest.approx(2.0)


def test_macro_weighted_and_micro_averages():
    gold = [["B-protein", "O", "B-protein", "O", "B-protein", "O", "B-DNA"]]
    pred = [["B-protein", "O", "B-protein", "O", "O", "O", "O"]]
    # protein: tp 2, n_pred 2, n_gold 3 -> P 1, R 2/3, F1 0.8; DNA: 0 / 0 / 1 -> all 0;
    # RNA: declared but absent -> all 0
    scores = score_sentences(gold, pred, ["DNA", "RNA", "protein"])
    # micro: tp 2, n_pred 2, n_gold 4 -> P 1, R 1/2, F1 2/3
    assert scores["micro"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "tp": 2, "n_pred": 2, "n_gold": 4}
    )
    # macro: plain mean over the 3 declared types, RNA included
    assert scores["macro"] == pytest.approx({"precision": 1 / 3, "recall": 2 / 9, "f1": 0.8 / 3})
    # weighted by gold support (protein 3, DNA 1, RNA 0): P 3/4, R (3 * 2/3) / 4, F1 (3 * 0.8) / 4
    assert scores["weighted"] == pytest.approx({"precision": 0.75, "recall": 0.5, "f1": 0.6})


def test_no_entities_scores_zero_without_dividing_by_zero():
    scores = score_sentences([["O", "O"]], [["O", "O"]], ["protein"])
    assert scores["micro"]["f1"] == 0.0 and scores["macro"]["f1"] == 0.0 and scores["weighted"]["f1"] == 0.0


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="gold has 2 tags"):
        count_sentence(["O", "O"], ["O"], TYPES)
    with pytest.raises(ValueError, match="not one of the declared types"):
        count_sentence(["B-virus"], ["O"], TYPES)
    with pytest.raises(ValueError, match="is not 'O'"):
        count_sentence(["X-protein"], ["O"], TYPES)
    with pytest.raises(ValueError, match="sentences"):
        EntityF1(TYPES).update([["O"]], [])


# ---- independent references on random corpora --------------------------------------------------------------


@pytest.mark.parametrize("valid", [True, False])
def test_matches_evaliob2_port(valid):
    gold, pred = random_corpus(seed=1, valid=valid)
    for g, p in zip(gold, pred, strict=True):
        counts = totals(count_sentence(g, p, TYPES))
        reference = evaliob2_reference(g, p)
        assert {name: counts[name] for name in reference} == {
            name: dict(reference[name]) for name in reference
        }


def test_equals_seqeval_strict_on_valid_bio():
    gold, pred = random_corpus(seed=2, valid=True)
    scores = score_sentences(gold, pred, TYPES[:3])
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    assert set(report) - {"micro avg", "macro avg", "weighted avg"} == set(TYPES[:3])  # every type occurs
    for entity_type, s in scores["per_type"].items():
        expected = report[entity_type]
        assert s["n_gold"] == expected["support"]
        assert (s["precision"], s["recall"], s["f1"]) == pytest.approx(
            (expected["precision"], expected["recall"], expected["f1-score"])
        )
    for ours, theirs in (("micro", "micro avg"), ("macro", "macro avg"), ("weighted", "weighted avg")):
        assert (scores[ours]["precision"], scores[ours]["recall"], scores[ours]["f1"]) == pytest.approx(
            (report[theirs]["precision"], report[theirs]["recall"], report[theirs]["f1-score"])
        )


@pytest.mark.parametrize("valid", [True, False])
def test_seqeval_default_counts_match_seqeval(valid):
    gold, pred = random_corpus(seed=3, valid=valid)
    lenient = score_sentences(gold, pred, TYPES)["seqeval_default"]
    assert lenient["precision"] == pytest.approx(precision_score(gold, pred))
    assert lenient["recall"] == pytest.approx(recall_score(gold, pred))
    assert lenient["f1"] == pytest.approx(f1_score(gold, pred))


# ---- the torchmetrics object -------------------------------------------------------------------------------


def test_merged_halves_equal_one_pass():
    """Summed states are what DDP reduces; merging two halves must give exactly the one-process result."""
    gold, pred = random_corpus(seed=4, valid=False)
    half = len(gold) // 2
    whole, first, second = EntityF1(TYPES), EntityF1(TYPES), EntityF1(TYPES)
    for start in range(0, len(gold), 32):  # several update() calls, as in an epoch
        whole.update(gold[start : start + 32], pred[start : start + 32])
    first.update(gold[:half], pred[:half])
    second.update(gold[half:], pred[half:])
    for name in COUNT_NAMES:
        assert torch.equal(getattr(first, name) + getattr(second, name), getattr(whole, name))
    first.merge_state(second)
    assert first.compute() == whole.compute()
    assert whole.compute() == score_sentences(gold, pred, TYPES)


def test_state_shape_order_and_reset():
    metric = EntityF1(["protein", "DNA", "protein"])  # order and duplicates do not matter
    assert metric.types == ["DNA", "protein"]
    metric.update([["B-protein", "B-DNA"]], [["B-protein", "O"]])
    assert metric.tp.tolist() == [0, 1] and metric.n_gold.tolist() == [1, 1] and metric.tp.dtype == torch.long
    assert isinstance(metric.compute()["micro"]["f1"], float)
    metric.reset()
    assert metric.n_gold.tolist() == [0, 0]
