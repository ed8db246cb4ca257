"""Error analysis of a finished run: why entities are missed, cut wrong or typed wrong.

Everything starts from a run folder's outputs (`metrics.json`, `predictions/test.iob2`, `config.yaml`)
and reads entities the way the official JNLPBA scorer does (`ner.metrics.entity_chunks`: entities are
chunks begun by `B-`; an `I-` continues any open chunk), so the counts here add up to the scores in
`metrics.json`. Every gold and every predicted entity gets one outcome:

- `correct`: a predicted entity with a gold entity's span and the same tags (the official complete match);
- `wrong_type`: the same span, other tags;
- `boundary` / `boundary_wrong_type`: overlapping entities with different spans, of the same or another
  type; `boundary` says which one is off, in the scorer's sense: `left` (start differs, end right),
  `right` (start right, end differs) or `both`;
- `missed` (a gold entity no prediction overlaps) and `spurious` (a prediction no gold entity overlaps).

Results come back as `Table`s, which show themselves in Jupyter (HTML) and in the terminal (rich).
Comparing runs and drawing are in `ner.analysis.compare`; corpus statistics in `ner.analysis.corpus`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerBase

from ner.data.reader import Sentence, read_iob2
from ner.data.splits import make_split
from ner.data.windows import word_pieces
from ner.encoders import load_tokenizer, resolve_encoder
from ner.errors import NerError
from ner.metrics import prf
from ner.tables import Table
from ner.tags import entity_chunks, split_tag

OUTCOMES = ("correct", "wrong_type", "boundary", "boundary_wrong_type", "missed", "spurious")
SIDES = ("left", "right", "both")


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """A finished run: its folder, `metrics.json`, `config.yaml` and one split's predicted sentences."""

    path: Path
    metrics: dict
    config: dict
    sentences: list[Sentence]  # each with `.predicted`
    split: str = "test"

    @property
    def name(self) -> str:
        return f"{self.path.name} ({self.config.get('head', {}).get('name', '?')})"


def load_run(path: str | Path, split: str = "test") -> Run:
    """Read a run folder written by `ner.train` (`split`: `test` or `dev` predictions)."""
    path = Path(path)
    metrics_path, predictions = path / "metrics.json", path / "predictions" / f"{split}.iob2"
    if not metrics_path.is_file():
        raise NerError(f"{path}: no metrics.json, not a finished run folder")
    if not predictions.is_file():
        raise NerError(f"{path}: no predictions/{split}.iob2")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    config_path = path / "config.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_path)) if config_path.is_file() else {}
    return Run(path, metrics, config, read_iob2(predictions, with_predictions=True).sentences, split)


def training_sentences(run: Run) -> list[Sentence]:
    """The sentences the run trained on: its training file minus its dev split, rebuilt from `config.yaml`."""
    data = run.config.get("data")
    if not data:
        raise NerError(f"{run.path}: config.yaml has no data section; cannot find the training file")
    folder = Path(data["dir"])
    types = None if data.get("types") == "auto" else data.get("types")
    train, test = read_iob2(folder / "train.iob2", types), read_iob2(folder / "test.iob2", types)
    dev, fraction, seed = data.get("dev", "auto"), data.get("dev_fraction", 0.1), run.config.get("seed", 0)
    split = make_split(train, test, dev, folder, fraction, seed, lambda p: read_iob2(p, types))
    return split.train


def run_tokenizer(run: Run) -> PreTrainedTokenizerBase:
    """The run's tokenizer: from its last checkpoint when that carries one (offline), else its encoder."""
    checkpoint = run.path / "checkpoints" / "last.ckpt"
    if checkpoint.is_file():
        files = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get(
            "tokenizer_files"
        )
        if files:
            from ner.inference.predictor import (
                tokenizer_from_files,  # here: it imports Lightning, needed nowhere else
            )

            return tokenizer_from_files(files)
    return load_tokenizer(resolve_encoder(run.config["model"]["encoder"]))


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


def outcome_table(outcomes: Iterable[Outcome]) -> Table:
    """How many gold entities (recall side) and predicted entities (precision side) get each outcome."""
    counts = Counter((o.side, o.category) for o in outcomes)
    totals = {side: sum(n for (s, _), n in counts.items() if s == side) for side in ("gold", "pred")}
    rows = []
    for category in OUTCOMES:
        gold, pred = counts[("gold", category)], counts[("pred", category)]
        rows.append(
            {
                "outcome": category,
                "gold": gold,
                "share of gold": gold / totals["gold"] if totals["gold"] else 0.0,
                "predicted": pred,
                "share of predicted": pred / totals["pred"] if totals["pred"] else 0.0,
            }
        )
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


def f1_by(sentences: Sequence[Sentence], key: Callable[[int, Span], str], title: str, order=None) -> Table:
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
    buckets = list(order) if order else sorted(set(n_gold) | set(n_pred))
    rows = [{"bucket": b, **prf(tp[b], n_pred[b], n_gold[b])} for b in buckets if n_gold[b] or n_pred[b]]
    return Table(title, rows)


def _bucket(value: float, edges: Sequence[float]) -> str:
    """`edges=(10, 20)` -> "<=10", "11-20", ">20" for integers."""
    low = None
    for edge in edges:
        if value <= edge:
            return f"<={edge}" if low is None else f"{low + 1}-{edge}"
        low = edge
    return f">{edges[-1]}"


def _labels(edges: Sequence[int]) -> list[str]:
    return [
        f"<={edges[0]}",
        *(f"{a + 1}-{b}" for a, b in zip(edges, edges[1:], strict=False)),
        f">{edges[-1]}",
    ]


def f1_by_sentence_length(
    sentences: Sequence[Sentence], edges: Sequence[int] = (10, 20, 30, 40, 60)
) -> Table:
    """F1 by sentence length in words."""

    def key(i: int, span: Span) -> str:
        return _bucket(len(sentences[i]), edges)

    return f1_by(sentences, key, "F1 by sentence length (words)", _labels(edges))


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
        if self.previous is None:
            return "start -> I-X"
        if self.previous == "O":
            return "O -> I-X"
        return f"{split_tag(self.previous)[0]}-X -> I-Y"


def invalid_transitions(sentences: Sequence[Sentence]) -> list[Transition]:
    """Every predicted `I-X` not preceded by `B-X` or `I-X`."""
    found = []
    for i, sentence in enumerate(sentences):
        previous = None
        for position, tag in enumerate(_predicted(sentence)):
            prefix, entity_type = split_tag(tag)
            if prefix == "I" and (previous is None or split_tag(previous)[1] != entity_type):
                found.append(Transition(i, position, previous, tag))
            previous = tag
    return found


def invalid_transition_table(sentences: Sequence[Sentence]) -> Table:
    """Invalid BIO transitions in the predictions, by pattern, with the sentences they occur in."""
    found = invalid_transitions(sentences)
    by_pattern = defaultdict(list)
    for transition in found:
        by_pattern[transition.pattern].append(transition)
    rows = [
        {
            "pattern": p,
            "count": len(ts),
            "sentences": len({t.sentence for t in ts}),
            "examples": ", ".join(f"{t.previous or '<start>'} {t.tag}" for t in ts[:3]),
        }
        for p, ts in sorted(by_pattern.items())
    ]
    tags = sum(len(s) for s in sentences)
    rows.append(
        {
            "pattern": "total",
            "count": len(found),
            "sentences": len({t.sentence for t in found}),
            "examples": f"of {tags} predicted tags",
        }
    )
    return Table("Invalid BIO transitions emitted", rows)


def score_check(run: Run, outcomes: Iterable[Outcome]) -> Table:
    """Micro scores recounted from the outcomes next to those in `metrics.json` (they must agree)."""
    counts = Counter((o.side, o.category) for o in outcomes)
    tp = counts[("pred", "correct")]
    n_pred = sum(n for (side, _), n in counts.items() if side == "pred")
    n_gold = sum(n for (side, _), n in counts.items() if side == "gold")
    recount = prf(tp, n_pred, n_gold)
    saved = run.metrics.get(run.split, {}).get("micro", {})
    keys = ("precision", "recall", "f1", "tp", "n_pred", "n_gold")
    rows = [{"source": "metrics.json", **{k: saved.get(k) for k in keys}}, {"source": "recounted", **recount}]
    return Table(f"{run.name}: micro scores", rows)
