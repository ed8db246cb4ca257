"""Label lists, BIO repair of training targets, and dev splits that never touch the test set."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import marker

from ner.data.reader import read_iob2
from ner.data.splits import make_split, scibert_dev_ids
from ner.errors import DataError
from ner.tags import build_labels, repair_bio


def test_label_list_is_deterministic_with_o_first():
    assert build_labels(["protein", "DNA", "RNA"]) == [
        "O",
        "B-DNA",
        "B-RNA",
        "B-protein",
        "I-DNA",
        "I-RNA",
        "I-protein",
    ]
    assert build_labels(["b", "a"]) == build_labels(["a", "b", "a"])


def test_repair_bio_only_fixes_impossible_continuations():
    tags, changed = repair_bio(["I-DNA", "I-DNA", "O", "I-RNA", "B-DNA", "I-RNA", "I-RNA"])
    assert tags == ["B-DNA", "I-DNA", "O", "B-RNA", "B-DNA", "B-RNA", "I-RNA"]
    assert changed == [0, 3, 5]


def _corpus(write, n_docs: int, name: str = "train.iob2"):
    lines = []
    for d in range(n_docs):
        lines += [marker(str(d)), "", f"w{d}\tO", "", f"v{d}\tB-DNA", ""]
    return read_iob2(write(name, lines))


def _split(corpus, dev, tmp_path, seed=0, test=None):
    return make_split(corpus, test or corpus, dev, Path(tmp_path), 0.2, seed, read_iob2)


def test_random_split_is_seeded_and_by_document(write, tmp_path):
    corpus = _corpus(write, 20)
    a, b, c = (_split(corpus, "random", tmp_path, seed) for seed in (1, 1, 2))
    assert a.dev == b.dev and a.dev != c.dev
    dev_docs = {s.doc_id for s in a.dev}
    assert len(dev_docs) == 4 and not dev_docs & {s.doc_id for s in a.train}
    assert len(a.dev) + len(a.train) == len(corpus.sentences)


def test_random_split_by_sentence_without_markers(write, tmp_path):
    corpus = read_iob2(write("t.iob2", [line for i in range(10) for line in (f"w{i}\tO", "")]))
    split = _split(corpus, "random", tmp_path)
    assert len(split.dev) == 2 and len(split.train) == 8 and "sentences" in split.description


def test_dev_file_test_and_auto(write, tmp_path):
    corpus = _corpus(write, 3)
    dev_file = write("dev.iob2", ["x\tB-DNA", ""])
    assert _split(corpus, str(dev_file), tmp_path).dev[0].tokens == ("x",)
    assert _split(corpus, "auto", tmp_path).description.startswith("file:")  # dev.iob2 sits in the data dir
    test = read_iob2(write("test.iob2", ["t\tO", ""]))
    on_test = _split(corpus, "test", tmp_path, test=test)
    assert on_test.dev_is_test and on_test.dev == test.sentences and "TEST" in on_test.description


def test_scibert_split_needs_its_abstracts(write, tmp_path):
    assert len(scibert_dev_ids()) == 200
    with pytest.raises(DataError, match="200 scibert dev abstracts are not in the file"):
        _split(_corpus(write, 3), "scibert", tmp_path)
    plain = read_iob2(write("p.iob2", ["w\tO", ""]))
    with pytest.raises(DataError, match="abstract markers"):
        _split(plain, "scibert", tmp_path)


def test_empty_split_is_an_error(write, tmp_path):
    one_sentence = read_iob2(write("one.iob2", ["w\tO", ""]))
    with pytest.raises(DataError, match="training split is empty"):
        _split(one_sentence, "random", tmp_path)


def test_scibert_split_on_the_real_corpus(jnlpba_dir, tmp_path):
    train = read_iob2(jnlpba_dir / "train.iob2")
    split = make_split(train, train, "scibert", jnlpba_dir, 0.1, 0, read_iob2)
    assert len({s.doc_id for s in split.dev}) == 200 and len({s.doc_id for s in split.train}) == 1800
