"""GPU mode: SciBERT-size training throughput and model FLOPs utilisation (MFU), nothing downloaded.

The encoder is SciBERT's architecture (BERT-base: 12 layers, hidden 768, 12 heads, feed-forward 3072) with
its 31,090-word vocabulary, randomly initialised from the configuration. It trains as our model does
(first-subword states -> linear emissions -> cross-entropy) under bf16 autocast on JNLPBA batches of 32
sentences cut at 128 subwords. Token ids come from the packaged MiniLM tokenizer (SciBERT's vocabulary
would need the hub); they are valid ids of the larger vocabulary and the lengths are JNLPBA's.

Model FLOPs count real (non-padding) tokens only: 6 x parameters per token for the dense layers (forward
and backward) plus 12 x layers x hidden x length per token for attention scores and values. MFU divides
the achieved rate by the device's dense bf16 peak. Variants try what the ecosystem offers: SDPA vs eager
attention, fused AdamW, length bucketing (most padding gone), `torch.compile`. On a CPU the mode runs at a
toy size (`size="tiny"`) to check that it works; its figures mean nothing.
"""

from __future__ import annotations

import random
import time

import torch
from torch import nn

from benchmarks.common import PeakMemory, Workload, sync
from ner.encoders import load_tokenizer

SCIBERT = {
    "vocab_size": 31090,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}
TINY = {
    **SCIBERT,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}
# Dense bf16 tensor-core peaks in TFLOP/s, by a substring of torch.cuda.get_device_name() (first match wins).
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
    "A10": 125.0,
}
VARIANTS = {  # name -> options; tried in this order on a GPU
    "eager": {"attn": "eager", "fused": False, "bucket": False, "compile": False},
    "sdpa": {"attn": "sdpa", "fused": False, "bucket": False, "compile": False},
    "sdpa+fused": {"attn": "sdpa", "fused": True, "bucket": False, "compile": False},
    "sdpa+fused+bucket": {"attn": "sdpa", "fused": True, "bucket": True, "compile": False},
    "sdpa+fused+bucket+compile": {"attn": "sdpa", "fused": True, "bucket": True, "compile": True},
}


class Tagger(nn.Module):
    """Encoder -> each word's first subword -> linear emissions, as `ner.model.NerTagger` computes them."""

    def __init__(self, config, labels: int) -> None:
        super().__init__()
        from transformers import BertModel

        self.encoder = BertModel(config, add_pooling_layer=False)
        self.emissions = nn.Linear(config.hidden_size, labels)

    def forward(self, input_ids, attention_mask, word_index, labels, word_mask):
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        index = word_index.unsqueeze(-1).expand(-1, -1, states.size(-1))  # (batch, words, hidden)
        logits = self.emissions(states.gather(1, index)).float()
        return nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.masked_fill(~word_mask, -100).flatten()
        )


def batches(
    work: Workload, batch_size: int, max_length: int, bucket: bool, count: int, seed: int = 0
) -> list[dict]:
    """`count` batches of JNLPBA training sentences, random or length-bucketed, first subword per word."""
    tokenizer = load_tokenizer(work.encoder)
    label_id = {label: i for i, label in enumerate(work.labels)}
    encoding = tokenizer(
        [list(s.tokens) for s in work.train], is_split_into_words=True, truncation=True, max_length=max_length
    )
    items = []
    for i, sentence in enumerate(work.train):
        firsts, seen = [], set()
        for position, word in enumerate(encoding.word_ids(i)):
            if word is not None and word not in seen:
                seen.add(word)
                firsts.append((position, label_id[sentence.tags[word]]))
        items.append((encoding["input_ids"][i], firsts))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    if bucket:  # sort within pools of 50 batches, then shuffle the batches (as ner.data.samplers does)
        pool = 50 * batch_size
        order = [
            j
            for p in range(0, len(order), pool)
            for j in sorted(order[p : p + pool], key=lambda j: len(items[j][0]))
        ]
    if len(order) < batch_size:
        raise SystemExit(f"error: {len(order)} training sentences cannot fill one batch of {batch_size}")
    groups = [order[k : k + batch_size] for k in range(0, len(order) - batch_size + 1, batch_size)]
    if bucket:
        random.Random(seed + 1).shuffle(groups)
    result = []
    for group in (groups * (count // max(len(groups), 1) + 1))[:count]:
        length = max(len(items[j][0]) for j in group)
        words = max(len(items[j][1]) for j in group)
        ids = torch.zeros(len(group), length, dtype=torch.long)
        mask = torch.zeros(len(group), length, dtype=torch.long)
        word_index = torch.zeros(len(group), words, dtype=torch.long)
        labels = torch.zeros(len(group), words, dtype=torch.long)
        word_mask = torch.zeros(len(group), words, dtype=torch.bool)
        for row, j in enumerate(group):
            token_ids, firsts = items[j]
            ids[row, : len(token_ids)] = torch.tensor(token_ids)
            mask[row, : len(token_ids)] = 1
            word_index[row, : len(firsts)] = torch.tensor([p for p, _ in firsts])
            labels[row, : len(firsts)] = torch.tensor([label for _, label in firsts])
            word_mask[row, : len(firsts)] = True
        result.append(
            {
                "input_ids": ids,
                "attention_mask": mask,
                "word_index": word_index,
                "labels": labels,
                "word_mask": word_mask,
            }
        )
    return result


def model_flops(config, lengths: torch.Tensor, labels: int) -> float:
    """Forward + backward FLOPs of the encoder and emission layer over sequences of real `lengths`."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    dense = layers * (4 * hidden * hidden + 2 * hidden * config.intermediate_size) + hidden * labels
    tokens = float(lengths.sum())
    attention = 12.0 * layers * hidden * float((lengths.double() ** 2).sum())  # QK^T and AV, x3 for backward
    return 6.0 * dense * tokens + attention


def peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def run_variant(
    work: Workload,
    name: str,
    options: dict,
    *,
    size: str,
    steps: int,
    warmup: int,
    batch_size: int,
    max_length: int,
    peak: float | None,
) -> dict:
    from transformers import BertConfig

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = BertConfig(**(SCIBERT if size == "scibert" else TINY), attn_implementation=options["attn"])
    torch.manual_seed(0)
    model = Tagger(config, len(work.labels)).to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=5e-5, fused=options["fused"] and device.type == "cuda"
    )
    step_fn = torch.compile(model, dynamic=True) if options["compile"] else model
    host = batches(work, batch_size, max_length, options["bucket"], steps)
    lengths = [b["attention_mask"].sum(dim=1) for b in host[warmup:]]  # counted on the host: no device sync
    flops = sum(model_flops(config, n, len(work.labels)) for n in lengths)
    tokens = int(sum(n.sum() for n in lengths))
    slots = sum(b["attention_mask"].numel() for b in host[warmup:])
    data = [{k: v.to(device) for k, v in b.items()} for b in host]
    with PeakMemory() as memory:
        for i, batch in enumerate(data):
            if i == warmup:
                sync()
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = step_fn(**batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync()
    seconds = time.perf_counter() - start
    achieved = flops / seconds / 1e12
    return {
        "variant": name,
        **options,
        "timed_steps": steps - warmup,
        "tokens_per_second": round(tokens / seconds, 1),
        "padding_fraction": round(1 - tokens / slots, 4),
        "model_tflops_per_second": round(achieved, 3),
        "mfu": round(achieved / peak, 4) if peak else None,
        **memory.as_dict(),
    }


def benchmark(
    work: Workload,
    *,
    size: str = "scibert",
    steps: int = 60,
    warmup: int = 10,
    batch_size: int = 32,
    max_length: int = 128,
    variants: list[str] | None = None,
    peak: float | None = None,
) -> dict:
    peak = peak or peak_tflops()
    names = variants or list(VARIANTS)
    rows = [
        run_variant(
            work,
            name,
            VARIANTS[name],
            size=size,
            steps=steps,
            warmup=warmup,
            batch_size=batch_size,
            max_length=max_length,
            peak=peak,
        )
        for name in names
    ]
    return {
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else "cpu (toy size: checks the mode runs)",
        "size": size,
        "config": SCIBERT if size == "scibert" else TINY,
        "precision": "bf16 autocast",
        "batch_size": batch_size,
        "max_length": max_length,
        "peak_bf16_tflops": peak,
        "variants": rows,
    }
