"""Training throughput: this project's trainer against a plain Hugging Face `Trainer`, and epoch-time scaling.

Both sides train the same encoder on the same sentences with the same batch size for the same number of
optimizer steps. The first `warmup` steps are not timed (allocator and thread-pool warm-up); the timed
window runs from the end of step `warmup` to the end of the last step, data loading included. Words are
real (non-padding) words; the padding fraction is padded subword slots / all subword slots of the timed
batches.

The Hugging Face side is set up as its token-classification example (`run_ner.py`) does: first subword
labelled, the others -100, `DataCollatorForTokenClassification`, random batches, `TrainingArguments`
defaults (fused AdamW, linear decay), truncation at the same 128 subwords our windows use.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from benchmarks.common import ROOT, PeakMemory, Workload, sync, write_iob2
from ner.config import register_resolvers
from ner.data.datamodule import NerDataModule
from ner.train import build_datamodule, build_model, build_trainer

CONFIGS = ROOT / "experiments" / "configs"


def compose_config(overrides: list[str]):
    """The real Hydra config of `experiments/run.py`, with `overrides`."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=overrides)


def our_config(
    work: Workload,
    out: Path,
    *,
    precision: str,
    batch_size: int,
    bucket: bool,
    head: str = "softmax",
    steps: int | None = None,
    epochs: int = 1,
    extra: tuple[str, ...] = (),
):
    overrides = [
        "model=minilm",
        f"model.encoder={work.encoder}",
        f"data.dir={work.folder}",
        "data.dev=dev.iob2",
        f"data.batch_size={batch_size}",
        f"data.bucket={str(bucket).lower()}",
        f"head={head}",
        f"trainer.precision={precision}",
        f"trainer.accelerator={'gpu' if torch.cuda.is_available() else 'cpu'}",
        # a fixed number of steps (epochs as needed), or whole epochs
        *(
            [f"trainer.max_epochs={epochs}"]
            if steps is None
            else ["trainer.max_epochs=-1", f"++trainer.max_steps={steps}"]
        ),
        "++trainer.limit_val_batches=0",
        "++trainer.num_sanity_val_steps=0",
        "++trainer.enable_model_summary=false",
        "progress_bar=false",
        f"output_dir={out}",
        *extra,
    ]
    return compose_config(overrides)


def summarise(
    name: str, times: list[float], stats: list[tuple[int, int, int]], warmup: int, memory: PeakMemory
):
    """Figures of steps `warmup..` from per-step end times and per-batch (words, tokens, slots)."""
    timed = stats[warmup : len(times)]
    seconds = times[-1] - times[warmup - 1]
    words, tokens, slots = (sum(column) for column in zip(*timed, strict=True))
    return {
        "name": name,
        "timed_steps": len(timed),
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / len(timed), 4),
        "words": words,
        "words_per_second": round(words / seconds, 1),
        "padding_fraction": round(1 - tokens / slots, 4),
        **memory.as_dict(),
    }


class OurClock(L.Callback):
    """End time of every training step, and what each batch held: (real words, real subwords, slots)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.stats: list[tuple[int, int, int]] = []
        self.epoch_starts: list[tuple[float, int]] = []  # (time, steps done before the epoch)

    def on_train_epoch_start(self, trainer, module) -> None:
        sync()
        self.epoch_starts.append((time.perf_counter(), len(self.times)))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync()
        self.times.append(time.perf_counter())
        words = sum(sum(owned) for owned in batch["window_owned"])  # each word once, windows merged
        mask = batch["attention_mask"]
        self.stats.append((words, int(mask.sum()), mask.numel()))


def fit_with_clock(cfg: DictConfig, out: Path) -> tuple[OurClock, NerDataModule]:
    """Build our data module, model and trainer from `cfg` as `ner.train` does, fit, and time every step."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    model = build_model(cfg, datamodule.labels)
    trainer = build_trainer(cfg, out)[0]
    clock = OurClock()
    trainer.callbacks.append(clock)
    trainer.fit(model, datamodule=datamodule)
    return clock, datamodule


def train_ours(
    work: Workload,
    *,
    steps: int,
    warmup: int,
    batch_size: int,
    precision: str = "32-true",
    bucket: bool = True,
    fused: bool = False,
    name: str = "ours",
) -> dict:
    """This project's trainer (`ner.train`'s data module, model and Lightning trainer) for `steps` steps."""
    with tempfile.TemporaryDirectory() as out:
        cfg = our_config(
            work,
            Path(out),
            precision=precision,
            batch_size=batch_size,
            bucket=bucket,
            steps=steps,
            extra=(f"++optim.fused={str(fused).lower()}",),
        )
        with PeakMemory() as memory:
            clock, _ = fit_with_clock(cfg, Path(out))
    if len(clock.times) != steps:
        raise RuntimeError(f"{name}: trained {len(clock.times)} steps, expected {steps}")
    return summarise(name, clock.times, clock.stats, warmup, memory)


def epoch_seconds(work: Workload, *, batch_size: int, precision: str = "32-true") -> dict:
    """Seconds of a training epoch of our trainer over `work.folder`'s training file (bucketed, fused AdamW).

    Two epochs run; the second is timed. The first pays one-off costs (allocator growth, CPU kernels built
    for each new batch shape) that a run pays once, not once per epoch.
    """
    with tempfile.TemporaryDirectory() as out:
        cfg = our_config(
            work,
            Path(out),
            precision=precision,
            batch_size=batch_size,
            bucket=True,
            epochs=2,
            extra=("++optim.fused=true",),
        )
        clock, datamodule = fit_with_clock(cfg, Path(out))
    (first, _), (second, done) = clock.epoch_starts
    seconds = clock.times[-1] - second
    words = sum(s[0] for s in clock.stats[done:])
    return {
        "sentences": len(datamodule.datasets["train"]),
        "steps": len(clock.times) - done,
        "words": words,
        "seconds": round(seconds, 3),
        "ms_per_1k_words": round(1e6 * seconds / words, 1),
        "first_epoch_seconds": round(clock.times[done - 1] - first, 3),
    }


def hf_features(work: Workload, tokenizer, max_length: int) -> list[dict]:
    """`tokenize_and_align_labels` of the token-classification example (label_all_tokens=False)."""
    label_id = {label: i for i, label in enumerate(work.labels)}
    encoding = tokenizer(
        [list(s.tokens) for s in work.train], is_split_into_words=True, truncation=True, max_length=max_length
    )
    features = []
    for i, sentence in enumerate(work.train):
        labels, previous = [], None
        for word in encoding.word_ids(i):
            labels.append(-100 if word is None or word == previous else label_id[sentence.tags[word]])
            previous = word
        features.append({key: encoding[key][i] for key in encoding.keys()} | {"labels": labels})
    return features


class CountingCollator:
    """Wraps the example's collator and records (labelled words, real subwords, slots) of every batch."""

    def __init__(self, collator) -> None:
        self.collator, self.stats = collator, []

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch["attention_mask"]
        self.stats.append((int((batch["labels"] != -100).sum()), int(mask.sum()), mask.numel()))
        return batch


def train_hf(
    work: Workload,
    *,
    steps: int,
    warmup: int,
    batch_size: int,
    precision: str = "32-true",
    max_length: int = 128,
    name: str = "hf-trainer",
) -> dict:
    """A plain `transformers.Trainer` for token classification, as in the Hugging Face example."""
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            self.times.append(time.perf_counter())

    tokenizer = AutoTokenizer.from_pretrained(work.encoder)
    torch.manual_seed(42)
    model = AutoModelForTokenClassification.from_pretrained(
        work.encoder,
        num_labels=len(work.labels),
        id2label=dict(enumerate(work.labels)),
        label2id={label: i for i, label in enumerate(work.labels)},
    )
    collator = CountingCollator(DataCollatorForTokenClassification(tokenizer))
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=5e-5,
            bf16=precision == "bf16-mixed",
            fp16=precision == "16-mixed",
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            disable_tqdm=True,
            seed=42,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=hf_features(work, tokenizer, max_length),
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        trainer.remove_callback(
            PrinterCallback
        )  # it prints the final metrics dict in the middle of the table
        with PeakMemory() as memory:
            trainer.train()
    if len(clock.times) != steps:
        raise RuntimeError(f"{name}: trained {len(clock.times)} steps, expected {steps}")
    return summarise(name, clock.times, collator.stats, warmup, memory)


def compare(work: Workload, *, steps: int, warmup: int, batch_size: int, bf16: bool) -> dict:
    """Ours vs the HF Trainer at fp32, then both at bf16-mixed; ratios of real words/s.

    Ours runs with the speed options that do not change the model (`data.bucket=true`, `++optim.fused=true`:
    equal up to float rounding), and once more without fused AdamW (what the defaults compute, bit for bit).
    """
    common = {"steps": steps, "warmup": warmup, "batch_size": batch_size}
    runs = {
        "ours_fp32": train_ours(work, fused=True, name="ours fp32 (bucket, fused AdamW)", **common),
        "hf_fp32": train_hf(work, name="HF Trainer fp32", **common),
        "ours_fp32_unfused": train_ours(work, name="ours fp32 (bucket)", **common),
    }
    if bf16:
        runs["hf_bf16"] = train_hf(work, precision="bf16-mixed", name="HF Trainer bf16-mixed", **common)
        runs["ours_bf16"] = train_ours(
            work, precision="bf16-mixed", fused=True, name="ours bf16-mixed (bucket, fused AdamW)", **common
        )
    speed = {name: run["words_per_second"] for name, run in runs.items()}
    ratio = {
        "ours_vs_hf_fp32": speed["ours_fp32"] / speed["hf_fp32"],
        "ours_unfused_vs_hf_fp32": speed["ours_fp32_unfused"] / speed["hf_fp32"],
    }
    if bf16:
        ratio["ours_vs_hf_bf16"] = speed["ours_bf16"] / speed["hf_bf16"]
        ratio["ours_bf16_vs_ours_fp32"] = speed["ours_bf16"] / speed["ours_fp32"]
        ratio["ours_bf16_vs_hf_fp32"] = speed["ours_bf16"] / speed["hf_fp32"]
    return {
        "runs": runs,
        "ratios": {k: round(v, 3) for k, v in ratio.items()},
        "steps": steps,
        "warmup": warmup,
        "batch_size": batch_size,
        "sentences": len(work.train),
    }


def scaling(work: Workload, *, batch_size: int, fractions=(0.25, 0.5, 1.0)) -> dict:
    """One epoch of our trainer on growing shares of the training slice: linear cost = constant ms/word."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for fraction in fractions:
            part = replace(
                work,
                folder=Path(folder) / str(fraction),
                train=work.train[: round(fraction * len(work.train))],
            )
            part.folder.mkdir()
            write_iob2(part.folder / "train.iob2", part.train)
            for name in ("dev.iob2", "test.iob2"):
                shutil.copy(work.folder / name, part.folder / name)
            rows.append({"fraction": fraction, **epoch_seconds(part, batch_size=batch_size)})
    base = rows[-1]["ms_per_1k_words"]
    for row in rows:
        row["cost_per_word_vs_full"] = round(row["ms_per_1k_words"] / base, 3)
    # least-squares line seconds = fixed + per_word * words: linear growth leaves a small fixed part
    n = len(rows)
    xs, ys = [row["words"] for row in rows], [row["seconds"] for row in rows]
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    fixed = mean_y - slope * mean_x
    residual = sum((y - fixed - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    total = sum((y - mean_y) ** 2 for y in ys)
    fit = {
        "fixed_seconds": round(fixed, 3),
        "ms_per_1k_words": round(1e6 * slope, 1),
        "r_squared": round(1 - residual / total, 4) if total else None,
    }
    return {"rows": rows, "linear_fit": fit}
