"""Comparing two runs on the same test file, and showing sentences with their entities highlighted.

`compare_runs(a, b)` lists the gold entities exactly one of the two runs gets right (e.g. softmax vs CRF);
`Examples` render sentences with gold and predicted spans coloured by type, as HTML in Jupyter and as
rich text in a terminal (`rich.print(examples)`).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rich.console import Group
from rich.text import Text

from ner.analysis.entities import Outcome, Run, Span, classify_sentence, entities
from ner.tables import Table

HTML_COLORS = {
    "protein": "#fde68a",
    "DNA": "#bfdbfe",
    "RNA": "#ddd6fe",
    "cell_type": "#bbf7d0",
    "cell_line": "#fecaca",
}
RICH_COLORS = {"protein": "yellow", "DNA": "blue", "RNA": "magenta", "cell_type": "green", "cell_line": "red"}


@dataclass(frozen=True)
class Example:
    """One sentence with layers of entities (gold, a run's predictions, ...) and one entity in focus."""

    title: str
    tokens: tuple[str, ...]
    layers: dict[str, list[Span]]
    focus: Span | None = None


def _segments(tokens: Sequence[str], spans: Iterable[Span]) -> Iterator[tuple[str, Span | None]]:
    """The sentence in order as `(words, span)` pieces: one entity span each, or a plain word (None)."""
    starts = {s.start: s for s in spans}
    i = 0
    while i < len(tokens):
        span = starts.get(i)
        yield (tokens[i], None) if span is None else (" ".join(tokens[span.start : span.end]), span)
        i = i + 1 if span is None else span.end


def _is_focus(span: Span, focus: Span | None) -> bool:
    return focus is not None and (focus.start, focus.end) == (span.start, span.end)


def highlight_html(tokens: Sequence[str], spans: Iterable[Span], focus: Span | None = None) -> str:
    """The sentence as HTML, each span a `<mark>` coloured by type with its type in small letters."""
    out = []
    for words, span in _segments(tokens, spans):
        if span is None:
            out.append(html.escape(words))
            continue
        border = "outline:2px solid #111;" if _is_focus(span, focus) else ""
        out.append(
            f'<mark style="background:{HTML_COLORS.get(span.type, "#e5e7eb")};{border}padding:0 2px">'
            f'{html.escape(words)}<sub style="font-size:70%"> {html.escape(span.type)}</sub></mark>'
        )
    return " ".join(out)


def highlight_rich(tokens: Sequence[str], spans: Iterable[Span], focus: Span | None = None) -> Text:
    """The sentence as rich text, each span coloured by type and followed by `[type]`."""
    text = Text()
    for k, (words, span) in enumerate(_segments(tokens, spans)):
        text.append(" " if k else "")
        if span is None:
            text.append(words)
            continue
        style = f"bold {RICH_COLORS.get(span.type, 'cyan')}" + (
            " underline" if _is_focus(span, focus) else ""
        )
        text.append(words, style=style)
        text.append(f"[{span.type}]", style="dim")
    return text


class Examples(list):
    """A list of `Example`s that displays itself (HTML in Jupyter, rich in a terminal)."""

    def _repr_html_(self) -> str:
        if not self:
            return "<p><i>no examples</i></p>"
        parts = []
        for example in self:
            rows = "".join(
                f'<tr><td style="text-align:right;white-space:nowrap"><b>{html.escape(name)}</b></td>'
                f'<td style="text-align:left">{highlight_html(example.tokens, spans, example.focus)}'
                "</td></tr>"
                for name, spans in example.layers.items()
            )
            parts.append(f"<p><b>{html.escape(example.title)}</b></p><table>{rows}</table>")
        return "".join(parts)

    def __rich__(self) -> Group:
        items = []
        for example in self:
            items.append(Text(example.title, style="bold"))
            for name, spans in example.layers.items():
                items.append(
                    Text(f"  {name}: ", style="dim") + highlight_rich(example.tokens, spans, example.focus)
                )
        return Group(*items) if items else Group(Text("no examples", style="italic"))


def error_examples(run: Run, outcomes: Iterable[Outcome], category: str, limit: int = 5) -> Examples:
    """Sentences with an entity of outcome `category` (gold side; predicted side for `spurious`)."""
    side = "pred" if category == "spurious" else "gold"
    examples = Examples()
    for outcome in outcomes:
        if outcome.side != side or outcome.category != category:
            continue
        sentence = run.sentences[outcome.sentence]
        detail = f", {outcome.boundary} boundary" if outcome.boundary else ""
        examples.append(
            Example(
                f"sentence {outcome.sentence + 1}: {category}{detail} ({outcome.span.type})",
                sentence.tokens,
                {"gold": entities(sentence.tags), "predicted": entities(sentence.predicted)},
                outcome.span,
            )
        )
        if len(examples) >= limit:
            break
    return examples


@dataclass(frozen=True)
class Difference:
    """A gold entity that exactly one of two runs gets right, with each run's outcome for it."""

    sentence: int
    entity: Span
    a: str
    b: str


def compare_runs(a: Run, b: Run) -> list[Difference]:
    """Gold entities correct in one run and not in the other. Both runs must have predicted the same file."""
    if [s.tokens for s in a.sentences] != [s.tokens for s in b.sentences]:
        raise ValueError(
            f"{a.path} and {b.path} predicted different sentences; compare runs on the same split"
        )
    differences = []
    for i, (sa, sb) in enumerate(zip(a.sentences, b.sentences, strict=True)):
        gold_a = {o.span: o.category for o in classify_sentence(i, sa.tags, sa.predicted) if o.side == "gold"}
        gold_b = {o.span: o.category for o in classify_sentence(i, sb.tags, sb.predicted) if o.side == "gold"}
        for span, outcome_a in gold_a.items():
            outcome_b = gold_b[span]
            if (outcome_a == "correct") != (outcome_b == "correct"):
                differences.append(Difference(i, span, outcome_a, outcome_b))
    return differences


def comparison_table(a: Run, b: Run, differences: Sequence[Difference]) -> Table:
    """Per type: gold entities right only in A (and what B did instead), right only in B (and what A did)."""
    rows = []
    for entity_type in sorted({d.entity.type for d in differences}):
        mine = [d for d in differences if d.entity.type == entity_type]
        only_a = [d for d in mine if d.a == "correct"]
        only_b = [d for d in mine if d.b == "correct"]
        rows.append(
            {
                "type": entity_type,
                f"right only in {a.label}": len(only_a),
                f"{b.label} instead": _summary(d.b for d in only_a),
                f"right only in {b.label}": len(only_b),
                f"{a.label} instead": _summary(d.a for d in only_b),
            }
        )
    return Table(f"{a.label} vs {b.label}: gold entities exactly one run gets right", rows)


def _summary(categories: Iterable[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in Counter(categories).most_common())


def difference_examples(a: Run, b: Run, differences: Sequence[Difference], limit: int = 8) -> Examples:
    """Sentences of the first `limit` differences, with gold, A's and B's entities."""
    examples = Examples()
    for d in differences[:limit]:
        winner = a.label if d.a == "correct" else b.label
        sentence = a.sentences[d.sentence]
        outcomes = f"{a.label}: {d.a}, {b.label}: {d.b}"
        examples.append(
            Example(
                f"sentence {d.sentence + 1}: {d.entity.type} right only in {winner} ({outcomes})",
                sentence.tokens,
                {
                    "gold": entities(sentence.tags),
                    a.label: entities(sentence.predicted),
                    b.label: entities(b.sentences[d.sentence].predicted),
                },
                d.entity,
            )
        )
    return examples
