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

from benchmarks import gpu
from benchmarks.common import TINY, make_workload, random_encoder
from benchmarks.report import tables
from ner.data.datamodule import NerDataModule
from ner.errors import NerError
from ner.model import NerTagger
from ner.tags import build_labels

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "ner" / "data" / "sample"
LABELS = build_labels(["protein", "DNA", "RNA", "cell_type", "cell_line"])


@pytest.fixture(scope="module")
def toy_encoder(tmp_path_factory) -> str:
    return random_encoder(tmp_path_factory.mktemp("toy-encoder"))


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
    shown = tables(figures)  # the printed tables, each also a README (Markdown) table
    assert [t.title.split(":")[0].split(" (")[0] for t in shown] == [
        "Training",
        "Inference",
        "Tagging",
        "Tag command",
        "Tag run profile",
        "PubMed",
        "CRF cost",
        "Scaling",
        "Processes",
        "GPU mode",
        "Targets",
    ]
    assert all(t.to_markdown().count("\n") == len(t.rows) + 1 for t in shown)


def test_window_flops_match_the_analytic_count(toy_encoder):
    """Lightning's `measure_flops` of NerTagger's forward + backward, interpolated over window lengths, equals
    the textbook count: 2 FLOPs per weight per token forward (dense layers and emissions), 4 backward, plus
    QK^T and AV (2 x n^2 x hidden each per layer forward, twice that backward)."""
    flops = gpu.window_flops(toy_encoder, LABELS)
    hidden, layers, ff = TINY["hidden_size"], TINY["num_hidden_layers"], TINY["intermediate_size"]
    weights = layers * (4 * hidden * hidden + 2 * hidden * ff) + hidden * len(LABELS)
    for n in (1, 5, 37, 100, 128):
        assert flops(n) == 6 * weights * n + 12 * layers * hidden * n * n


def test_gpu_mode_trains_the_project_model_and_reports_throughput(tmp_path, toy_encoder):
    """The GPU mode at toy size on CPU: `ner.train`'s model, data module and trainer, Lightning's Throughput;
    MFU is model FLOP/s over the given peak, and bucketing cuts padding."""
    work = make_workload(SAMPLE, tmp_path / "data", 40, 8, toy_encoder)
    result = gpu.benchmark(
        work, size="tiny", steps=4, warmup=1, batch_size=8, variants=["eager", "sdpa+fused+bucket"], peak=1e-3
    )
    eager, bucketed = result["variants"]
    for row in (eager, bucketed):
        assert row["timed_steps"] == 3 and row["tokens_per_second"] > 0 and row["model_tflops_per_second"] > 0
        assert row["mfu"] == pytest.approx(row["model_tflops_per_second"] / 1e-3, rel=1e-2)
    assert bucketed["padding_fraction"] < eager["padding_fraction"]
    with pytest.raises(SystemExit, match="warmup"):
        gpu.benchmark(work, size="tiny", steps=2, warmup=2)


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

    The scaler starts at 2**24, where fp16 gradients surely overflow (at the default 2**16 whether they do
    depends on the batch order): it skips those steps and halves the scale,
    so 16 steps leave real ones (the default scale needs no halving for the softmax head on this data)."""
    torch.manual_seed(0)
    model = NerTagger(toy_encoder, LABELS, head=head, lr=1e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            losses.append(outputs["loss"])

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**24) if precision == "16-mixed" else None
    plugin = MixedPrecision(precision, "cpu", scaler=scaler)
    trainer = _fit(model, sample_batches, 16, plugins=[plugin], callbacks=[Record()])
    assert len(losses) == 16 and all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses)
    if precision == "16-mixed":
        assert 0 < trainer.precision_plugin.scaler.get_scale() < 2**24  # overflowing steps were skipped
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
