"""GPU mode: SciBERT-size training throughput and model FLOPs utilisation (MFU), nothing downloaded.

The encoder is SciBERT's architecture (BERT-base: 12 layers, hidden 768, 12 heads, feed-forward 3072) with
its 31,090-word vocabulary, randomly initialised and saved with the packaged MiniLM tokenizer (SciBERT's
vocabulary would need the hub; MiniLM's ids are valid ids of the larger vocabulary, the lengths are
JNLPBA's). It trains as a run does: `ner.train`'s data module, `NerTagger` and Lightning trainer, under
`trainer.precision=bf16-mixed`, on JNLPBA batches of 32 sentences in windows of at most 128 subwords.

Model FLOPs are Lightning's `measure_flops` (torch's FLOP counter) of the model's forward + backward over
each window's real (non-padding) subwords, so padding does not count. `Throughput` turns them into TFLOP/s
and MFU against `get_available_flops`, Lightning's table of the device's dense bf16 peak. Variants try
what the ecosystem offers: SDPA vs eager attention, fused AdamW, length bucketing (`data.bucket`),
`torch.compile`. On a CPU the mode runs at a toy size (`size="tiny"`) to check that it works; its
figures mean nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.utilities.throughput import Throughput, get_available_flops, measure_flops
from transformers import AutoConfig

from benchmarks.common import TINY, Workload, fit_with_clock, random_encoder
from ner.model import NerTagger

SCIBERT = dict(
    vocab_size=31090, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)
# tried in this order on a GPU; each name lists its options: attention kernel, fused AdamW, bucketing, compile
VARIANTS = ("eager", "sdpa", "sdpa+fused", "sdpa+fused+bucket", "sdpa+fused+bucket+compile")


def window_flops(encoder: str, labels: list[str]) -> Callable[[int], int]:
    """FLOPs of `NerTagger`'s forward + backward over a window of `n` real subwords (each counted as a word).

    Counted on the meta device (no memory, no compute) with eager attention, whose matmuls the counter sees.
    The count is a quadratic in `n` (dense layers linear, attention scores and values quadratic), so three
    measured lengths give every length exactly.
    """
    with torch.device("meta"):
        model = NerTagger(encoder, labels, encoder_config=AutoConfig.from_pretrained(encoder).to_dict())
    model.encoder.set_attn_implementation("eager")

    def measure(n: int) -> int:
        with torch.device("meta"):
            ids, index = torch.zeros(1, n, dtype=torch.long), torch.arange(n).unsqueeze(0)  # (1, n)
        # no attention mask: one unpadded window needs none (and building one calls .item(), not on meta)
        return measure_flops(model, lambda: model(ids, None, index), torch.Tensor.sum)

    lengths = (8, 64, 128)
    quadratic = np.polyfit(lengths, [measure(n) for n in lengths], 2)
    return lambda n: round(float(np.polyval(quadratic, n)))


def run_variant(
    work: Workload,
    encoder: str,
    name: str,
    flops: Callable[[int], int],
    *,
    steps: int,
    warmup: int,
    batch_size: int,
    peak: float | None,
) -> dict:
    """Train `steps` steps of one variant; figures of the steps after the first `warmup`."""
    parts = name.split("+")
    options = {"attn": parts[0], **{option: option in parts for option in ("fused", "bucket", "compile")}}

    def prepare(model: NerTagger) -> None:
        model.encoder.set_attn_implementation(options["attn"])
        if options["compile"]:
            model.encoder.compile(dynamic=True)

    flags = {"bucket": options["bucket"], "fused": options["fused"]}
    clock = fit_with_clock(
        work, prepare, batch_size=batch_size, precision="bf16-mixed", steps=steps, encoder=encoder, **flags
    )
    # Counts are cumulative from the first step; the rates span the first update (the end of step `warmup`)
    # to the last, as Throughput computes them over a window of exactly those updates.
    throughput = Throughput(available_flops=peak, window_size=steps - warmup + 1)
    windows = tokens = 0
    for i, (time, lengths) in enumerate(zip(clock.times, clock.lengths, strict=True)):
        windows, tokens = windows + len(lengths), tokens + sum(lengths)
        if i >= warmup - 1:
            batch_flops = sum(flops(n) for n in lengths)
            throughput.update(time=time, batches=i + 1, samples=windows, lengths=tokens, flops=batch_flops)
    rates = throughput.compute()
    _, real, slots = (sum(column) for column in zip(*clock.stats[warmup:], strict=True))
    return {
        "variant": name,
        **options,
        "timed_steps": steps - warmup,
        "max_length": clock.cfg.data.max_length,
        "tokens_per_second": round(rates["device/items_per_sec"], 1),
        "padding_fraction": round(1 - real / slots, 4),
        "model_tflops_per_second": float(f"{rates['device/flops_per_sec'] / 1e12:.4g}"),
        "mfu": round(rates["device/mfu"], 4) if "device/mfu" in rates else None,
        **clock.memory,
    }


def benchmark(
    work: Workload,
    *,
    size: str = "scibert",
    steps: int = 60,
    warmup: int = 10,
    batch_size: int = 32,
    variants: list[str] | None = None,
    peak: float | None = None,
) -> dict:
    """Every variant in turn on the same weights and data; `peak` (TFLOP/s) overrides Lightning's table."""
    if not 1 <= warmup < steps:
        raise SystemExit(f"error: the GPU mode needs 1 <= warmup ({warmup}) < steps ({steps})")
    if unknown := set(variants or ()) - set(VARIANTS):
        raise SystemExit(f"error: unknown GPU variants {sorted(unknown)}; expected some of {list(VARIANTS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = peak * 1e12 if peak else get_available_flops(device, torch.bfloat16)
    config = SCIBERT if size == "scibert" else {**SCIBERT, **TINY}
    with tempfile.TemporaryDirectory() as folder:
        encoder = random_encoder(Path(folder), **config)
        flops = window_flops(encoder, work.labels)
        rows = [
            run_variant(
                work, encoder, name, flops, steps=steps, warmup=warmup, batch_size=batch_size, peak=available
            )
            for name in variants or VARIANTS
        ]
    label = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (toy size: checks the mode runs)"
    return {
        "device": label,
        "size": size,
        "config": config,
        "precision": "bf16-mixed",
        "batch_size": batch_size,
        "max_length": rows[0]["max_length"],
        "peak_bf16_tflops": available and available / 1e12,
        "variants": rows,
    }
