"""What the CRF costs: training-step time CRF / softmax and decoding time Viterbi / argmax, same batches.

Two `NerTagger`s start from the same weights and take turns on every batch (the order alternates), so a
busy machine slows both alike. A training step is forward, loss, backward, gradient clipping and an
AdamW step. Decoding is timed on emissions computed once per batch, so it measures the heads alone; the
batched Viterbi is also checked against pytorch-crf's own decoder (same paths) and timed beside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import Workload, sync
from benchmarks.training import our_config
from ner.model import NerTagger
from ner.train import build_datamodule


def to_device(batch: dict, device: torch.device) -> dict:
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }


def pair(work: Workload, device: torch.device) -> dict[str, NerTagger]:
    torch.manual_seed(0)
    softmax = NerTagger(encoder=work.encoder, labels=work.labels, head="softmax")
    crf = NerTagger(encoder=work.encoder, labels=work.labels, head="crf")
    crf.load_state_dict(
        softmax.state_dict(), strict=False
    )  # same encoder and emission layer; CRF keeps its own
    return {"softmax": softmax.to(device), "crf": crf.to(device)}


def train_step(model: NerTagger, optimizer: torch.optim.Optimizer, batch: dict, precision: str) -> float:
    sync()
    start = time.perf_counter()
    with torch.autocast(
        batch["input_ids"].device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"
    ):
        loss = model.head(model._emissions(batch), batch["labels"], batch["word_mask"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def mean_seconds(repeats: int, function, *args) -> float:
    """Mean wall time of `function(*args)` over `repeats` calls."""
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        function(*args)
    sync()
    return (time.perf_counter() - start) / repeats


def loss_backward(head, emissions: torch.Tensor, batch: dict) -> None:
    """A head's loss alone, forward and backward, on fixed emissions."""
    head(emissions.detach().requires_grad_(), batch["labels"], batch["word_mask"]).backward()


def cost(
    work: Workload, *, batches: int, batch_size: int, precision: str = "32-true", repeats: int = 5
) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as out:
        cfg = our_config(work, Path(out), precision=precision, batch_size=batch_size, bucket=True)
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")
        loader = iter(datamodule.train_dataloader())
        train = [to_device(next(loader), device) for _ in range(batches + 1)]
        test = list(datamodule.test_dataloader())  # sorted by length: take batches from short to long
        test = [to_device(test[i * len(test) // batches], device) for i in range(min(batches, len(test)))]
    models = pair(work, device)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=5e-5) for name, model in models.items()}

    # training steps, turn about; the first batch warms both up untimed
    seconds = {"softmax": 0.0, "crf": 0.0}
    loss_seconds = {"softmax": 0.0, "crf": 0.0}
    for i, batch in enumerate(train):
        order = ["softmax", "crf"] if i % 2 == 0 else ["crf", "softmax"]
        for name in order:
            elapsed = train_step(models[name], optimizers[name], batch, precision)
            if i > 0:
                seconds[name] += elapsed
        if i > 0:  # the heads' loss alone on the same emissions
            with torch.no_grad():
                emissions = models["softmax"]._emissions(batch)
            for name in order:
                head = models[name].head
                loss_seconds[name] += mean_seconds(repeats, loss_backward, head, emissions, batch)

    # decoding on fixed emissions
    decode = {"argmax": 0.0, "viterbi": 0.0, "pytorch_crf": 0.0}
    forward_decode = {"softmax": 0.0, "crf": 0.0}
    identical = True
    crf_head = models["crf"].head
    for model in models.values():
        model.eval()
    with torch.inference_mode():
        for batch in test:
            emissions = models["crf"]._emissions(batch)
            mask = batch["word_mask"]
            decode["argmax"] += mean_seconds(repeats, models["softmax"].head.decode, emissions, mask)
            decode["viterbi"] += mean_seconds(repeats, crf_head.decode, emissions, mask)
            decode["pytorch_crf"] += mean_seconds(1, crf_head.crf.decode, emissions, mask)
            identical &= crf_head.decode(emissions, mask) == crf_head.crf.decode(emissions, mask)
            for name, model in models.items():
                forward_decode[name] += mean_seconds(1, model.decode_batch, batch)
    steps = len(train) - 1
    return {
        "device": str(device),
        "precision": precision,
        "train_batches": steps,
        "decode_batches": len(test),
        "train_step_ms": {name: round(1000 * s / steps, 2) for name, s in seconds.items()},
        "train_step_ratio_crf_vs_softmax": round(seconds["crf"] / seconds["softmax"], 3),
        "loss_fwd_bwd_ms": {name: round(1000 * s / steps, 2) for name, s in loss_seconds.items()},
        "decode_ms_per_batch": {name: round(1000 * s / len(test), 3) for name, s in decode.items()},
        "decode_ratio_viterbi_vs_argmax": round(decode["viterbi"] / decode["argmax"], 2),
        "decode_speedup_vs_pytorch_crf": round(decode["pytorch_crf"] / decode["viterbi"], 2),
        "viterbi_paths_identical_to_pytorch_crf": bool(identical),
        "eval_step_ms": {name: round(1000 * s / len(test), 2) for name, s in forward_decode.items()},
        "eval_step_ratio_crf_vs_softmax": round(forward_decode["crf"] / forward_decode["softmax"], 3),
    }
