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

import torch
from scipy.stats import linregress

from benchmarks.common import Workload, fit_with_clock, peak_memory, sync, write_iob2


def summarise(name: str, steps: int, warmup: int, times: list[float], stats: list[tuple], memory: dict):
    """Figures of steps `warmup..` from per-step end times and per-batch (words, tokens, slots)."""
    if len(times) != steps:
        raise RuntimeError(f"{name}: trained {len(times)} steps, expected {steps}")
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
        **memory,
    }


def train_ours(
    work: Workload, *, steps: int, warmup: int, batch_size: int, name: str, precision="32-true", fused=False
) -> dict:
    """This project's trainer (`ner.train`'s data module, model and Lightning trainer) for `steps` steps."""
    clock = fit_with_clock(work, precision=precision, batch_size=batch_size, fused=fused, steps=steps)
    return summarise(name, steps, warmup, clock.times, clock.stats, clock.memory)


def hf_features(work: Workload, tokenizer, max_length: int = 128) -> list[dict]:
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


def train_hf(work: Workload, *, steps: int, warmup: int, batch_size: int, name: str, bf16=False) -> dict:
    """A plain `transformers.Trainer` for token classification, as in the Hugging Face example (its defaults:
    learning rate 5e-5, seed 42, fused AdamW, linear decay)."""
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
        work.encoder, id2label=dict(enumerate(work.labels))
    )
    collator = CountingCollator(DataCollatorForTokenClassification(tokenizer))
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            report_to="none",
            logging_steps=50,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=hf_features(work, tokenizer),
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics amid the tables
        with peak_memory() as memory:
            trainer.train()
    return summarise(name, steps, warmup, clock.times, collator.stats, memory)


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
        runs["hf_bf16"] = train_hf(work, bf16=True, name="HF Trainer bf16-mixed", **common)
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
    """One epoch of our trainer (bucketed, fused AdamW) on growing shares of the training slice: linear cost =
    constant ms/word.

    Two epochs run; the second is timed. The first pays one-off costs (allocator growth, CPU kernels built
    for each new batch shape) that a run pays once, not once per epoch.
    """
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for fraction in fractions:
            sentences = work.train[: round(fraction * len(work.train))]
            part = replace(work, folder=Path(folder) / str(fraction), train=sentences)
            shutil.copytree(work.folder, part.folder)  # dev.iob2 and test.iob2; train.iob2 is replaced
            write_iob2(part.folder / "train.iob2", sentences)
            clock = fit_with_clock(part, batch_size=batch_size, fused=True, epochs=2)
            (first, _), (second, done) = clock.epoch_starts
            seconds, words = clock.times[-1] - second, sum(s[0] for s in clock.stats[done:])
            rows.append(
                {
                    "fraction": fraction,
                    "sentences": len(sentences),
                    "steps": len(clock.times) - done,
                    "words": words,
                    "seconds": round(seconds, 3),
                    "ms_per_1k_words": round(1e6 * seconds / words, 1),
                    "first_epoch_seconds": round(clock.times[done - 1] - first, 3),
                }
            )
    base = rows[-1]["ms_per_1k_words"]
    for row in rows:
        row["cost_per_word_vs_full"] = round(row["ms_per_1k_words"] / base, 3)
    # least-squares line seconds = fixed + per_word * words: linear growth leaves a small fixed part
    line = linregress([row["words"] for row in rows], [row["seconds"] for row in rows])
    fit = {
        "fixed_seconds": round(line.intercept, 3),
        "ms_per_1k_words": round(1e6 * line.slope, 1),
        "r_squared": round(line.rvalue**2, 4),
    }
    return {"rows": rows, "linear_fit": fit}
