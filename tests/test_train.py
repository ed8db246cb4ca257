"""End to end on the shipped sample: a real Hydra config, a real (tiny) training, every output checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_config import compose_config

from ner.data.reader import read_iob2
from ner.evaluation.score import main as score_main
from ner.model import NerTagger
from ner.tags import split_tag
from ner.train import run

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["experiment=quickstart", "progress_bar=false", "trainer.max_epochs=2"]


def train(tmp: Path, *overrides: str) -> tuple[Path, dict]:
    cfg = compose_config([*QUICK, f"output_dir={tmp}", *overrides])
    return tmp, run(cfg)


@pytest.fixture(scope="module")
def softmax_run(tmp_path_factory):
    return train(tmp_path_factory.mktemp("softmax"))


def test_run_writes_every_output(softmax_run):
    out, metrics = softmax_run
    for name in (
        "config.yaml",
        "labels.json",
        "metrics.json",
        "predictions/test.iob2",
        "predictions/dev.iob2",
    ):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "last.ckpt").is_file() and list(
        (out / "checkpoints").glob("best-epoch*.ckpt")
    )
    assert (out / "logs" / "metrics.csv").is_file() and (out / "tensorboard").is_dir()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for split in ("dev", "test"):
        assert set(saved[split]) == {
            "micro",
            "macro",
            "weighted",
            "per_type",
            "left_boundary",
            "right_boundary",
            "seqeval_default",
        }
        assert set(saved[split]["micro"]) == {"precision", "recall", "f1", "tp", "n_pred", "n_gold"}
    assert len(saved["epochs"]) == 2 and saved["best_epoch"] in (0, 1)
    assert saved["test"]["micro"]["n_gold"] == 76  # every gold entity of the sample's test file was scored


def test_test_predictions_are_line_for_line_the_input(softmax_run):
    out, _ = softmax_run
    cfg = compose_config(QUICK)
    source = (Path(cfg.data.dir) / "test.iob2").read_text().splitlines()
    written = (out / "predictions" / "test.iob2").read_text().splitlines()
    assert len(written) == len(source)
    for src, line in zip(source, written, strict=True):
        if not src.strip():
            assert line == src
        else:
            token, gold, pred = line.split("\t")
            assert [token, gold] == src.split("\t")
            split_tag(pred)


def test_score_cli_agrees_with_metrics_json(softmax_run, capsys):
    out, metrics = softmax_run
    assert score_main([str(out / "predictions" / "test.iob2"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics["test"]


def test_quickstart_ends_with_a_summary_and_without_library_noise(quickstart_console, softmax_run):
    out, metrics = softmax_run  # this module's run: its metrics.json block and last.ckpt
    assert metrics["model"]["decode"] == "argmax" and (out / "checkpoints" / "last.ckpt").is_file()
    console = quickstart_console
    assert "Run finished" in console and "micro F1" in console and "macro F1" in console
    for command in ("python -m ner score ", "python -m ner predict --ckpt ", "python -m ner export --ckpt "):
        assert command in console, command
    assert "best epoch:" in console and "model selection:" in console
    for noise in ("weights_only", "LeafSpec", "litlogger", "set_vital", "Traceback"):
        assert noise not in console, noise


def test_checkpoint_decodes_itself(softmax_run):
    out, metrics = softmax_run
    best = next((out / "checkpoints").glob("best-epoch*.ckpt"))
    model = NerTagger.load_from_checkpoint(best, map_location="cpu")
    assert model.labels == metrics["model"]["labels"] == json.loads((out / "labels.json").read_text())
    assert model.hparams.encoder_config["model_type"] == "bert"


def test_crf_with_bf16_mixed_precision_and_viterbi_validity(tmp_path):
    out, metrics = train(tmp_path, "head=crf", "trainer.precision=bf16-mixed", "trainer.max_epochs=1")
    corpus = read_iob2(out / "predictions" / "test.iob2", with_predictions=True)
    for sentence in corpus.sentences:  # the constrained CRF never emits an invalid I- tag
        previous = "O"
        for tag in sentence.predicted:
            prefix, kind = split_tag(tag)
            assert prefix != "I" or split_tag(previous)[1] == kind
            previous = tag
    assert metrics["model"]["head"] == "crf"


def test_dev_on_test_is_labelled_everywhere(tmp_path):
    out, metrics = train(tmp_path, "data.dev=test", "trainer.max_epochs=1", "++trainer.limit_train_batches=2")
    assert metrics["protocol"]["dev_is_test"] and "TEST" in metrics["protocol"]["selection"]
    assert "TEST" in (out / "predictions" / "PROTOCOL.txt").read_text()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "run.py"), *args, "progress_bar=false"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        check=False,
        timeout=300,
    )


def test_cli_bad_data_is_one_clear_message(tmp_path):
    (tmp_path / "train.iob2").write_text("IL-2\tB-protein\nbroken-line-without-tag\n\n")
    (tmp_path / "test.iob2").write_text("IL-2\tB-protein\n\n")
    result = _cli("experiment=quickstart", f"data.dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert f"{tmp_path / 'train.iob2'}, line 2" in result.stderr and "Traceback" not in result.stderr


def test_cli_missing_corpus_offline_says_where_to_put_it(tmp_path):
    result = _cli(
        "model=minilm",
        f"data.dir={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "data.download.train.url=http://127.0.0.1:9/none.tar.gz",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.iob2" in result.stderr and "Put " in result.stderr


def test_cli_scibert_offline_names_the_model_and_the_alternative(tmp_path, write):
    result = _cli(
        "model=scibert", "data=sample", f"hydra.run.dir={tmp_path / 'run'}", env={"HF_HUB_OFFLINE": "1"}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "allenai/scibert_scivocab_cased" in result.stderr and "model=minilm" in result.stderr
