"""A head defined in this file alone goes through train -> evaluate -> predict -> export, with no other file
changed: the model, evaluation, inference and export reach a head only through `ner.heads.Head`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_config import compose_config
from torch import Tensor, nn
from transformers import AutoModelForTokenClassification

from ner.data.reader import read_iob2
from ner.evaluation import evaluate
from ner.heads import HEADS
from ner.inference.export import export
from ner.inference.predictor import Predictor
from ner.train import run

pytestmark = pytest.mark.slow


class SmoothedSoftmaxHead(nn.Module):
    """Per-word softmax trained with label smoothing; argmax decoding, so it exports as a plain classifier."""

    decode_modes = ("argmax",)

    def __init__(self, labels: Sequence[str], smoothing: float = 0.1) -> None:
        super().__init__()
        self.labels, self.smoothing = list(labels), smoothing

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        mask = mask.bool()
        return F.cross_entropy(emissions[mask].float(), tags[mask], label_smoothing=self.smoothing)

    def decode(self, emissions: Tensor, mask: Tensor, mode: str | None = None) -> list[list[int]]:
        if mode not in (None, "argmax"):
            raise ValueError(f"unknown decode mode {mode!r}; expected one of ['argmax']")
        return [row[:n] for row, n in zip(emissions.argmax(-1).tolist(), mask.sum(1).tolist(), strict=True)]

    def scores(self, emissions: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
        probabilities = emissions.float().softmax(-1).tolist()
        return [[probabilities[i][t][label] for t, label in enumerate(p)] for i, p in enumerate(paths)]

    def export_decoder(self, mode: str | None = None) -> None:
        return None  # an argmax per word: a standard token classifier does it


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(HEADS, "toy", SmoothedSoftmaxHead)
        cfg = compose_config(
            [
                "experiment=quickstart",
                "head.name=toy",
                "~head.options.decode",  # the softmax head's option, replaced by the toy head's own
                "+head.options.smoothing=0.2",
                "trainer.max_epochs=2",
                "progress_bar=false",
                f"output_dir={out}",
            ]
        )
        run(cfg)
        yield out


def test_train_evaluate_predict_export(toy_run, tmp_path, capsys):
    metrics = json.loads((toy_run / "metrics.json").read_text())
    checkpoint = toy_run / "checkpoints" / metrics["best_checkpoint"]
    assert torch.load(checkpoint, weights_only=True)["hyper_parameters"]["head_options"] == {"smoothing": 0.2}
    run_tags = read_iob2(toy_run / "predictions" / "test.iob2", with_predictions=True).sentences

    # evaluate: re-decoding the run's checkpoint gives its own test scores
    assert evaluate.main([str(toy_run), "--json", "--device", "cpu"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["micro"]["f1"] == pytest.approx(metrics["test"]["micro"]["f1"])
    with pytest.raises(SystemExit) as exited:
        evaluate.main([str(toy_run), "--decode", "viterbi", "--device", "cpu"])
    assert exited.value.code == 2 and "viterbi" in capsys.readouterr().err

    # predict: the run's own test predictions, tag for tag
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    tagged = predictor.tag([list(s.tokens) for s in run_tags])
    assert [list(t.tags) for t in tagged] == [list(s.predicted) for s in run_tags]

    # export: a standard token classifier whose probabilities are the predictor's confidences
    hf = AutoModelForTokenClassification.from_pretrained(export(checkpoint, tmp_path / "hf")).eval()
    for sentence, tags in zip(run_tags[:5], tagged, strict=False):
        encoding = predictor.tokenizer(list(sentence.tokens), is_split_into_words=True, return_tensors="pt")
        first = [encoding.word_ids().index(w) for w in range(len(sentence))]
        with torch.no_grad():
            probabilities = hf(**encoding).logits[0, first].softmax(-1)  # (words, labels)
        labels = [predictor.labels.index(tag) for tag in tags.tags]
        chosen = probabilities[torch.arange(len(labels)), labels]
        torch.testing.assert_close(chosen, torch.tensor(tags.scores), atol=1e-4, rtol=1e-4)
