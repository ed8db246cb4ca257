"""Inference throughput: `ner.Predictor` against `transformers.pipeline("token-classification")`.

Both run the same weights (the checkpoint's encoder and emission layer; the pipeline gets them through
`ner.inference.export.standard_model`) on the same test sentences, one process, one device. The pipeline
gets each sentence as its words joined by spaces, as a user would pass text, with its default settings. Each
inference precision of `NerTagger.set_inference_precision` is timed on the same sentences and, with a
trained checkpoint, scored on the whole test set, so its speed-up comes with its cost in F1.
"""

from __future__ import annotations

import torch

from benchmarks.common import Workload, timed
from ner.encoders import load_tokenizer
from ner.inference.export import standard_model
from ner.inference.predictor import Predictor, load_checkpoint
from ner.metrics import score_sentences
from ner.model import NerTagger
from ner.tags import types_of

WARMUP_SENTENCES = 16
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# inference precisions worth timing here: int8 dynamic quantization exists for CPUs only
PRECISIONS = ["32", "bf16"] if torch.cuda.is_available() else ["32", "bf16", "int8"]


def load(work: Workload, ckpt: str | None) -> tuple[NerTagger, object]:
    """The checkpoint's model and tokenizer; without one, the encoder under an untrained emission layer."""
    if ckpt:
        return load_checkpoint(ckpt, DEVICE)
    torch.manual_seed(0)
    model = NerTagger(encoder=work.encoder, labels=work.labels)
    return model.to(DEVICE).eval(), load_tokenizer(work.encoder)


def ours(work: Workload, ckpt: str | None, precision: str, n_timed: int, batch_size: int) -> dict:
    """Predictor throughput on the first `n_timed` test sentences; with a checkpoint, F1 on the whole test
    slice."""
    model, tokenizer = load(work, ckpt)
    model.set_inference_precision(precision)
    predictor = Predictor(model, tokenizer, batch_size=batch_size)
    words = [list(s.tokens) for s in work.test]
    predictor.tag(words[:WARMUP_SENTENCES])
    head, seconds = timed(predictor.tag, words[:n_timed])
    result = {
        "precision": precision,
        "sentences": len(head),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(head) / seconds, 1),
    }
    if ckpt:
        tagged = head + predictor.tag(words[n_timed:])
        gold, predicted = [s.tags for s in work.test], [list(t.tags) for t in tagged]
        result["test_f1"] = score_sentences(gold, predicted, types_of(work.labels))["micro"]["f1"]
        result["scored_sentences"] = len(tagged)
    return result


def pipeline_baseline(work: Workload, ckpt: str | None, n_timed: int, batch_size: int | None) -> dict:
    """`pipeline("token-classification")` over the same weights and sentences (default: one at a time)."""
    from transformers import pipeline

    model, tokenizer = load(work, ckpt)
    classifier = standard_model(model.cpu()).to(DEVICE).eval()
    pipe = pipeline("token-classification", model=classifier, tokenizer=tokenizer, device=DEVICE)
    texts = [" ".join(s.tokens) for s in work.test[:n_timed]]
    options = {} if batch_size is None else {"batch_size": batch_size}
    pipe(texts[:WARMUP_SENTENCES], **options)
    outputs, seconds = timed(pipe, texts, **options)
    return {
        "batch_size": batch_size or 1,
        "sentences": len(outputs),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(outputs) / seconds, 1),
    }


def compare(work: Workload, ckpt: str | None, *, n_timed: int, batch_size: int) -> dict:
    """Every precision of ours vs the pipeline: sentences/s, speed-up, F1 cost (trained checkpoint only)."""
    baseline = {"unbatched": pipeline_baseline(work, ckpt, n_timed, None)}
    baseline["batched"] = pipeline_baseline(work, ckpt, n_timed, batch_size)
    runs = [ours(work, ckpt, precision, n_timed, batch_size) for precision in PRECISIONS]
    # the faster of the pipeline's two ways (its default, one sentence at a time, or batched) is the baseline
    base = max(run["sentences_per_second"] for run in baseline.values())
    for run in runs:
        run["vs_pipeline"] = round(run["sentences_per_second"] / base, 3)
        if ckpt:
            run["f1_points_vs_fp32"] = round(100 * (run["test_f1"] - runs[0]["test_f1"]), 3)
    return {
        "model": ckpt or "untrained emission layer over the encoder (pass --ckpt for F1 figures)",
        "trained": ckpt is not None,
        "device": str(DEVICE),
        "timed_sentences": n_timed,
        "batch_size": batch_size,
        "pipeline": baseline,
        "predictor": runs,
    }
