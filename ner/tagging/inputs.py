"""The documents of bulk tagging: finding shards (files, folders, globs) and reading their records.

A shard is one PubMed/MEDLINE XML file (`.xml`, `.xml.gz`; `ner.tagging.pubmed`), plain text with one
document per line (`.txt`, `.txt.gz`) or JSON lines (`.jsonl`, `.jsonl.gz`) with `{"id", "text"}` or
`{"id", "title", "abstract"}`. Reading never stops at a bad record: it becomes a `BadRecord` naming file and
line (or article) and the shard goes on. Only a shard that cannot be read on (a truncated gzip, a binary
file, XML that stops being well-formed) raises `ShardError`, possibly after some records were yielded.

Offsets are Python `str` indices (Unicode code points). A document's passages are laid out as in PubTator:
title at 0, each further passage one space after the previous one ends.
"""

from __future__ import annotations

import glob
import gzip
import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ner.errors import DataError, NerError

# shard suffix -> format; the longest matching suffix wins (`.xml.gz` before `.gz`)
SHARD_SUFFIXES = {
    ".xml": "pubmed",
    ".xml.gz": "pubmed",
    ".txt": "text",
    ".txt.gz": "text",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
}
# what one corrupt or truncated (gzip) file raises while it is read
READ_ERRORS = (OSError, EOFError, zlib.error)
# characters an id may not hold: PubTator lines are `ID|t|...` and `ID<TAB>...`
ID_FORBIDDEN = "|\t\n\r"


@dataclass(frozen=True)
class Passage:
    """A piece of a document tagged on its own: title, one abstract section, or a whole plain text."""

    kind: str  # "title" | "abstract" | "text"
    text: str  # plain text: inline markup removed, character references decoded
    offset: int  # where it starts in the document's PubTator text (passages joined by one space)
    label: str | None = None  # a structured abstract's section label (AbstractText @Label), if any


@dataclass(frozen=True)
class Document:
    id: str  # PMID, the JSON "id", or "<file stem>:<line>" for plain text
    passages: tuple[Passage, ...]


@dataclass(frozen=True)
class BadRecord:
    """A malformed record: counted and reported, the shard goes on."""

    id: str | None  # its id when it could be read
    where: str  # "FILE:LINE" (text/JSONL) or "FILE: article N (line L)" (XML)
    reason: str


@dataclass(frozen=True)
class Deleted:
    """A PubMed `<DeleteCitation>`: these PMIDs are withdrawn; listed in the manifest, not tagged."""

    ids: tuple[str, ...]


Record = Document | BadRecord | Deleted


class ShardError(DataError):
    """The shard cannot be read (on): truncated gzip, binary file, not XML... The caller discards any
    partial output of the shard."""


def shard_format(path: str | Path) -> str | None:
    """The format, "pubmed", "text" or "jsonl", from the file name's suffix; None for any other file."""
    name = Path(path).name.lower()
    for suffix in sorted(SHARD_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return SHARD_SUFFIXES[suffix]
    return None


def shard_stem(path: str | Path) -> str:
    """The file name without its shard suffix: `baseline.xml.gz` -> `baseline`."""
    name = Path(path).name
    for suffix in sorted(SHARD_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_shards(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (searched recursively for shard suffixes, hidden entries skipped) and globs, as
    absolute paths, deduplicated, sorted; a NerError for an input that matches no shard."""
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = _folder_shards(path)
            expected = "holds no shards"
        elif path.is_file():
            if shard_format(path) is None:
                raise NerError(f"{item}: unknown shard format (expected {_suffix_list()})")
            matches = [path]
        else:
            hits = [Path(hit) for hit in glob.glob(item, recursive=True)]
            matches = [hit for hit in hits if hit.is_file() and shard_format(hit)]
            matches += [shard for hit in hits if hit.is_dir() for shard in _folder_shards(hit)]
            expected = "matches no file or folder" if not hits else "matches no shards"
        if not matches:
            raise NerError(f"{item}: {expected} ({_suffix_list()})")
        found.update(match.resolve() for match in matches)
    return sorted(found)


def _folder_shards(folder: Path) -> list[Path]:
    # hidden entries are skipped: atomic writes leave `.name.tmp` files, tools leave `.git` folders
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and shard_format(path)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]


def _suffix_list() -> str:
    return ", ".join(f"*{suffix}" for suffix in SHARD_SUFFIXES)


def read_shard(path: str | Path) -> Iterator[Record]:
    """The records of one shard in file order (format from the suffix; `.gz` decompressed)."""
    from ner.tagging.pubmed import read_pubmed  # the XML reader needs lxml; text shards do not

    path = Path(path)
    readers = {"pubmed": read_pubmed, "text": read_text, "jsonl": read_jsonl}
    fmt = shard_format(path)
    if fmt is None:
        raise ShardError(path, f"unknown shard format (expected {_suffix_list()})")
    return readers[fmt](path)


def open_shard(path: Path) -> BinaryIO:
    """The shard's bytes, decompressed for `.gz`; a ShardError when it cannot be opened."""
    try:
        return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    except READ_ERRORS as error:
        raise ShardError(path, f"cannot be read ({error})") from None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) for every line; a ShardError for a corrupt or binary file."""
    with open_shard(path) as handle:
        number = 0
        try:
            for number, raw in enumerate(handle, 1):
                if b"\0" in raw:
                    raise ShardError(path, "a binary file (NUL bytes), not text", number)
                yield number, raw.rstrip(b"\n").removesuffix(b"\r")
        except READ_ERRORS as error:
            raise ShardError(path, f"cannot be read after line {number} ({error})") from None


def _decode(raw: bytes, first: bool) -> str:
    # a byte-order mark at the start of the file is not part of the first document
    return raw.decode("utf-8-sig" if first else "utf-8")


def _bad_utf8(raw: bytes, error: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1})"


def read_text(path: Path) -> Iterator[Record]:
    """One document per line, id `<file stem>:<line>`; blank lines separate nothing and are skipped."""
    stem = shard_stem(path)
    for number, raw in _lines(path):
        doc_id, where = f"{stem}:{number}", f"{path}:{number}"
        try:
            text = _decode(raw, number == 1)
        except UnicodeDecodeError as error:
            yield BadRecord(doc_id, where, _bad_utf8(raw, error))
            continue
        if text.strip():
            yield Document(doc_id, (Passage("text", text, 0),))


def read_jsonl(path: Path) -> Iterator[Record]:
    """One JSON object per line: `{"id", "text"}` or `{"id", "title", "abstract"}` (other keys ignored);
    blank lines are skipped."""
    for number, raw in _lines(path):
        where = f"{path}:{number}"
        try:
            line = _decode(raw, number == 1)
        except UnicodeDecodeError as error:
            yield BadRecord(None, where, _bad_utf8(raw, error))
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            yield BadRecord(None, where, f"invalid JSON ({error.msg} at column {error.colno})")
            continue
        yield json_document(data, where)


def json_document(data: object, where: str) -> Document | BadRecord:
    """A document from one decoded JSON record, or the reason it is not one."""
    if not isinstance(data, dict):
        return BadRecord(None, where, f"expected a JSON object, got {type(data).__name__}")
    doc_id = data.get("id")
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id.strip():
        return BadRecord(None, where, 'needs an "id": a non-empty string or an integer')
    problem = id_problem(doc_id) or _not_unicode(doc_id)
    if problem:
        return BadRecord(None, where, f"id {doc_id!r} {problem}")
    shape = [key for key in ("text", "title", "abstract") if key in data]
    if not shape or ("text" in shape and len(shape) > 1):
        return BadRecord(doc_id, where, 'needs "text", or "title" and/or "abstract" (not both kinds)')
    fields = {key: "" if data[key] is None else data[key] for key in shape}
    for key, value in fields.items():
        if not isinstance(value, str):
            return BadRecord(doc_id, where, f'"{key}" must be a string, got {type(value).__name__}')
        if _not_unicode(value):
            return BadRecord(doc_id, where, f'"{key}" {_not_unicode(value)}')
    if not any(value.strip() for value in fields.values()):
        return BadRecord(doc_id, where, "empty document: no text")
    if "text" in fields:
        return Document(doc_id, (Passage("text", fields["text"], 0),))
    abstract = fields.get("abstract", "")
    parts = [("title", fields.get("title", ""), None)] + ([("abstract", abstract, None)] if abstract else [])
    return Document(doc_id, chain_passages(parts))


def chain_passages(parts: Iterable[tuple[str, str, str | None]]) -> tuple[Passage, ...]:
    """Passages from (kind, text, label), each starting one space after the previous one ends."""
    passages, offset = [], 0
    for kind, text, label in parts:
        passages.append(Passage(kind, text, offset, label))
        offset += len(text) + 1
    return tuple(passages)


def id_problem(doc_id: str) -> str | None:
    """Why `doc_id` cannot name a document in every output format, or None."""
    if any(char in doc_id for char in ID_FORBIDDEN):
        return "holds '|', a tab or a line break, which PubTator lines cannot hold"
    return None


def _not_unicode(text: str) -> str | None:
    # JSON may spell a lone surrogate ("\ud800"): not a character, and no output file could encode it
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"holds a lone surrogate {text[error.start]!r} at index {error.start}, not a character"
    return None
