"""Error analysis of a finished run: why entities are missed, cut wrong or typed wrong.

Everything starts from a run folder's outputs (`metrics.json`, `predictions/test.iob2`, `config.yaml`)
and reads entities the way the official JNLPBA scorer does (`ner.tags.entity_chunks`: entities are
chunks begun by `B-`; an `I-` continues any open chunk), so the counts here add up to the scores in
`metrics.json`. Every gold and every predicted entity gets one outcome:

- `correct`: a predicted entity with a gold entity's span and the same tags (the official complete match);
- `wrong_type`: the same span, other tags;
- `boundary` / `boundary_wrong_type`: overlapping entities with different spans, of the same or another
  type; `boundary` says which one is off, in the scorer's sense: `left` (start differs, end right),
  `right` (start right, end differs) or `both`;
- `missed` (a gold entity no prediction overlaps) and `spurious` (a prediction no gold entity overlaps).

Results come back as `ner.tables.Table`s, which show themselves in Jupyter (HTML) and in the terminal (rich).
Comparing runs and drawing are in `ner.analysis.compare`; corpus statistics in `ner.analysis.corpus`.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ner.data.reader import Sentence
from ner.data.windows import word_pieces
from ner.encoders import load_tokenizer, resolve_encoder
from ner.evaluation.run_folder import RunFolder
from ner.metrics import prf
from ner.tables import Table
from ner.tags import entity_chunks, repair_bio

OUTCOMES = ("correct", "wrong_type", "boundary", "boundary_wrong_type", "missed", "spurious")
SIDES = ("left", "right", "both")


# ---------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run(RunFolder):
    """A run folder with one split's predicted sentences (each with `.predicted`)."""

    sentences: list[Sentence] = field(default_factory=list)
    split: str = "test"

    @property
    def label(self) -> str:
        """How tables and plots name the run: its folder and head."""
        return f"{self.name} ({self.head})"


def load_run(path: str | Path, split: str = "test") -> Run:
    """A finished run (`metrics.json` present) with its `split` predictions (`test` or `dev`)."""
    folder = RunFolder(path)
    folder.metrics  # noqa: B018 - a NerError unless the run finished
    return Run(folder.path, folder.predictions(split), split)


def training_sentences(run: RunFolder) -> list[Sentence]:
    """The sentences the run trained on (its training file minus its dev split), as its data module reads."""
    return run.datamodule().sentences["train"]


def run_tokenizer(run: RunFolder) -> PreTrainedTokenizerBase:
    """The run's tokenizer: the one saved in its last checkpoint (offline), else its encoder's."""
    checkpoint = run.checkpoints_dir / "last.ckpt"
    if checkpoint.is_file():
        files = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get(
            "tokenizer_files"
        )
        if files:
            from ner.inference.predictor import tokenizer_from_files  # here: it imports Lightning

            return tokenizer_from_files(files)
    return load_tokenizer(resolve_encoder(run.config.model.encoder))


# ------------------------------------------------------------------------------------------ entities


@dataclass(frozen=True)
class Span:
    """An entity in one sentence: words `[start, end)` of type `type`."""

    start: int
    end: int
    type: str

    def overlap(self, other: Span) -> int:
        return min(self.end, other.end) - max(self.start, other.start)


@dataclass(frozen=True)
class Outcome:
    """What happened to one gold (`side="gold"`) or predicted (`side="pred"`) entity; `partner` is the
    entity on the other side it was judged against (the best-overlapping one)."""

    sentence: int
    side: str
    span: Span
    category: str
    boundary: str | None = None  # left / right / both, for boundary errors
    partner: Span | None = None


def entities(tags: Sequence[str]) -> list[Span]:
    """Entities of one tag sequence, as the official scorer counts them (chunks begun by `B-`)."""
    return [Span(c.start, c.end, c.type) for c in entity_chunks(tags) if c.begun_by_b]


def classify_sentence(index: int, gold: Sequence[str], pred: Sequence[str]) -> list[Outcome]:
    """Outcomes of every gold entity, then every predicted entity, of one sentence."""
    sides = {"gold": (entities(gold), entities(pred)), "pred": (entities(pred), entities(gold))}
    outcomes = []
    for side, (mine, theirs) in sides.items():
        exact = {(e.start, e.end): e for e in theirs}
        for entity in mine:
            partner = exact.get((entity.start, entity.end))
            if partner is not None:
                same = list(gold[entity.start : entity.end]) == list(pred[entity.start : entity.end])
                outcomes.append(
                    Outcome(index, side, entity, "correct" if same else "wrong_type", None, partner)
                )
                continue
            overlapping = [o for o in theirs if entity.overlap(o) > 0]
            if not overlapping:
                outcomes.append(Outcome(index, side, entity, "missed" if side == "gold" else "spurious"))
                continue
            # the most overlap; ties to the same type, then to the leftmost
            partner = max(overlapping, key=lambda o: (entity.overlap(o), o.type == entity.type, -o.start))
            left, right = entity.start != partner.start, entity.end != partner.end
            where = "both" if left and right else "left" if left else "right"
            category = "boundary" if partner.type == entity.type else "boundary_wrong_type"
            outcomes.append(Outcome(index, side, entity, category, where, partner))
    return outcomes


def classify_entities(sentences: Sequence[Sentence]) -> list[Outcome]:
    """Outcomes of every gold and predicted entity of predicted sentences (`Sentence.predicted` set)."""
    return [o for i, s in enumerate(sentences) for o in classify_sentence(i, s.tags, _predicted(s))]


def _predicted(sentence: Sentence) -> tuple[str, ...]:
    if sentence.predicted is None:
        raise ValueError(f"sentence at line {sentence.lines[:1]} has no predicted tags")
    return sentence.predicted


def _totals(counts: Counter) -> dict[str, int]:
    """Entities per side (`gold`, `pred`) of `(side, category)` counts."""
    return {side: sum(counts[(side, category)] for category in OUTCOMES) for side in ("gold", "pred")}


def outcome_table(outcomes: Iterable[Outcome]) -> Table:
    """How many gold entities (recall side) and predicted entities (precision side) get each outcome."""
    counts = Counter((o.side, o.category) for o in outcomes)
    totals = _totals(counts)
    rows = [
        {
            "outcome": category,
            "gold": counts[("gold", category)],
            "share of gold": counts[("gold", category)] / max(totals["gold"], 1),
            "predicted": counts[("pred", category)],
            "share of predicted": counts[("pred", category)] / max(totals["pred"], 1),
        }
        for category in OUTCOMES
    ]
    rows.append({"outcome": "total", "gold": totals["gold"], "predicted": totals["pred"]})
    return Table("Outcome of every entity", rows)


def boundary_table(outcomes: Iterable[Outcome]) -> Table:
    """Boundary errors of gold entities by side (left / right / both), with the right or a wrong type."""
    counts = Counter((o.boundary, o.category) for o in outcomes if o.side == "gold" and o.boundary)
    rows = [
        {
            "side": side,
            "same type": counts[(side, "boundary")],
            "wrong type": counts[(side, "boundary_wrong_type")],
        }
        for side in SIDES
    ]
    return Table("Boundary errors of gold entities", rows)


def outcomes_by_type(outcomes: Iterable[Outcome]) -> Table:
    """Outcomes of gold entities per entity type."""
    counts = Counter((o.span.type, o.category) for o in outcomes if o.side == "gold")
    types = sorted({t for t, _ in counts})
    categories = [c for c in OUTCOMES if c != "spurious"]
    rows = [{"type": t, **{c: counts[(t, c)] for c in categories}} for t in types]
    return Table("Outcome of gold entities by type", rows)


def type_confusion(sentences: Sequence[Sentence]) -> Table:
    """Gold type (rows) against predicted type (columns) over every pair of overlapping entities;
    `(none)` collects gold entities nothing overlaps (missed) and predictions that overlap no gold entity."""
    counts: Counter = Counter()
    types: set[str] = set()
    for sentence in sentences:
        gold, pred = entities(sentence.tags), entities(_predicted(sentence))
        types.update(e.type for e in (*gold, *pred))
        for g in gold:
            hits = [p for p in pred if g.overlap(p) > 0]
            counts.update((g.type, p.type) for p in hits)
            if not hits:
                counts[(g.type, "(none)")] += 1
        for p in pred:
            if not any(g.overlap(p) > 0 for g in gold):
                counts[("(none)", p.type)] += 1
    names = [*sorted(types), "(none)"]
    rows = [{"gold \\ predicted": g, **{p: counts[(g, p)] for p in names}} for g in names]
    return Table("Type confusion over overlapping entities", rows)


# ------------------------------------------------------------------------------------------ buckets


def f1_by(
    sentences: Sequence[Sentence], key: Callable[[int, Span], str], title: str, order: Sequence[str]
) -> Table:
    """Official precision / recall / F1 per bucket; `key(sentence_index, entity)` names an entity's bucket.

    Gold entities count towards recall and predictions towards precision in their own bucket; a correct
    prediction has its gold entity's span, so both land in the same bucket.
    """
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for i, sentence in enumerate(sentences):
        for outcome in classify_sentence(i, sentence.tags, _predicted(sentence)):
            bucket = key(i, outcome.span)
            if outcome.side == "gold":
                n_gold[bucket] += 1
            else:
                n_pred[bucket] += 1
                tp[bucket] += outcome.category == "correct"
    rows = [{"bucket": b, **prf(tp[b], n_pred[b], n_gold[b])} for b in order if n_gold[b] or n_pred[b]]
    return Table(title, rows)


def _labels(edges: Sequence[int]) -> list[str]:
    """`edges=(10, 20)` -> `["<=10", "11-20", ">20"]`, the buckets of integers."""
    return [
        f"<={edges[0]}",
        *(f"{a + 1}-{b}" for a, b in zip(edges, edges[1:], strict=False)),
        f">{edges[-1]}",
    ]


def f1_by_sentence_length(
    sentences: Sequence[Sentence], edges: Sequence[int] = (10, 20, 30, 40, 60)
) -> Table:
    """F1 by sentence length in words."""
    labels = _labels(edges)

    def key(i: int, span: Span) -> str:
        return labels[bisect.bisect_left(edges, len(sentences[i]))]

    return f1_by(sentences, key, "F1 by sentence length (words)", labels)


def f1_by_entity_length(sentences: Sequence[Sentence], longest: int = 5) -> Table:
    """F1 by entity length in words (`longest` and more pooled)."""

    def key(i: int, span: Span) -> str:
        words = span.end - span.start
        return f"{longest}+" if words >= longest else str(words)

    order = [*map(str, range(1, longest)), f"{longest}+"]
    return f1_by(sentences, key, "F1 by entity length (words)", order)


def subword_counts(sentences: Sequence[Sentence], tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Subwords of every word, `[sentence][word]`, as training tokenizes them."""
    return [[len(p) for p in pieces] for pieces in word_pieces(tokenizer, [s.tokens for s in sentences])]


FRAGMENTATION = ((1.0, "1"), (1.5, "1-1.5"), (2.0, "1.5-2"), (3.0, "2-3"), (float("inf"), ">3"))


def f1_by_fragmentation(sentences: Sequence[Sentence], counts: Sequence[Sequence[int]]) -> Table:
    """F1 by how finely the tokenizer cuts an entity: its mean subwords per word (`counts` from
    `subword_counts`)."""

    def key(i: int, span: Span) -> str:
        mean = sum(counts[i][span.start : span.end]) / (span.end - span.start)
        return next(name for edge, name in FRAGMENTATION if mean <= edge)

    return f1_by(sentences, key, "F1 by subwords per word of the entity", [n for _, n in FRAGMENTATION])


def entity_strings(sentences: Iterable[Sentence]) -> set[str]:
    """The surface strings (words joined by spaces) of every gold entity."""
    return {" ".join(s.tokens[e.start : e.end]) for s in sentences for e in entities(s.tags)}


def f1_seen_unseen(sentences: Sequence[Sentence], training: Iterable[Sentence]) -> Table:
    """F1 for entities whose exact string is a gold entity of the training sentences vs. new strings."""
    seen = entity_strings(training)

    def key(i: int, span: Span) -> str:
        return "seen" if " ".join(sentences[i].tokens[span.start : span.end]) in seen else "unseen"

    return f1_by(sentences, key, "F1 for entity strings seen / unseen in training", ["seen", "unseen"])


# ------------------------------------------------------------------------------------- invalid BIO


@dataclass(frozen=True)
class Transition:
    """A predicted `I-` tag that cannot continue what precedes it (`previous` is None at sentence start)."""

    sentence: int
    position: int
    previous: str | None
    tag: str

    @property
    def pattern(self) -> str:
        if self.previous in (None, "O"):
            return f"{self.previous or 'start'} -> I-X"
        return f"{self.previous[0]}-X -> I-Y"  # B-X or I-X before I-Y


def invalid_transitions(sentences: Sequence[Sentence]) -> list[Transition]:
    """Every predicted `I-X` not preceded by `B-X` or `I-X` (the tags `repair_bio` would change)."""
    return [
        Transition(i, k, s.predicted[k - 1] if k else None, s.predicted[k])
        for i, s in enumerate(sentences)
        for k in repair_bio(_predicted(s))[1]
    ]


def invalid_transition_table(sentences: Sequence[Sentence]) -> Table:
    """Invalid BIO transitions in the predictions, by pattern, with the sentences they occur in."""
    found = invalid_transitions(sentences)
    by_pattern = defaultdict(list)
    for transition in found:
        by_pattern[transition.pattern].append(transition)

    def row(pattern: str, transitions: list[Transition], examples: str) -> dict:
        count = {"count": len(transitions), "sentences": len({t.sentence for t in transitions})}
        return {"pattern": pattern, **count, "examples": examples}

    rows = [
        row(p, ts, ", ".join(f"{t.previous or '<start>'} {t.tag}" for t in ts[:3]))
        for p, ts in sorted(by_pattern.items())
    ]
    rows.append(row("total", found, f"of {sum(len(s) for s in sentences)} predicted tags"))
    return Table("Invalid BIO transitions emitted", rows)


def score_check(run: Run, outcomes: Iterable[Outcome]) -> Table:
    """Micro scores recounted from the outcomes next to those in `metrics.json` (they must agree)."""
    counts = Counter((o.side, o.category) for o in outcomes)
    totals = _totals(counts)
    recount = prf(counts[("pred", "correct")], totals["pred"], totals["gold"])
    saved = run.metrics.get(run.split, {}).get("micro", {})
    rows = [
        {"source": "metrics.json", **{k: saved.get(k) for k in recount}},
        {"source": "recounted", **recount},
    ]
    return Table(f"{run.label}: micro scores", rows)
