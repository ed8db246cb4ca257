"""Tagged documents as output files: JSON lines, PubTator, BioC XML and BioC JSON.

Every offset counts Unicode code points (Python `str` indices), and every entity's text is exactly the
slice of its passage's text between its offsets (checked here before anything is written):
- `jsonl`: entity `start`/`end` index the passage's `text`; the passage's `offset` places it in the
  document (passages joined by one space, as in PubTator).
- `pubtator`: mention offsets index `title + " " + abstract`, i.e. the passage offset plus the entity's.
  PubTator text is one line: line breaks and tabs inside a text become spaces, one for one, so lengths and
  offsets are unchanged. The sixth column (concept id) is `-`: the tagger does not normalize.
- `bioc`/`biocjson`: passage `offset` and annotation `location offset` are document offsets, as BioC
  defines them; annotation infons `type` and `score`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ner.errors import NerError
from ner.tagging.inputs import Document, Passage, id_problem

if TYPE_CHECKING:  # the predictor module pulls in torch; rendering needs only the fields
    from ner.inference.predictor import Entity


@dataclass(frozen=True)
class TaggedDocument:
    document: Document
    entities: tuple[tuple[Entity, ...], ...]  # one tuple per passage, offsets into that passage's text


FORMATS = ("jsonl", "pubtator", "bioc", "biocjson")
SUFFIXES = {"jsonl": ".jsonl", "pubtator": ".pubtator", "bioc": ".bioc.xml", "biocjson": ".bioc.json"}
SCORE_DIGITS = 4
NO_CONCEPT = "-"  # PubTator's concept-id column: nothing normalized
BIOC_KEY = "ner-tagging.key"  # offsets in Unicode code points; passages joined by one space

# what str.splitlines() and PubTator readers take as a line end, and the tab: each becomes one space
ONE_LINE = str.maketrans(dict.fromkeys("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))
# JSON allows these raw inside strings, but they split lines for str.splitlines(): write them escaped
JSON_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
# characters XML 1.0 cannot hold (control characters, U+FFFE/U+FFFF): one space each in BioC XML
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(fmt: str, documents: Sequence[TaggedDocument]) -> str:
    """The whole output file of one shard in format `fmt` (the caller writes it atomically)."""
    renderers = {"jsonl": _jsonl, "pubtator": _pubtator, "bioc": _bioc_xml, "biocjson": _bioc_json}
    if fmt not in renderers:
        raise NerError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    for tagged in documents:
        check(tagged)
    return renderers[fmt](documents)


def check(tagged: TaggedDocument) -> None:
    """A ValueError unless passages are laid out one space apart and every entity slices its own text."""
    document = tagged.document
    if len(tagged.entities) != len(document.passages):
        raise ValueError(
            f"{document.id}: {len(tagged.entities)} entity lists for {len(document.passages)} passages"
        )
    offset = 0
    for passage, entities in zip(document.passages, tagged.entities, strict=True):
        if passage.offset != offset:
            raise ValueError(f"{document.id}: passage at {passage.offset}, expected {offset}")
        offset += len(passage.text) + 1
        for entity in entities:
            if not 0 <= entity.start < entity.end <= len(passage.text):
                raise ValueError(f"{document.id}: entity {entity} outside its passage")
            if passage.text[entity.start : entity.end] != entity.text:
                raise ValueError(f"{document.id}: entity {entity} is not its passage's text there")


def _score(entity: Entity) -> float:
    return round(float(entity.score), SCORE_DIGITS)


def _jsonl(documents: Sequence[TaggedDocument]) -> str:
    lines = []
    for tagged in documents:
        passages = [_jsonl_passage(p, entities) for p, entities in _pairs(tagged)]
        line = json.dumps({"id": tagged.document.id, "passages": passages}, ensure_ascii=False)
        for char, escaped in JSON_LINE_BREAKS.items():  # only inside strings: JSON syntax is ASCII
            line = line.replace(char, escaped)
        lines.append(line + "\n")
    return "".join(lines)


def _jsonl_passage(passage: Passage, entities: Sequence[Entity]) -> dict:
    head = {"kind": passage.kind} | ({"label": passage.label} if passage.label is not None else {})
    return head | {
        "offset": passage.offset,
        "text": passage.text,
        "entities": [
            {"type": e.type, "start": e.start, "end": e.end, "text": e.text, "score": _score(e)}
            for e in entities
        ],
    }


def _pairs(tagged: TaggedDocument) -> list[tuple[Passage, tuple[Entity, ...]]]:
    return list(zip(tagged.document.passages, tagged.entities, strict=True))


def _pubtator(documents: Sequence[TaggedDocument]) -> str:
    """`ID|t|title`, `ID|a|abstract`, one line per mention, a blank line after each document.

    The first passage is the title (a plain-text document's whole text, with an empty abstract line), the
    others make up the abstract."""
    blocks = []
    for tagged in documents:
        doc_id = _pubtator_id(tagged.document.id)
        texts = [passage.text.translate(ONE_LINE) for passage in tagged.document.passages] or [""]
        lines = [f"{doc_id}|t|{texts[0]}", f"{doc_id}|a|{' '.join(texts[1:])}"]
        mentions = sorted(
            (passage.offset + e.start, passage.offset + e.end, e.text.translate(ONE_LINE), e.type)
            for passage, entities in _pairs(tagged)
            for e in entities
        )
        lines += [
            f"{doc_id}\t{start}\t{end}\t{text}\t{kind}\t{NO_CONCEPT}" for start, end, text, kind in mentions
        ]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def _pubtator_id(doc_id: str) -> str:
    problem = id_problem(doc_id)
    if problem:
        raise NerError(f"document id {doc_id!r} {problem}")
    return doc_id


def _bioc_collection(documents: Sequence[TaggedDocument], clean=lambda text: text):
    """A `bioc.BioCCollection`; `clean` maps every text written (BioC XML replaces what XML cannot hold)."""
    import bioc

    collection = bioc.BioCCollection()
    collection.source, collection.date, collection.key = "ner", "", BIOC_KEY  # no date: reruns match
    for tagged in documents:
        document = bioc.BioCDocument()
        document.id = clean(tagged.document.id)
        number = 0
        for passage, entities in _pairs(tagged):
            out = bioc.BioCPassage.of_text(clean(passage.text), passage.offset)
            out.infons["type"] = passage.kind
            if passage.label is not None:
                out.infons["section"] = clean(passage.label)
            for entity in entities:
                number += 1
                annotation = bioc.BioCAnnotation()
                annotation.id = f"T{number}"
                annotation.infons["type"] = clean(entity.type)
                annotation.infons["score"] = str(_score(entity))
                annotation.add_location(
                    bioc.BioCLocation(passage.offset + entity.start, entity.end - entity.start)
                )
                annotation.text = clean(entity.text)
                out.add_annotation(annotation)
            document.add_passage(out)
        collection.add_document(document)
    return collection


def _bioc_xml(documents: Sequence[TaggedDocument]) -> str:
    from bioc import biocxml

    # one space for each character XML cannot hold keeps every length, so every offset stays right
    return biocxml.dumps(_bioc_collection(documents, lambda text: NOT_XML.sub(" ", text)))


def _bioc_json(documents: Sequence[TaggedDocument]) -> str:
    from bioc import biocjson

    return biocjson.dumps(_bioc_collection(documents), indent=1) + "\n"
