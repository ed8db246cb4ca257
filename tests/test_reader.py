"""The CoNLL-style reader: formats it accepts and the errors it gives (file and line named); tagging schemes
are tested in test_schemes.py."""

from __future__ import annotations

import pytest
from conftest import marker

from ner.data.reader import read_iob2
from ner.errors import DataError

TYPES = ["DNA", "protein"]


def test_reads_abstract_markers_and_keeps_last_sentence_without_blank_line(write):
    path = write(
        "a.iob2",
        [
            marker("1"),
            "",
            "IL-2\tB-protein",
            "gene\tO",
            "",
            "c-fos\tB-DNA",
            "promoter\tI-DNA",
            "",
            marker("2"),
            "",
            "NF-kappa\tB-protein",
            "B\tI-protein",
        ],
        trailing_newline=False,
    )
    corpus = read_iob2(path, TYPES)
    assert [s.tokens for s in corpus.sentences] == [
        ("IL-2", "gene"),
        ("c-fos", "promoter"),
        ("NF-kappa", "B"),
    ]
    assert [s.doc_id for s in corpus.sentences] == ["1", "1", "2"]
    assert [s.document for s in corpus.sentences] == [0, 0, 1]
    assert corpus.sentences[2].lines == (11, 12)
    assert corpus.has_doc_markers and corpus.doc_ids == ["1", "2"]


def test_reads_plain_and_conll_files(write):
    plain = read_iob2(write("p.iob2", ["IL-2\tB-protein", "", "", "x\tO"]), TYPES)
    assert len(plain.sentences) == 2 and not plain.has_doc_markers
    assert [s.document for s in plain.sentences] == [None, None] and plain.n_documents == 0
    conll = read_iob2(
        write("c.conll", ["-DOCSTART- -X- -X- O", "", "IL-2 NNP B-NP B-protein", "binds VBZ B-VP O", ""]),
        TYPES,
    )
    assert conll.sentences[0].tags == ("B-protein", "O")
    assert conll.sentences[0].tokens == ("IL-2", "binds")


def test_reads_predictions_columns(write):
    corpus = read_iob2(write("p.iob2", ["IL-2\tB-protein\tO", ""]), TYPES, with_predictions=True)
    assert corpus.sentences[0].tags == ("B-protein",) and corpus.sentences[0].predicted == ("O",)


def test_types_auto_infers_sorted(write):
    corpus = read_iob2(write("a.iob2", ["a\tB-zeta", "b\tB-alpha", ""]))
    assert corpus.types == ["alpha", "zeta"]


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        (["ok\tO", "lonely", ""], 2, "expected a token and a tag"),
        (["ok\tO", "x\tE-protein", ""], 2, "'E-protein' is not valid IOB2 (expected O or B-<type>/I-<type>)"),
        (["x\tB-"], 1, "'B-' has an empty entity type"),
        (["x\tO", "y\tI-DNA", ""], 2, "I-DNA after O is not valid IOB2; the file looks like IOB1"),
        (["ok\tO", "", "x\tB-gene"], 3, "'gene' is not declared"),
    ],
)
def test_bad_lines_name_file_and_line(write, lines, line, fragment):
    path = write("bad.iob2", lines)
    with pytest.raises(DataError) as error:
        read_iob2(path, TYPES)
    assert error.value.line == line and fragment in str(error.value) and str(path) in str(error.value)


def test_missing_empty_and_non_utf8_files(tmp_path, write):
    with pytest.raises(DataError, match="file not found"):
        read_iob2(tmp_path / "nope.iob2")
    with pytest.raises(DataError, match="no sentences"):
        read_iob2(write("empty.iob2", ["", marker("1"), ""]))
    bad = tmp_path / "latin1.iob2"
    bad.write_bytes(b"ok\tO\n\ncaf\xe9\tO\n")
    with pytest.raises(DataError) as error:
        read_iob2(bad)
    assert error.value.line == 3 and "UTF-8" in str(error.value)
    with pytest.raises(DataError, match="not a regular file"):
        read_iob2(tmp_path)


def test_real_corpus_counts_match_its_readme(jnlpba_dir):
    train = read_iob2(jnlpba_dir / "train.iob2", ["protein", "DNA", "RNA", "cell_type", "cell_line"])
    test = read_iob2(jnlpba_dir / "test.iob2", ["protein", "DNA", "RNA", "cell_type", "cell_line"])
    assert (len(train.sentences), sum(map(len, train.sentences)), len(train.doc_ids)) == (18639, 493491, 2000)
    # 404 abstracts, but two MEDLINE ids occur twice in the official evaluation file
    assert (len(test.sentences), sum(map(len, test.sentences)), len(test.doc_ids)) == (3856, 101039, 402)
    assert (train.n_documents, test.n_documents) == (2000, 404)  # documents by position, not by id
