"""Reading CoNLL-style files into IOB2 sentences, with validation that names the file and line.

Accepted formats, all of them one token per line and a blank line after each sentence:
- the JNLPBA shared task's own: `token<TAB>tag`, with `###MEDLINE:<id>` lines that start abstracts;
- the same without abstract markers;
- CoNLL-style with more columns (the last column is the tag) and `-DOCSTART-` lines between documents.
Tags may be in any scheme of `ner.data.schemes`; they are converted to IOB2 when read.
Documents (the unit of `data.context`) are counted by position: every marker line starts a new one, even one
whose id repeats (the JNLPBA test file has 404 abstracts but 402 distinct ids).
Nothing is dropped: a final sentence without a trailing blank line is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path

from ner.data.schemes import SchemeError, check_scheme, guess_scheme, scheme_note, to_iob2
from ner.errors import DataError
from ner.files import decode_text, read_bytes
from ner.tags import split_tag

ABSTRACT_MARKER = "###MEDLINE:"
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    """One sentence: its words, their gold tags and where it came from.

    `lines` holds the 1-based line number of every word in the source file, so predictions can be
    written back line for line and errors can point at the right place. `doc_id` is the marker's id (what
    dev splits by id use); `document` the position of the sentence's document in the file (0 for the first
    marker; None before any marker and in files without markers): sentences of one document share it.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc_id: str | None = None
    lines: tuple[int, ...] = ()
    predicted: tuple[str, ...] | None = None
    document: int | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Corpus:
    """All sentences of one file, in file order (tags in IOB2), and the file's raw lines (for line-for-line
    output); `scheme` and `default_type` say how the tags were read."""

    path: Path
    sentences: list[Sentence]
    raw_lines: list[str] = field(repr=False, default_factory=list)
    has_doc_markers: bool = False
    scheme: str = "iob2"
    default_type: str | None = None

    @property
    def scheme_note(self) -> str | None:
        """E.g. "read as IOB1, converted to IOB2"; None for an IOB2 file with typed tags."""
        return scheme_note(self.scheme, self.default_type)

    @property
    def doc_ids(self) -> list[str]:
        """Document ids in file order (empty when the file has no markers)."""
        return list(dict.fromkeys(s.doc_id for s in self.sentences if s.doc_id is not None))

    @property
    def n_documents(self) -> int:
        """Documents with sentences, by position (a repeated id counts again); 0 without markers."""
        return len({s.document for s in self.sentences if s.document is not None})

    @property
    def types(self) -> list[str]:
        """Entity types that occur in the gold tags (sorted)."""
        return sorted({t for s in self.sentences for tag in s.tags if (t := split_tag(tag)[1]) is not None})


def read_iob2(
    path: str | Path,
    types: Iterable[str] | None = None,
    with_predictions: bool = False,
    scheme: str = "iob2",
    default_type: str | None = None,
) -> Corpus:
    """Read and validate one CoNLL-style file; its tags come back in IOB2 whatever `scheme` it is in.

    `types`: the declared entity types; a tag with any other type is an error (None accepts any type).
    `with_predictions`: the last two columns are gold and predicted tags (a predictions file).
    `scheme`, `default_type`: see `ner.data.schemes`; a gold sequence that breaks the scheme is an error
    that names the scheme the file looks like.
    """
    check_scheme(scheme)
    path = Path(path)
    declared = set(types) if types is not None else None
    text = decode_text(path, read_bytes(path))
    # split("\n"), not splitlines(): a token may hold \x0c or \u2028, and line numbers must match an editor's
    raw_lines = [line.rstrip("\r") for line in text.split("\n")]
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    n_tag_columns = 2 if with_predictions else 1
    raw: list[Sentence] = []  # tags as in the file; `predicted` holds the predicted column
    doc_id: str | None = None
    document: int | None = None  # position of the open document (None before the first marker)
    has_markers = False
    rows: list[tuple[int, list[str]]] = []  # (line number, fields) of each word of the open sentence

    def end_sentence() -> None:
        if rows:
            numbers, words = zip(*rows, strict=True)
            gold = tuple(fields[-n_tag_columns] for fields in words)
            predicted = tuple(fields[-1] for fields in words) if with_predictions else None
            tokens = tuple(fields[0] for fields in words)
            raw.append(Sentence(tokens, gold, doc_id, numbers, predicted, document))
        rows.clear()

    for number, line in enumerate(raw_lines, start=1):
        stripped = line.strip()
        if not stripped:
            end_sentence()
            continue
        if stripped.startswith(ABSTRACT_MARKER):
            end_sentence()
            doc_id = stripped[len(ABSTRACT_MARKER) :].strip() or f"line{number}"
            document = 0 if document is None else document + 1
            has_markers = True
            continue
        if stripped.split()[0] == DOCSTART:
            end_sentence()
            doc_id = f"doc{number}"
            document = 0 if document is None else document + 1
            has_markers = True
            continue
        # tab-separated where there are tabs (a token may then contain spaces), else any whitespace
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 1 + n_tag_columns:
            expected = "token, gold and predicted tag columns" if with_predictions else "a token and a tag"
            raise DataError(path, f"expected {expected} separated by tabs or spaces, got {line!r}", number)
        rows.append((number, fields))
    end_sentence()
    if not raw:
        raise DataError(path, "contains no sentences (empty file?)")
    sentences = [_converted(path, s, raw, scheme, default_type, declared) for s in raw]
    return Corpus(path, sentences, raw_lines, has_markers, scheme, default_type)


def _converted(
    path: Path,
    sentence: Sentence,
    raw: list[Sentence],
    scheme: str,
    default_type: str | None,
    declared: set[str] | None,
) -> Sentence:
    """`sentence` with IOB2 tags; a bad tag's error names its line and the scheme the file looks like."""
    columns = [("", attrgetter("tags"), True)]
    if sentence.predicted is not None:
        columns = [("gold ", attrgetter("tags"), True), ("predicted ", attrgetter("predicted"), False)]
    converted = []
    for kind, column, strict in columns:
        try:
            tags = to_iob2(column(sentence), scheme, default_type, strict)
        except SchemeError as error:
            guess = guess_scheme(map(column, raw), default_type)
            hint = (
                f"; the file looks like {guess.upper()}: set data.scheme={guess}"
                if guess not in (None, scheme)
                else ""
            )
            raise DataError(path, f"{kind}{error}{hint}", sentence.lines[error.position]) from None
        for i, tag in enumerate(tags):
            entity_type = split_tag(tag)[1]
            if entity_type is not None and declared is not None and entity_type not in declared:
                raise DataError(
                    path,
                    f"entity type {entity_type!r} is not declared (declared: {', '.join(sorted(declared))}; "
                    "set data.types or data.types=auto)",
                    sentence.lines[i],
                )
        converted.append(tuple(tags))
    return replace(sentence, tags=converted[0], predicted=converted[1] if len(converted) > 1 else None)
