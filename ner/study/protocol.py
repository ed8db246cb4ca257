"""The model card's evaluation protocol, rebuilt as a re-scoring of per-epoch predictions, and its inflation.

The card (SciBERT + softmax, 0.7490 entity F1 on JNLPBA) differs from an honest evaluation in four ways:
1. its epoch was selected on the TEST set;
2. sentences were truncated at 128 subwords, and the words cut off vanished from gold and prediction alike
   (here: a word whose first subword falls past `max_length - 2`, the special tokens' room, is dropped);
3. it scored with seqeval's lenient default mode, not the shared task's official rules;
4. its "macro avg" is the support-weighted average (its unweighted macro F1 is 0.722).
Given the test predictions of every epoch, each factor is switched on in turn (a ladder from the honest
number to the card's) and on its own, so the gap can be attributed. Every output says it is the card's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

from transformers import PreTrainedTokenizerBase

from ner.data.windows import special_tokens, word_pieces
from ner.metrics import COUNT_NAMES, EntityF1, scores_from_counts

CARD_MAX_LENGTH = 128
CARD_LABEL = (
    "MODEL CARD PROTOCOL (not comparable with honest numbers): epoch selected on the TEST set, "
    "words past 128 subwords dropped from gold and prediction, seqeval's lenient default mode, "
    "'macro avg' = support-weighted average"
)
# (label, epoch selected on, variant): each step adds one of the card's choices to the one before.
LADDER = (
    ("honest: dev-selected epoch, official rules, whole sentences", "dev", "official_full"),
    ("+ epoch selected on test", "test", "official_full"),
    ("+ words past 128 subwords dropped", "test", "official_truncated"),
    ("+ seqeval lenient mode (= the card's micro F1)", "test", "seqeval_truncated"),
)
ALONE = (
    ("epoch selected on test", "test", "official_full"),
    ("words past 128 subwords dropped", "dev", "official_truncated"),
    ("seqeval lenient mode", "dev", "seqeval_full"),
)

Tags = Sequence[Sequence[str]]


def kept_words(
    tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]], max_length: int
) -> list[int]:
    """How many leading words of each sentence survive truncation at `max_length` subwords.

    A word is kept when its first subword fits in the `max_length` budget left by the special tokens."""
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    kept = []
    for pieces in word_pieces(tokenizer, sentences):
        offset, n = 0, 0
        for word in pieces:
            if offset >= budget:
                break
            offset, n = offset + len(word), n + 1
        kept.append(n)
    return kept


def variant_scores(gold: Tags, pred: Tags, kept: Sequence[int], types: Sequence[str]) -> dict[str, dict]:
    """The four variants (official|seqeval x full|truncated) of one epoch's test predictions."""
    truncated = (
        [g[:k] for g, k in zip(gold, kept, strict=True)],
        [p[:k] for p, k in zip(pred, kept, strict=True)],
    )
    scores = {}
    for length, (g, p) in (("full", (gold, pred)), ("truncated", truncated)):
        metric = EntityF1(types)
        metric.update(g, p)
        official = {name: getattr(metric, name).tolist() for name in COUNT_NAMES}
        seqeval = {**official, **{name: official[f"seqeval_{name}"] for name in ("tp", "n_pred", "n_gold")}}
        for scorer, counts in (("official", official), ("seqeval", seqeval)):
            scores[f"{scorer}_{length}"] = scores_from_counts(metric.types, counts)
    return scores


def summary(scores: dict) -> dict[str, float]:
    """One variant's row of the ladder: micro P / R / F1, macro F1 and support-weighted F1."""
    micro = {key: scores["micro"][key] for key in ("f1", "precision", "recall")}
    return {**micro, "macro_f1": scores["macro"]["f1"], "weighted_f1": scores["weighted"]["f1"]}


def card_protocol(
    gold: Tags, test_by_epoch: Mapping[int, Tags], dev_epoch: int, kept: Sequence[int], types: Sequence[str]
) -> dict:
    """The card's numbers for one run, its honest ones, and the ladder between them.

    `gold`: test gold tags; `test_by_epoch`: `{epoch: predicted test tags}` (every epoch the run kept);
    `dev_epoch`: the epoch the honest protocol selects on dev; `kept`: words per sentence left after
    truncation.
    """
    if dev_epoch not in test_by_epoch:
        raise ValueError(
            f"the dev-selected epoch {dev_epoch} is not among the epochs {sorted(test_by_epoch)}"
        )
    by_epoch = {e: variant_scores(gold, pred, kept, types) for e, pred in sorted(test_by_epoch.items())}

    def step(label: str, selected_on: str, variant: str) -> dict:
        # on test: the highest micro F1 under `variant`, the earliest on ties (like ModelCheckpoint)
        best = max(by_epoch, key=lambda e: by_epoch[e][variant]["micro"]["f1"])
        epoch = dev_epoch if selected_on == "dev" else best
        return {
            "step": label,
            "epoch": epoch,
            "selected_on": selected_on,
            "scoring": variant,
            **summary(by_epoch[epoch][variant]),
        }

    ladder = [step(*spec) for spec in LADDER]
    for previous, current in pairwise(ladder):
        current["delta_f1"] = current["f1"] - previous["f1"]
    alone = [step(*spec) for spec in ALONE]
    for row in alone:
        row["delta_f1"] = row["f1"] - ladder[0]["f1"]
    card_epoch = ladder[-1]["epoch"]
    card, honest = by_epoch[card_epoch]["seqeval_truncated"], by_epoch[dev_epoch]["official_full"]
    words = sum(len(g) for g in gold)
    return {
        "protocol": "card",
        "label": CARD_LABEL,
        "truncation": {
            "max_subwords": CARD_MAX_LENGTH,
            "sentences_cut": sum(k < len(g) for g, k in zip(gold, kept, strict=True)),
            "words_dropped": words - sum(kept),
            "words": words,
        },
        "selected_epoch": card_epoch,
        "selection": "highest TEST micro F1 (seqeval default mode, truncated sentences), as the card did",
        "card": {
            "micro": card["micro"],
            "macro_avg_as_reported": card["weighted"],  # what the card printed as "macro avg"
            "true_macro": card["macro"],
            "per_type": card["per_type"],
        },
        "honest": {"epoch": dev_epoch, **honest},
        "inflation": {
            "micro_f1": card["micro"]["f1"] - honest["micro"]["f1"],
            "reported_macro_vs_honest_macro_f1": card["weighted"]["f1"] - honest["macro"]["f1"],
        },
        "ladder": ladder,
        "alone": alone,
        "epochs": {str(e): {v: summary(s) for v, s in scores.items()} for e, scores in by_epoch.items()},
    }
