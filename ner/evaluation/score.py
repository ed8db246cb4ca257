"""Score a predictions file: `python -m ner score FILE [--json] [--types protein,DNA,...] [--scheme iob1]`.

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

from ner.data.reader import read_iob2
from ner.data.schemes import SCHEMES
from ner.errors import NerError
from ner.metrics import score_sentences
from ner.tables import Table

PERCENTS = {"P %": "precision", "R %": "recall", "F1 %": "f1"}


def read_predictions(
    path: str | Path,
    types: Sequence[str] | None = None,
    scheme: str = "iob2",
    default_type: str | None = None,
) -> tuple[list[list[str]], list[list[str]]]:
    """`(gold, pred)` sentences of IOB2 tags (converted from `scheme`); with `types`, a tag of any other
    type is an error.

    Raises DataError naming the file and line for anything malformed, so a bad file never scores silently.
    """
    corpus = read_iob2(path, types, with_predictions=True, scheme=scheme, default_type=default_type)
    return [list(s.tags) for s in corpus.sentences], [list(s.predicted) for s in corpus.sentences]


def _score_table(scores: dict, source: str) -> Table:
    """One row per type, then the averages and the alternative matchings; P/R/F1 in percent."""
    per_type = list(scores["per_type"].items())
    named = [
        *per_type,
        ("micro (complete match)", scores["micro"]),
        ("macro (unweighted mean over types)", scores["macro"]),
        ("weighted (support-weighted, the model card's 'macro avg')", scores["weighted"]),
        ("left boundary", scores["left_boundary"]),
        ("right boundary", scores["right_boundary"]),
        ("seqeval default (lenient)", scores["seqeval_default"]),
    ]
    rows = [
        {
            "": label,
            **{name: 100 * s[key] for name, key in PERCENTS.items()},
            **{key: s.get(key) for key in ("tp", "n_pred", "n_gold")},  # the averages have no counts
        }
        for label, s in named
    ]
    sections = (len(per_type) - 1, len(per_type) + 2)  # types | averages | other matchings
    return Table(
        f"Entity-level scores (JNLPBA 2004 / evalIOB2.pl): {source}", rows, digits=2, sections=sections
    )


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
    parser.add_argument(
        "--scheme", choices=SCHEMES, default="iob2", help="tagging scheme of both columns (read as IOB2)"
    )
    parser.add_argument("--default-type", help="entity type of typeless B/I tags (e.g. gene)")
    args = parser.parse_args(argv)
    types = None
    if args.types is not None:
        types = sorted({t.strip() for t in args.types.split(",") if t.strip()})
        if not types:
            parser.error("--types needs at least one type name")
    try:
        gold, pred = read_predictions(args.file, types, args.scheme, args.default_type)
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
