"""Writing tagged documents: every format is parsed back (JSON, a small PubTator parser, the `bioc` readers)
and every entity's offsets must slice exactly its text, with non-ASCII, non-BMP and line-breaking text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bioc import biocjson, biocxml, pubtator

from ner.errors import NerError
from ner.inference.predictor import Entity
from ner.tagging.inputs import Document, Passage, chain_passages, read_shard
from ner.tagging.outputs import FORMATS, SUFFIXES, TaggedDocument, render

FIXTURE = Path(__file__).parent / "data" / "tagging" / "pubmed.xml"
LINE_BREAKS = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def entity(text: str, mention: str, kind: str, score: float = 0.87654321, nth: int = 0) -> Entity:
    """The `nth` occurrence of `mention` in `text` as an entity (offsets found by search, not by hand)."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return Entity(kind, start, start + len(mention), mention, score)


def tagged(
    doc_id: str, parts: list[tuple[str, str, str | None]], mentions: list[list[tuple]]
) -> TaggedDocument:
    document = Document(doc_id, chain_passages(parts))
    entities = tuple(
        tuple(entity(passage.text, *mention) for mention in passage_mentions)
        for passage, passage_mentions in zip(document.passages, mentions, strict=True)
    )
    return TaggedDocument(document, entities)


TITLE = "\u03b2-Catenin and IL-2\tin 𝛼-cells"  # a tab, a non-BMP character (U+1D6FC)
SECTION = (
    "BACKGROUND: NF-\u03baB p50\nbinds the IL-2 gene|promoter\r\nin T cells\u2028(human) \x0b\x0c\x85 CD4."
)
DOCUMENTS = [
    tagged(
        "12345",
        [
            ("title", TITLE, None),
            ("abstract", SECTION, "BACKGROUND"),
            ("abstract", "METHODS: IL-2 assay.", "METHODS"),
        ],
        [
            [("\u03b2-Catenin", "protein"), ("IL-2", "protein"), ("𝛼-cells", "cell_type")],
            [
                ("NF-\u03baB p50\nbinds", "protein"),
                ("IL-2 gene|promoter", "DNA"),
                ("T cells\u2028(human)", "cell_type"),
                ("\x0c\x85 CD4", "protein"),
            ],
            [("IL-2", "protein", 0.5)],
        ],
    ),
    tagged(
        "notes:3",
        [("text", "Plain text about IL-2 and IL-2R.", None)],
        [[("IL-2", "protein"), ("IL-2R", "protein")]],
    ),
    tagged(
        "105",
        [("title", "", None), ("abstract", "Only an abstract on CD28.", None)],
        [[], [("CD28", "protein")]],
    ),
    tagged("empty-result", [("text", "Nothing to find here.", None)], [[]]),
]


def expected_mentions(documents: list[TaggedDocument]) -> list[tuple[str, int, int, str, str]]:
    """(id, document start, end, text, type) of every entity: the PubTator/BioC view of the documents."""
    return sorted(
        (t.document.id, p.offset + e.start, p.offset + e.end, e.text, e.type)
        for t in documents
        for p, entities in zip(t.document.passages, t.entities, strict=True)
        for e in entities
    )


def document_text(document: Document) -> str:
    return " ".join(passage.text for passage in document.passages)


def test_jsonl_round_trip():
    output = render("jsonl", DOCUMENTS)
    lines = output.splitlines()  # str.splitlines: no line break inside a record may split it
    assert len(lines) == len(DOCUMENTS) and output.endswith("\n")
    for line, t in zip(lines, DOCUMENTS, strict=True):
        record = json.loads(line)
        assert record["id"] == t.document.id
        assert len(record["passages"]) == len(t.document.passages)
        for out, passage, entities in zip(record["passages"], t.document.passages, t.entities, strict=True):
            assert (out["kind"], out.get("label"), out["offset"], out["text"]) == (
                passage.kind,
                passage.label,
                passage.offset,
                passage.text,
            )
            assert ("label" in out) == (passage.label is not None)
            for got in out["entities"]:
                assert out["text"][got["start"] : got["end"]] == got["text"]
            assert [(g["type"], g["start"], g["end"], g["text"]) for g in out["entities"]] == [
                (e.type, e.start, e.end, e.text) for e in entities
            ]
            assert [g["score"] for g in out["entities"]] == [round(e.score, 4) for e in entities]


def parse_pubtator(output: str) -> list[dict]:
    """A strict PubTator reader: a blank line ends a block; `ID|t|`, `ID|a|`, then 6 tab-separated fields."""
    assert output.endswith("\n\n")
    documents = []
    for block in output[:-2].split("\n\n"):
        lines = block.split("\n")
        doc_id, kind, title = lines[0].split("|", 2)
        abstract_id, kind_a, abstract = lines[1].split("|", 2)
        assert (kind, kind_a, abstract_id) == ("t", "a", doc_id)
        mentions = []
        for line in lines[2:]:
            fields = line.split("\t")
            assert len(fields) == 6 and fields[0] == doc_id and fields[5] == "-"
            mentions.append((doc_id, int(fields[1]), int(fields[2]), fields[3], fields[4]))
        documents.append({"id": doc_id, "title": title, "abstract": abstract, "mentions": mentions})
    return documents


def one_line(text: str) -> str:
    return "".join(" " if char in LINE_BREAKS else char for char in text)


def test_pubtator_round_trip():
    output = render("pubtator", DOCUMENTS)
    parsed = parse_pubtator(output)
    assert [d["id"] for d in parsed] == [t.document.id for t in DOCUMENTS]
    mentions = []
    for d, t in zip(parsed, DOCUMENTS, strict=True):
        passages = t.document.passages
        assert d["title"] == one_line(passages[0].text)
        assert d["abstract"] == one_line(" ".join(passage.text for passage in passages[1:]))
        full = d["title"] + (" " + d["abstract"] if len(passages) > 1 else "")
        assert len(full) == len(document_text(t.document))  # same length: offsets carry over
        for _, start, end, text, _ in d["mentions"]:
            assert full[start:end] == text
        mentions += d["mentions"]
    assert sorted(mentions) == [
        (i, s, e, one_line(text), k) for i, s, e, text, k in expected_mentions(DOCUMENTS)
    ]
    # the bioc package's own PubTator reader (str.splitlines, first `|t|` wins) finds the same mentions
    read = pubtator.loads(output)
    assert [(doc.pmid, len(doc.annotations)) for doc in read] == [
        (d["id"], len(d["mentions"])) for d in parsed
    ]


def check_bioc(collection, documents: list[TaggedDocument], xml: bool) -> None:
    assert [doc.id for doc in collection.documents] == [t.document.id for t in documents]
    found = []
    for doc, t in zip(collection.documents, documents, strict=True):
        assert len(doc.passages) == len(t.document.passages)
        for out, passage in zip(doc.passages, t.document.passages, strict=True):
            assert (out.offset, out.infons["type"], out.infons.get("section")) == (
                passage.offset,
                passage.kind,
                passage.label,
            )
            # XML 1.0 cannot hold control characters other than tab and line ends: one space each
            expected = "".join(
                " " if xml and char in "\x0b\x0c\x1c\x1d\x1e" else char for char in passage.text
            )
            assert (out.text or "") == expected
            for annotation in out.annotations:
                (location,) = annotation.locations
                start = location.offset - out.offset
                assert out.text[start : start + location.length] == annotation.text
                assert float(annotation.infons["score"]) == pytest.approx(0.8765, abs=0.5)
                found.append(
                    (doc.id, location.offset, location.end, annotation.text, annotation.infons["type"])
                )
    xml_text = [
        (i, s, e, "".join(" " if xml and c in "\x0b\x0c" else c for c in text), k)
        for i, s, e, text, k in expected_mentions(documents)
    ]
    assert sorted(found) == xml_text


def test_bioc_xml_round_trip():
    output = render("bioc", DOCUMENTS)
    check_bioc(biocxml.loads(output), DOCUMENTS, xml=True)


def test_bioc_json_round_trip():
    output = render("biocjson", DOCUMENTS)
    check_bioc(biocjson.loads(output), DOCUMENTS, xml=False)


def test_pubmed_documents_through_every_format():
    """Real reader output, tagged by a stand-in for the model: every mention of a few names."""
    names = ["IL-2", "NF-\u03baB", "TNF-\u03b1", "\u03b2-cells", "CD4", "x>2 &"]
    documents = []
    for record in read_shard(FIXTURE):
        if isinstance(record, Document):
            entities = tuple(
                tuple(
                    entity(p.text, name, "protein", nth=n)
                    for name in names
                    for n in range(p.text.count(name))
                )
                for p in record.passages
            )
            documents.append(TaggedDocument(record, entities))
    assert sum(len(e) for t in documents for e in t.entities) == 7
    check_bioc(biocxml.loads(render("bioc", documents)), documents, xml=True)
    parsed = parse_pubtator(render("pubtator", documents))
    assert sorted(m for d in parsed for m in d["mentions"]) == expected_mentions(documents)
    lines = render("jsonl", documents).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [t.document.id for t in documents]


def test_formats_and_suffixes_agree():
    assert set(SUFFIXES) == set(FORMATS)
    assert all(render(fmt, []) is not None for fmt in FORMATS)


def test_render_refuses_entities_that_do_not_slice_their_text():
    document = Document("1", (Passage("text", "IL-2 gene", 0),))
    wrong_text = TaggedDocument(document, ((Entity("DNA", 0, 4, "IL-3", 0.9),),))
    outside = TaggedDocument(document, ((Entity("DNA", 5, 12, "gene", 0.9),),))
    too_few = TaggedDocument(document, ())
    moved = TaggedDocument(Document("1", (Passage("title", "A", 0), Passage("abstract", "B", 5))), ((), ()))
    for bad in (wrong_text, outside, too_few, moved):
        with pytest.raises(ValueError):
            render("jsonl", [bad])


def test_render_errors():
    with pytest.raises(NerError, match="unknown output format"):
        render("csv", [])
    bad_id = TaggedDocument(Document("a|b", (Passage("text", "x", 0),)), ((),))
    with pytest.raises(NerError, match="PubTator"):
        render("pubtator", [bad_id])
