"""`ner.Predictor` and `python -m ner predict`: inference reproduces the run's own test predictions.

The quickstart runs that these tests (and test_analysis, test_export, test_notebooks) use are the session
fixtures `softmax_run` and `crf_run` of conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ner
from ner.data.reader import read_iob2
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.inference.predict import main
from ner.inference.predictor import Entity, Predictor, TaggedSentence, _entities
from ner.inference.text import split_sentences, tokenize

ROOT = Path(__file__).resolve().parents[1]


def best_checkpoint(run: Path) -> Path:
    """The checkpoint the run's test predictions came from."""
    return run / "checkpoints" / json.loads((run / "metrics.json").read_text())["best_checkpoint"]


@pytest.fixture(scope="session")
def softmax_predictor(softmax_run) -> Predictor:
    return Predictor.from_checkpoint(best_checkpoint(softmax_run), device="cpu")


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_tags_reproduce_the_runs_test_predictions(head, softmax_run, crf_run):
    run = {"softmax": softmax_run, "crf": crf_run}[head]
    sentences = read_iob2(run / "predictions" / "test.iob2", with_predictions=True).sentences
    predictor = Predictor.from_checkpoint(best_checkpoint(run), device="cpu", batch_size=7)
    assert predictor.predict([list(s.tokens) for s in sentences]) == [list(s.predicted) for s in sentences]
    assert sum(tag != "O" for s in sentences for tag in s.predicted) > 0  # not a vacuous comparison


@pytest.mark.slow
def test_checkpoint_carries_its_tokenizer(softmax_run, softmax_predictor):
    checkpoint = torch.load(best_checkpoint(softmax_run), map_location="cpu", weights_only=True)
    assert "tokenizer.json" in checkpoint["tokenizer_files"]
    tokenizer = softmax_predictor.tokenizer
    assert tokenizer.name_or_path != softmax_predictor.model.hparams.encoder  # rebuilt from the checkpoint
    original = load_tokenizer(softmax_predictor.model.hparams.encoder)
    text = "NF-kappa B activation in Jurkat cells (IL-2R alpha)"
    assert tokenizer(text)["input_ids"] == original(text)["input_ids"]


@pytest.mark.slow
def test_raw_text_entities_agree_with_word_tags(softmax_predictor):
    sentences = read_iob2(ROOT / "ner" / "data" / "sample" / "test.iob2").sentences[:12]
    text = "  ".join(" ".join(s.tokens) for s in sentences)  # one document, GENIA tokens already spaced
    found = softmax_predictor.predict(text)
    tagged = softmax_predictor.tag([[t.text for t in s] for s in split_sentences(text)])
    assert found and all(text[e.start : e.end] == e.text and 0 < e.score <= 1 for e in found)
    assert {e.type for e in found} <= {label[2:] for label in softmax_predictor.labels if label != "O"}
    # every entity is a B-begun chunk of the word tags, with the mean of its words' scores
    begun = sum(tag.startswith("B-") for t in tagged for tag in t.tags)
    assert len(found) == begun
    starts = [tag[2:] for t in tagged for tag in t.tags if tag.startswith("B-")]
    assert [e.type for e in found] == starts


@pytest.mark.slow
def test_batching_and_windowing_keep_every_word(softmax_predictor, softmax_run):
    sample = read_iob2(ROOT / "ner" / "data" / "sample" / "test.iob2").sentences
    sentences = [list(s.tokens) for s in sorted(sample, key=len)[-8:]]  # the longest ones
    one = Predictor(softmax_predictor.model, softmax_predictor.tokenizer, batch_size=1).tag(sentences)
    many = softmax_predictor.tag(sentences)
    assert [t.tags for t in one] == [t.tags for t in many]
    assert all(
        abs(a - b) < 1e-4
        for x, y in zip(one, many, strict=True)
        for a, b in zip(x.scores, y.scores, strict=True)
    )
    # 16-subword windows: long sentences are cut into overlapping windows, never truncated
    narrow = Predictor(softmax_predictor.model, softmax_predictor.tokenizer, max_length=16).tag(sentences)
    assert [len(t.tags) for t in narrow] == [len(s) for s in sentences]
    assert all(0 < score <= 1 for t in narrow for score in t.scores)
    for options, message in (
        ({"max_length": 100_000}, "positions"),
        ({"max_length": 2}, "no room"),
        ({"batch_size": 0}, "positive"),
        ({"stride": 0}, "positive"),
    ):
        with pytest.raises(NerError, match=message):
            Predictor(softmax_predictor.model, softmax_predictor.tokenizer, **options)


@pytest.mark.slow
def test_windows_default_to_the_training_ones(softmax_run, softmax_predictor, tmp_path):
    """A model trained with `data.max_length=16` is applied with 16-subword windows unless told otherwise."""
    checkpoint = torch.load(best_checkpoint(softmax_run), map_location="cpu", weights_only=True)
    assert (checkpoint["hyper_parameters"]["max_length"], checkpoint["hyper_parameters"]["stride"]) == (
        128,
        None,
    )
    checkpoint["hyper_parameters"].update(max_length=16, stride=4)
    path = tmp_path / "narrow.ckpt"
    torch.save(checkpoint, path)
    narrow = Predictor.from_checkpoint(path, device="cpu")
    assert (narrow.max_length, narrow.stride) == (16, 4)
    sentences = [list(s.tokens) for s in read_iob2(ROOT / "ner" / "data" / "sample" / "test.iob2").sentences]
    explicit = Predictor(softmax_predictor.model, softmax_predictor.tokenizer, max_length=16, stride=4)
    assert [t.scores for t in narrow.tag(sentences)] == [t.scores for t in explicit.tag(sentences)]
    assert [t.scores for t in narrow.tag(sentences)] != [t.scores for t in softmax_predictor.tag(sentences)]
    wide = Predictor.from_checkpoint(path, device="cpu", max_length=128, stride=64)  # explicit wins
    assert (wide.max_length, wide.stride) == (128, 64)


def test_entities_are_read_as_the_official_scorer_reads_tags():
    tokens = tokenize("IL-2 gene in T cells and CD28 here")
    tags = ("B-DNA", "I-RNA", "O", "I-cell_type", "I-cell_type", "O", "B-protein", "O")
    scores = (0.9, 0.7, 0.5, 0.4, 0.4, 0.5, 0.8, 0.9)
    found = _entities("IL-2 gene in T cells and CD28 here", tokens, TaggedSentence((), tags, scores))
    # an I- after O starts no entity; an I- of another type continues the open one (evalIOB2.pl)
    assert found == [
        Entity("DNA", 0, 9, "IL-2 gene", pytest.approx(0.8)),
        Entity("protein", 25, 29, "CD28", 0.8),
    ]


@pytest.mark.slow
def test_empty_inputs(softmax_predictor):
    assert softmax_predictor.predict("") == [] and softmax_predictor.predict([]) == []
    assert softmax_predictor.predict([[], ["IL-2"]])[0] == []
    with pytest.raises(NerError, match="non-empty"):
        softmax_predictor.predict([["IL-2", ""]])
    with pytest.raises(NerError):
        softmax_predictor.predict([1, 2])


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_gives_the_cpu_tags(softmax_run, softmax_predictor):
    sentences = [list(s.tokens) for s in read_iob2(ROOT / "ner" / "data" / "sample" / "test.iob2").sentences]
    gpu = Predictor.from_checkpoint(best_checkpoint(softmax_run), device="cuda")
    assert gpu.device.type == "cuda"
    assert gpu.predict(sentences) == softmax_predictor.predict(sentences)


def test_predictor_is_exported_lazily():
    assert ner.Predictor is Predictor


# ------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_text_and_jsonl(softmax_run, tmp_path):
    ckpt = str(best_checkpoint(softmax_run))
    text = "IL-2 gene expression requires NF-kappa B in human T cells.\n\nThe p50 subunit binds DNA.\n"
    result = subprocess.run(
        [sys.executable, "-m", "ner.inference.predict", "--ckpt", ckpt, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == [1, 3]
    for record in records:
        assert all(record["text"][e["start"] : e["end"]] == e["text"] for e in record["entities"])

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": "a", "tokens": ["IL-2", "gene"]}\n"CD28 binds B7 ."\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["--ckpt", ckpt, str(jsonl), "--output", str(out), "--device", "cpu", "--progress"]) == 0
    first, second = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert first["id"] == "a" and len(first["tags"]) == len(first["scores"]) == 2
    assert second["text"] == "CD28 binds B7 ." and "entities" in second


def test_cli_precision_option(softmax_run, tmp_path, capsys):
    ckpt = str(best_checkpoint(softmax_run))
    source = tmp_path / "in.txt"
    source.write_text("IL-2 gene expression requires NF-kappa B in human T cells.\n", encoding="utf-8")
    for precision in ("bf16", "int8"):  # closeness to float32: test_benchmarks.py; F1 costs: the benchmark
        out = tmp_path / f"{precision}.jsonl"
        assert (
            main(["--ckpt", ckpt, str(source), "-o", str(out), "--device", "cpu", "--precision", precision])
            == 0
        )
        record = json.loads(out.read_text(encoding="utf-8"))
        assert all(record["text"][e["start"] : e["end"]] == e["text"] for e in record["entities"])
    with pytest.raises(SystemExit) as exited:
        main(["--ckpt", ckpt, str(source), "--precision", "fp8"])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeIL-2\n", "not valid UTF-8"),
        (b"  \n\n", "is empty"),
        (b'{"text": "a"}\n{"text": 3}\n', 'line 2: "text" must be a string'),
        (b'{"tokens": ["a", ""]}\n', "list of non-empty strings"),
        (b'{"text": "a"\n', "line 1: not valid JSON"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "input.jsonl"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["--ckpt", str(tmp_path / "never-loaded.ckpt"), str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_missing_input_and_checkpoint(tmp_path, capsys):
    for argv, message in (
        (["--ckpt", "x.ckpt", str(tmp_path / "absent.txt")], "file not found"),
        (["--ckpt", str(tmp_path / "absent.ckpt"), str(ROOT / "README.md")], "checkpoint not found"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
