"""Entity-level precision, recall and F1 as the JNLPBA 2004 shared task scores them (evalIOB2.pl),
plus seqeval's lenient (conlleval-like) counts, as a torchmetrics `Metric` of summed integer counts.

Why not call seqeval directly: a softmax head can emit invalid BIO (`O I-DNA`, `B-DNA I-RNA`), and the
official scorer handles those in its own way (an `I-` never starts an entity, but its chunk can still match
a right boundary). And because every state is a count summed over sentences, one GPU and eight GPUs give
exactly the same numbers: `dist_reduce_fx="sum"` is all DDP needs.

Rules, per sentence, identical to evalIOB2.pl's counting loop for any tag sequences (the tests port it):
- A chunk starts at `B-`, or at an `I-` after `O` / the sentence start, and runs over every following `I-`,
  whatever its type. Only chunks begun by `B-` are entities (counted in n_pred / n_gold, typed by that `B-`).
- Complete match: a predicted entity with a gold entity's span and the same tag at every position.
- Left boundary: a predicted entity starts where a gold entity of the same type starts.
- Right boundary: a predicted chunk (even one begun by `I-`) ends where a gold chunk ends, with the same
  type on the last tag. Since `I-`-begun chunks count here but not in n_pred, right-boundary precision can
  exceed 1 on invalid predictions, exactly as in the official script.
- Complete and right-boundary matches are attributed to the type of the chunk's last tag, as the Perl
  script does; on valid gold that is the entity's type.
On valid BIO the complete-match counts equal seqeval's strict IOB2 mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from seqeval.metrics.sequence_labeling import get_entities
from torchmetrics import Metric

from ner.tags import Chunk, entity_chunks, split_tag, types_of

# One summed count per (name, type); EntityF1 keeps one state tensor per name.
COUNT_NAMES = (
    "tp",  # complete matches
    "n_pred",  # predicted entities (chunks begun by B-)
    "n_gold",  # gold entities
    "left_tp",  # left-boundary matches
    "right_tp",  # right-boundary matches
    "seqeval_tp",  # seqeval default mode: shared (type, start, end) entities
    "seqeval_n_pred",
    "seqeval_n_gold",
)


def count_sentence(gold: Sequence[str], pred: Sequence[str], types: Sequence[str]) -> dict[str, list[int]]:
    """Counts for one sentence: `{name: [count per type]}` for each name in COUNT_NAMES, in `types` order.

    Raises ValueError on different lengths, malformed tags, or a type not in `types`.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} tags but prediction has {len(pred)}")
    index = {t: k for k, t in enumerate(types)}
    for tag in (*gold, *pred):
        entity_type = split_tag(tag)[1]
        if entity_type is not None and entity_type not in index:
            raise ValueError(
                f"tag {tag!r} has type {entity_type!r}, not one of the declared types {list(types)}"
            )
    counts = {name: [0] * len(types) for name in COUNT_NAMES}

    def last_type(tags: Sequence[str], chunk: Chunk) -> str:
        return split_tag(tags[chunk.end - 1])[1]

    gold_chunks, pred_chunks = entity_chunks(gold), entity_chunks(pred)
    gold_spans = {(c.start, c.end) for c in gold_chunks if c.begun_by_b}
    gold_starts = {c.start: c.type for c in gold_chunks if c.begun_by_b}
    gold_ends = {c.end: last_type(gold, c) for c in gold_chunks}  # every chunk, as the Perl E/S tags do
    for c in gold_chunks:
        if c.begun_by_b:
            counts["n_gold"][index[c.type]] += 1
    for c in pred_chunks:
        end_type = last_type(pred, c)
        if gold_ends.get(c.end) == end_type:
            counts["right_tp"][index[end_type]] += 1
        if not c.begun_by_b:
            continue
        counts["n_pred"][index[c.type]] += 1
        if gold_starts.get(c.start) == c.type:
            counts["left_tp"][index[c.type]] += 1
        if (c.start, c.end) in gold_spans and list(gold[c.start : c.end]) == list(pred[c.start : c.end]):
            counts["tp"][index[end_type]] += 1

    # seqeval default mode: entities are (type, first, last) triples; per-sentence sets sum exactly to what
    # seqeval computes over the flattened corpus, because it separates sentences with an `O`.
    gold_entities, pred_entities = set(get_entities(list(gold))), set(get_entities(list(pred)))
    for name, entities in (
        ("seqeval_n_gold", gold_entities),
        ("seqeval_n_pred", pred_entities),
        ("seqeval_tp", gold_entities & pred_entities),
    ):
        for entity_type, _, _ in entities:
            counts[name][index[entity_type]] += 1
    return counts


def prf(tp: int, n_pred: int, n_gold: int) -> dict[str, float | int]:
    """Precision, recall, F1 (fractions) and the counts; 0 where a ratio is undefined, as in evalIOB2.pl."""
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def scores_from_counts(types: Sequence[str], counts: Mapping[str, Sequence[int]]) -> dict:
    """The JSON-ready score dict from per-type counts (`{name: [count per type]}`, names from COUNT_NAMES).

    `macro` is the unweighted mean over the declared types (absent types count as 0); `weighted` weights each
    type by its gold support, which is what the model card called "macro avg".
    """
    total = {name: int(sum(counts[name])) for name in COUNT_NAMES}
    per_type = {
        t: prf(int(counts["tp"][k]), int(counts["n_pred"][k]), int(counts["n_gold"][k]))
        for k, t in enumerate(types)
    }
    metrics = ("precision", "recall", "f1")
    support = total["n_gold"]
    macro = {m: sum(s[m] for s in per_type.values()) / len(types) if types else 0.0 for m in metrics}
    weighted = {
        m: sum(s[m] * s["n_gold"] for s in per_type.values()) / support if support else 0.0 for m in metrics
    }
    return {
        "micro": prf(total["tp"], total["n_pred"], total["n_gold"]),
        "macro": macro,
        "weighted": weighted,
        "per_type": per_type,
        "left_boundary": prf(total["left_tp"], total["n_pred"], total["n_gold"]),
        "right_boundary": prf(total["right_tp"], total["n_pred"], total["n_gold"]),
        "seqeval_default": prf(total["seqeval_tp"], total["seqeval_n_pred"], total["seqeval_n_gold"]),
    }


class EntityF1(Metric):
    """Entity-level scores over an epoch; `update` takes string tags, `compute` returns `scores_from_counts`.

    Every state is a `(num_types,)` integer count tensor reduced by sum, so distributed results are exact.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, types: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.types = sorted(set(types))  # fixed order, whatever order the caller used
        for name in COUNT_NAMES:
            self.add_state(name, default=torch.zeros(len(self.types), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
        """Add a batch of sentences: `gold[i]` and `pred[i]` are the tag strings of sentence i."""
        if len(gold) != len(pred):
            raise ValueError(f"got {len(gold)} gold sentences but {len(pred)} predicted ones")
        counts = [count_sentence(g, p, self.types) for g, p in zip(gold, pred, strict=True)]
        for name in COUNT_NAMES:
            state = getattr(self, name)  # (types,)
            batch = torch.tensor([c[name] for c in counts], dtype=torch.long)  # (sentences, types)
            setattr(self, name, state + batch.view(len(counts), len(self.types)).sum(dim=0).to(state.device))

    def compute(self) -> dict:
        return scores_from_counts(self.types, {name: getattr(self, name).tolist() for name in COUNT_NAMES})


def score_sentences(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str] | None = None
) -> dict:
    """Score whole corpora in one call; `types=None` takes the types named by any gold or predicted tag."""
    if types is None:
        types = types_of(tag for sentence in (*gold, *pred) for tag in sentence)
    metric = EntityF1(types)
    metric.update(gold, pred)
    return metric.compute()
