"""Score a predictions file: `python -m ner score FILE [--json] [--types protein,DNA,...]`.

The file holds one token per line whose last two whitespace-separated columns are the gold and predicted tags
(`token<TAB>gold<TAB>pred`); blank lines end sentences and document markers (`###MEDLINE:...`,
`-DOCSTART-...`) are skipped. Prints the JNLPBA 2004 (evalIOB2.pl) scores per type and averaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ner.data.reader import read_iob2
from ner.errors import NerError
from ner.metrics import score_sentences


def read_predictions(
    path: str | Path, types: Sequence[str] | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """`(gold, pred)` sentences of tag strings; with `types`, a tag of any other type is an error.

    Raises DataError naming the file and line for anything malformed, so a bad file never scores silently.
    """
    corpus = read_iob2(path, types, with_predictions=True)
    return [list(s.tags) for s in corpus.sentences], [list(s.predicted) for s in corpus.sentences]


def _score_table(scores: dict, source: str) -> Table:
    """One row per type, then the averages and the alternative matchings; numbers are percentages."""
    table = Table(title=f"Entity-level scores (JNLPBA 2004 / evalIOB2.pl): {source}")
    table.add_column("")
    for name in ("P %", "R %", "F1 %", "tp", "n_pred", "n_gold"):
        table.add_column(name, justify="right")

    def row(label: str, s: dict, end_section: bool = False) -> None:
        counts = [str(s[k]) if k in s else "" for k in ("tp", "n_pred", "n_gold")]
        percents = [f"{100 * s[k]:.2f}" for k in ("precision", "recall", "f1")]
        table.add_row(label, *percents, *counts, end_section=end_section)

    per_type = list(scores["per_type"].items())
    for k, (entity_type, s) in enumerate(per_type):
        row(entity_type, s, end_section=k == len(per_type) - 1)
    row("micro (complete match)", scores["micro"])
    row("macro (unweighted mean over types)", scores["macro"])
    row("weighted (support-weighted, the model card's 'macro avg')", scores["weighted"], end_section=True)
    row("left boundary", scores["left_boundary"])
    row("right boundary", scores["right_boundary"])
    row("seqeval default (lenient)", scores["seqeval_default"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner score", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "file", help="predictions file: token lines whose last two columns are gold and predicted tags"
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    parser.add_argument(
        "--types",
        help="comma-separated entity types to score (e.g. protein,DNA); a tag of another type is an error. "
        "Default: every type found in the file",
    )
    args = parser.parse_args(argv)
    types = None
    if args.types is not None:
        types = sorted({t.strip() for t in args.types.split(",") if t.strip()})
        if not types:
            parser.error("--types needs at least one type name")
    try:
        gold, pred = read_predictions(args.file, types)
    except NerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    scores = score_sentences(gold, pred, types)
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        Console().print(_score_table(scores, args.file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
