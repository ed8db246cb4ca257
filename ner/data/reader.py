"""Reading IOB2 / CoNLL-style files into sentences, with validation that names the file and line.

Accepted formats, all of them one token per line and a blank line after each sentence:
- the JNLPBA shared task's own: `token<TAB>tag`, with `###MEDLINE:<id>` lines that start abstracts;
- the same without abstract markers;
- CoNLL-style with more columns (the last column is the tag) and `-DOCSTART-` lines between documents.
Nothing is dropped: a final sentence without a trailing blank line is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ner.tags import split_tag
from ner.errors import DataError

ABSTRACT_MARKER = "###MEDLINE:"
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    """One sentence: its words, their gold tags and where it came from.

    `lines` holds the 1-based line number of every word in the source file, so predictions can be
    written back line for line and errors can point at the right place.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc_id: str | None = None
    lines: tuple[int, ...] = ()
    predicted: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Corpus:
    """All sentences of one file, in file order, and the file's raw lines (for line-for-line output)."""

    path: Path
    sentences: list[Sentence]
    raw_lines: list[str] = field(repr=False, default_factory=list)
    has_doc_markers: bool = False

    @property
    def doc_ids(self) -> list[str]:
        """Document ids in file order (empty when the file has no markers)."""
        seen: dict[str, None] = {}
        for sentence in self.sentences:
            if sentence.doc_id is not None:
                seen.setdefault(sentence.doc_id)
        return list(seen)

    @property
    def types(self) -> list[str]:
        """Entity types that occur in the gold tags (sorted)."""
        return sorted({t for s in self.sentences for tag in s.tags if (t := split_tag(tag)[1]) is not None})


def _read_text(path: Path) -> str:
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(path, f"not valid UTF-8 (byte {data[error.start]:#04x})", line) from None


def _fields(line: str) -> list[str]:
    # Tab-separated where there are tabs (a token may then contain spaces), else any whitespace.
    return [f for f in (line.split("\t") if "\t" in line else line.split())]


def read_iob2(
    path: str | Path,
    types: Iterable[str] | None = None,
    with_predictions: bool = False,
) -> Corpus:
    """Read and validate one IOB2 / CoNLL file.

    `types`: the declared entity types; a tag with any other type is an error (None accepts any type).
    `with_predictions`: the last two columns are gold and predicted tags (a predictions file).
    """
    path = Path(path)
    declared = set(types) if types is not None else None
    text = _read_text(path)
    # split("\n"), not splitlines(): a token may hold \x0c or \u2028, and line numbers must match an editor's
    raw_lines = [line.rstrip("\r") for line in text.split("\n")]
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    n_tag_columns = 2 if with_predictions else 1
    sentences: list[Sentence] = []
    doc_id: str | None = None
    has_markers = False
    tokens: list[str] = []
    tags: list[list[str]] = [[] for _ in range(n_tag_columns)]
    lines: list[int] = []

    def end_sentence() -> None:
        if tokens:
            sentences.append(
                Sentence(
                    tuple(tokens),
                    tuple(tags[0]),
                    doc_id,
                    tuple(lines),
                    tuple(tags[1]) if with_predictions else None,
                )
            )
        tokens.clear(), lines.clear()
        for column in tags:
            column.clear()

    for number, line in enumerate(raw_lines, start=1):
        stripped = line.strip()
        if not stripped:
            end_sentence()
            continue
        if stripped.startswith(ABSTRACT_MARKER):
            end_sentence()
            doc_id = stripped[len(ABSTRACT_MARKER) :].strip() or f"line{number}"
            has_markers = True
            continue
        if stripped.split()[0] == DOCSTART:
            end_sentence()
            doc_id = f"doc{number}"
            has_markers = True
            continue
        fields = _fields(line)
        if len(fields) < 1 + n_tag_columns:
            expected = "token, gold and predicted tag columns" if with_predictions else "a token and a tag"
            raise DataError(path, f"expected {expected} separated by tabs or spaces, got {line!r}", number)
        kinds = ("gold ", "predicted ") if with_predictions else ("",)
        for column, kind, tag in zip(tags, kinds, fields[-n_tag_columns:], strict=True):
            try:
                _, entity_type = split_tag(tag)
            except ValueError as error:
                raise DataError(path, f"{kind}{error}", number) from None
            if entity_type is not None and declared is not None and entity_type not in declared:
                raise DataError(
                    path,
                    f"entity type {entity_type!r} is not declared (declared: {', '.join(sorted(declared))}; "
                    "set data.types or data.types=auto)",
                    number,
                )
            column.append(tag)
        tokens.append(fields[0])
        lines.append(number)
    end_sentence()
    if not sentences:
        raise DataError(path, "contains no sentences (empty file?)")
    return Corpus(path, sentences, raw_lines, has_markers)
