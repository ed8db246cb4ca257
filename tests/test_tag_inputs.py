"""Reading bulk-tagging shards: PubMed XML (plain, gzipped, hostile, broken), plain text and JSON lines, and
finding shards in folders and globs. Expected records are written out by hand from the fixtures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ner.errors import NerError
from ner.tagging.inputs import (
    BadRecord,
    Deleted,
    Document,
    Passage,
    ShardError,
    find_shards,
    read_shard,
)

FIXTURE = Path(__file__).parent / "data" / "tagging" / "pubmed.xml"

# tests/data/tagging/pubmed.xml, record by record (BadRecords as (id, article number, line, reason start))
EXPECTED_PUBMED = [
    Document(
        "100",
        (
            Passage("title", "IL-2 gene expression in T cells.", 0),
            Passage("abstract", "NF-kappa B binds the IL-2 promoter.", 33),  # the line break: one space
        ),
    ),
    Document(
        "101",
        (
            Passage("title", "Role of TNF-\u03b1 and Ca2+ in \u03b2-cells", 0),
            Passage("abstract", "BACKGROUND: The p50 subunit of NF-\u03baB.", 34, "BACKGROUND"),
            Passage("abstract", "METHODS: We measured x>2 & more.", 72, "METHODS"),
        ),
    ),
    Document("102", (Passage("title", "A title without an abstract.", 0),)),
    Deleted(("90", "91")),
    (None, 5, 42, "a PubmedArticle without a PMID"),
    Document("103", (Passage("title", "Gene Reviews", 0), Passage("abstract", "The CD4 receptor.", 13))),
    ("104", 7, 56, "empty document"),
    Document("105", (Passage("title", "", 0), Passage("abstract", "Only an abstract.", 1))),
    Document(
        "106",
        (Passage("title", "The last article.", 0), Passage("abstract", "It is read after the bad ones.", 18)),
    ),
]


def assert_pubmed_records(records: list, path: Path) -> None:
    assert len(records) == len(EXPECTED_PUBMED)
    for record, expected in zip(records, EXPECTED_PUBMED, strict=True):
        if isinstance(expected, tuple):
            doc_id, number, line, reason = expected
            assert isinstance(record, BadRecord)
            assert (record.id, record.where) == (doc_id, f"{path}: article {number} (line {line})")
            assert record.reason.startswith(reason)
        else:
            assert record == expected


def test_pubmed_fixture_records_in_file_order():
    assert_pubmed_records(list(read_shard(FIXTURE)), FIXTURE)


def test_pubmed_passage_offsets_are_pubtator_offsets():
    # independent of chain_passages: the PubTator text is title + " " + abstract sections
    for record in read_shard(FIXTURE):
        if isinstance(record, Document):
            full = " ".join(passage.text for passage in record.passages)
            for passage in record.passages:
                assert full[passage.offset : passage.offset + len(passage.text)] == passage.text


def test_pubmed_gzip_reads_the_same(tmp_path):
    path = tmp_path / "baseline.xml.gz"
    path.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    assert_pubmed_records(list(read_shard(path)), path)


def test_external_entities_and_dtds_are_never_loaded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    (tmp_path / "evil.dtd").write_text('<!ENTITY leak "TOP-SECRET-CONTENT">', encoding="utf-8")
    path = tmp_path / "attack.xml"
    path.write_text(
        f"""<?xml version="1.0"?>
<!DOCTYPE PubmedArticleSet SYSTEM "{(tmp_path / "evil.dtd").as_uri()}" [
<!ENTITY x SYSTEM "{secret.as_uri()}">
<!ENTITY % p SYSTEM "{(tmp_path / "evil.dtd").as_uri()}">
%p;
]>
<PubmedArticleSet>
<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>Title &x;</ArticleTitle>
</Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>2</PMID><Article><ArticleTitle>Fine</ArticleTitle><Abstract>
<AbstractText>Text &leak; here</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle>
<PubmedArticle><MedlineCitation><PMID>3</PMID><Article><ArticleTitle>Safe title</ArticleTitle>
</Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>
""",
        encoding="utf-8",
    )
    records = list(read_shard(path))
    assert "TOP-SECRET" not in repr(records)
    assert [type(record) for record in records] == [BadRecord, BadRecord, Document]
    assert [record.id for record in records] == ["1", "2", "3"]
    assert "&x;" in records[0].reason and "&leak;" in records[1].reason
    assert records[2].passages == (Passage("title", "Safe title", 0),)


ARTICLE = "<PubmedArticle><MedlineCitation><PMID>{}</PMID><Article><ArticleTitle>T{}</ArticleTitle></Article>"
ARTICLE += "</MedlineCitation></PubmedArticle>"


def test_broken_xml_yields_what_was_read_then_names_the_line(tmp_path):
    path = tmp_path / "broken.xml"
    lines = ["<PubmedArticleSet>", ARTICLE.format(1, 1), ARTICLE.format(2, 2)]
    lines += ["<PubmedArticle><MedlineCitation><PMID>3</PMID><Article>", "</MedlineCitation></PubmedArticle>"]
    lines += [ARTICLE.format(4, 4), "</PubmedArticleSet>"]
    path.write_text("\n".join(lines), encoding="utf-8")
    records = []
    with pytest.raises(ShardError, match="not well-formed") as error:
        records.extend(read_shard(path))
    assert [record.id for record in records] == ["1", "2"]
    assert error.value.line == 5 and str(path) in str(error.value)


def test_truncated_gzip_is_a_shard_error_after_a_prefix(tmp_path):
    body = "\n".join(ARTICLE.format(n, "x" * (n % 97)) for n in range(1, 3000))
    data = gzip.compress(f"<PubmedArticleSet>\n{body}\n</PubmedArticleSet>\n".encode())
    path = tmp_path / "cut.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    records = []
    with pytest.raises(ShardError, match="cannot be read"):
        records.extend(read_shard(path))
    assert [record.id for record in records] == [str(n) for n in range(1, len(records) + 1)]


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("plain.xml", b"IL-2 gene expression\n", "not well-formed"),
        ("binary.xml", bytes(range(256)) * 4, "not well-formed"),
        ("empty.xml", b"", "not well-formed"),
        ("html.xml", b"<html><body>hi</body></html>", "root <html>"),
        ("notgzip.xml.gz", b"<PubmedArticleSet/>", "cannot be read"),
        ("binary.txt", b"text\n\x00\x01\x02binary\n", "binary file"),
        ("binary.jsonl", b'{"id": 1}\x00\n', "binary file"),
    ],
)
def test_unreadable_shards(tmp_path, name, data, match):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ShardError, match=match):
        list(read_shard(path))


def test_plain_text_one_document_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    lines = [b"\xef\xbb\xbfIL-2 gene", b"", b"   ", b"bad \xff byte", "caf\u00e9 \u03b2".encode(), b"crlf\r"]
    path.write_bytes(b"\n".join(lines) + b"\nno newline at the end")
    records = list(read_shard(path))
    assert records[0] == Document("notes:1", (Passage("text", "IL-2 gene", 0),))  # the BOM is dropped
    assert records[1] == BadRecord("notes:4", f"{path}:4", "not valid UTF-8 (byte 0xff at column 5)")
    assert records[2:] == [
        Document("notes:5", (Passage("text", "caf\u00e9 \u03b2", 0),)),
        Document("notes:6", (Passage("text", "crlf", 0),)),
        Document("notes:7", (Passage("text", "no newline at the end", 0),)),
    ]


def test_plain_text_gzip(tmp_path):
    path = tmp_path / "notes.txt.gz"
    path.write_bytes(gzip.compress(b"one\ntwo\n"))
    assert [record.id for record in read_shard(path)] == ["notes:1", "notes:2"]


JSONL_LINES = [
    json.dumps({"id": "a", "text": "IL-2 gene", "source": "ignored"}),
    json.dumps({"id": 7, "title": "Title", "abstract": "Abstract \u03b2."}),
    json.dumps({"id": "t", "title": "Only a title", "abstract": None}),
    "{not json",
    json.dumps({"id": "e", "text": "  "}),
    json.dumps({"text": "no id"}),
    json.dumps({"id": "p|ipe", "text": "x"}),
    json.dumps(["a", "list"]),
    json.dumps({"id": "s", "text": "\ud800"}),
    json.dumps({"id": "n", "text": 5}),
    json.dumps({"id": "both", "text": "x", "title": "y"}),
    json.dumps({"id": "none"}),
    "",
    json.dumps({"id": "last", "text": "still read"}),
]


def test_jsonl_both_shapes_and_bad_lines(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(JSONL_LINES) + "\n", encoding="utf-8")
    records = list(read_shard(path))
    assert records[:3] == [
        Document("a", (Passage("text", "IL-2 gene", 0),)),
        Document("7", (Passage("title", "Title", 0), Passage("abstract", "Abstract \u03b2.", 6))),
        Document("t", (Passage("title", "Only a title", 0),)),
    ]
    bad = records[3:-1]
    assert all(isinstance(record, BadRecord) for record in bad)
    assert [record.where for record in bad] == [f"{path}:{n}" for n in range(4, 13)]
    assert [record.id for record in bad] == [None, "e", None, None, None, "s", "n", "both", "none"]
    reasons = ["invalid JSON", "empty document", 'needs an "id"', "id 'p|ipe' holds '|'", "expected a JSON"]
    reasons += ['"text" holds a lone surrogate', '"text" must be a string', "needs", "needs"]
    for record, reason in zip(bad, reasons, strict=True):
        assert record.reason.startswith(reason), record
    assert records[-1] == Document("last", (Passage("text", "still read", 0),))


def test_jsonl_bad_utf8_line(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "x", "text": "caf\xe9"}\n{"id": "y", "text": "ok"}\n'))
    records = list(read_shard(path))
    assert records[0] == BadRecord(None, f"{path}:1", "not valid UTF-8 (byte 0xe9 at column 25)")
    assert records[1] == Document("y", (Passage("text", "ok", 0),))


def test_find_shards_folders_globs_and_duplicates(tmp_path):
    for name in ["a/one.xml", "a/b/two.xml.gz", "a/b/three.jsonl", "a/four.txt", "a/.hidden.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "a" / "readme.md").write_text("not a shard", encoding="utf-8")
    (tmp_path / "a" / ".git").mkdir()
    (tmp_path / "a" / ".git" / "x.txt").write_text("x", encoding="utf-8")
    found = find_shards(
        [str(tmp_path / "a"), str(tmp_path / "a" / "one.xml"), str(tmp_path / "**" / "*.jsonl")]
    )
    names = ["a/b/three.jsonl", "a/b/two.xml.gz", "a/four.txt", "a/one.xml"]
    assert found == sorted((tmp_path / name).resolve() for name in names)
    assert find_shards([str(tmp_path / "a" / "*.txt")]) == [(tmp_path / "a" / "four.txt").resolve()]


@pytest.mark.parametrize(
    "name, match", [("missing/*.xml", "matches no file"), ("a", "holds no shards"), ("a/x.md", "unknown")]
)
def test_find_shards_names_an_input_without_shards(tmp_path, name, match):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.md").write_text("x", encoding="utf-8")
    with pytest.raises(NerError, match=match):
        find_shards([str(tmp_path / name)])
