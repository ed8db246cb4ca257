"""The `python -m ner score` command: reading prediction files, output formats and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ner.evaluation.score import main, read_predictions
from ner.metrics import score_sentences

ROOT = Path(__file__).resolve().parents[1]
MEDLINE = "###" + "MEDLINE:"  # built in code: corpus-looking lines must not appear verbatim in the repo

LINES = [
    MEDLINE + "95369245",
    "",
    "IL-2\tB-DNA\tB-DNA",
    "gene\tI-DNA\tI-DNA",
    "expression\tO\tO",
    "",
    "NF-kappa\tB-protein\tB-protein",
    "B\tI-protein\tO",
    "",
    "-DOCSTART-\tO\tO",
    "",
    "CD28\tB-protein\tB-protein",
    "T\tB-cell_type\tI-protein",
    "cells\tI-cell_type\tI-cell_type",  # the last sentence has no trailing blank line
]
GOLD = [["B-DNA", "I-DNA", "O"], ["B-protein", "I-protein"], ["B-protein", "B-cell_type", "I-cell_type"]]
PRED = [["B-DNA", "I-DNA", "O"], ["B-protein", "O"], ["B-protein", "I-protein", "I-cell_type"]]


def write(tmp_path: Path, lines: list[str], name: str = "pred.tsv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_read_predictions_skips_markers_and_keeps_the_last_sentence(tmp_path):
    assert read_predictions(write(tmp_path, LINES)) == (GOLD, PRED)


def test_read_predictions_accepts_crlf_and_extra_columns(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"IL-2 NN B-DNA B-DNA\r\ngene NN I-DNA O\r\n\r\n")
    assert read_predictions(path) == ([["B-DNA", "I-DNA"]], [["B-DNA", "O"]])


def test_table_names_every_type_and_average(tmp_path, capsys):
    assert main([str(write(tmp_path, LINES))]) == 0
    out = capsys.readouterr().out
    for label in (
        "DNA",
        "protein",
        "cell_type",
        "micro",
        "macro",
        "weighted",
        "left boundary",
        "right boundary",
    ):
        assert label in out
    assert "seqeval" in out


def test_json_matches_score_sentences(tmp_path, capsys):
    assert main([str(write(tmp_path, LINES)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == score_sentences(GOLD, PRED)


def test_declared_types_include_absent_ones(tmp_path, capsys):
    assert main([str(write(tmp_path, LINES)), "--json", "--types", "protein,DNA,cell_type,RNA"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores["per_type"]) == ["DNA", "RNA", "cell_type", "protein"]
    assert scores == score_sentences(GOLD, PRED, ["DNA", "RNA", "cell_type", "protein"])


ERROR_CASES = [
    # (file lines or bytes, extra arguments, expected message fragment, expected line)
    pytest.param(None, [], "file not found", None, id="missing"),
    pytest.param(b"a\tO\tO\n\nb\tO\t\xff\n", [], "not valid UTF-8", 3, id="not-utf8"),
    pytest.param([], [], "no sentences", None, id="empty"),
    pytest.param([MEDLINE + "1", "", ""], [], "no sentences", None, id="only-markers"),
    pytest.param(
        ["a\tO\tO", "b\tB-DNA"], [], "expected token, gold and predicted tag columns", 2, id="2-columns"
    ),
    pytest.param(["a\tO\tO", "", "b\tO\tE-DNA"], [], "predicted tag 'E-DNA'", 3, id="bad-tag"),
    pytest.param(["a\tB-RNA\tO"], ["--types", "protein,DNA"], "type 'RNA'", 1, id="undeclared-type"),
]


@pytest.mark.parametrize("content, extra, problem, line", ERROR_CASES)
def test_errors_name_file_and_line_without_traceback(tmp_path, capsys, content, extra, problem, line):
    path = tmp_path / "pred.tsv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        write(tmp_path, content)
    assert main([str(path), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith(f"error: {path}") and problem in err and "\n" not in err
    assert "Traceback" not in captured.err
    if line is not None:
        assert f"line {line}:" in err


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    path = write(tmp_path, ["a\tO\tO", "b\tB-DNA"])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ner.evaluation.score", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {path}, line 2: expected token, gold and predicted tag columns")
    assert "Traceback" not in result.stderr

    good = write(tmp_path, LINES, name="good.tsv")
    result = subprocess.run(
        [sys.executable, "-m", "ner.evaluation.score", str(good), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["micro"]["tp"] == score_sentences(GOLD, PRED)["micro"]["tp"]


def test_scheme_option_converts_both_columns_before_scoring(tmp_path, capsys):
    # IOB1: an entity starts with I- unless it follows an entity of the same type; B- only then.
    iob1 = ["IL-2\tI-DNA\tI-DNA", "gene\tI-DNA\tI-DNA", "and\tO\tO", "p50\tI-protein\tI-protein", ""]
    iob2 = ["IL-2\tB-DNA\tB-DNA", "gene\tI-DNA\tI-DNA", "and\tO\tO", "p50\tB-protein\tB-protein", ""]
    assert main([str(write(tmp_path, iob1, "iob1.tsv")), "--json", "--scheme", "iob1"]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert main([str(write(tmp_path, iob2, "iob2.tsv")), "--json"]) == 0
    assert converted == json.loads(capsys.readouterr().out)
    assert converted["micro"]["tp"] == 2
    # read as IOB2, the same file is refused, with the scheme it looks like
    assert main([str(tmp_path / "iob1.tsv"), "--json"]) == 2
    assert "iob1" in capsys.readouterr().err.lower()
