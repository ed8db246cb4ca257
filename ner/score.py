"""Score a predictions file: `python -m ner.score FILE [--json] [--types protein,DNA,...]`.

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

from ner.data.labels import split_tag
from ner.errors import DataError, NerError
from ner.metrics import score_sentences

DOC_MARKERS = ("###MEDLINE:", "-DOCSTART-")


def read_predictions(
    path: str | Path, types: Sequence[str] | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """`(gold, pred)` sentences of tag strings; with `types`, a tag of any other type is an error.

    Raises DataError naming the file and line for anything malformed, so a bad file never scores silently.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as err:
        raise DataError(path, f"cannot read the file ({err.strerror or err})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(path, f"not valid UTF-8 (byte 0x{data[err.start]:02x})", line) from None

    declared = set(types) if types is not None else None
    gold: list[list[str]] = []
    pred: list[list[str]] = []
    sentence: tuple[list[str], list[str]] = ([], [])

    def end_sentence() -> None:
        nonlocal sentence
        if sentence[0]:
            gold.append(sentence[0])
            pred.append(sentence[1])
        sentence = ([], [])

    # split("\n"), not splitlines(): line numbers must match what an editor shows
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith(DOC_MARKERS):
            end_sentence()
            continue
        columns = line.split()
        if len(columns) < 3:
            raise DataError(
                path,
                f"expected token, gold and predicted tag columns, found {len(columns)} column(s)",
                number,
            )
        for kind, tag in (("gold", columns[-2]), ("predicted", columns[-1])):
            try:
                entity_type = split_tag(tag)[1]
            except ValueError:
                raise DataError(
                    path, f"{kind} tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>'", number
                ) from None
            if declared is not None and entity_type is not None and entity_type not in declared:
                raise DataError(
                    path,
                    f"{kind} tag {tag!r} has type {entity_type!r}, not one of --types {sorted(declared)}",
                    number,
                )
        sentence[0].append(columns[-2])
        sentence[1].append(columns[-1])
    end_sentence()
    if not gold:
        raise DataError(
            path, "no sentences found (the file is empty or has only blank lines and document markers)"
        )
    return gold, pred


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
    parser = argparse.ArgumentParser(prog="python -m ner.score", description=__doc__.split("\n\n")[0])
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
