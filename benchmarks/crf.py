"""What the CRF costs: training-step time CRF / softmax and decoding time Viterbi / argmax, same batches.

Two `NerTagger`s start from the same weights and take turns on every batch (the order alternates), so a
busy machine slows both alike. A training step is forward, loss, backward, gradient clipping and an
AdamW step. Decoding is timed on emissions computed once per batch, so it measures the heads alone. Our
batched Viterbi (`ner.heads.viterbi`) is also checked against pytorch-crf's decoder with the same random
scores (same paths) and timed beside it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torchcrf import CRF

from benchmarks.common import Workload, our_config, timed
from ner.heads.viterbi import viterbi_decode
from ner.model import NerTagger
from ner.train import build_datamodule


def emissions(model: NerTagger, batch: dict) -> torch.Tensor:
    return model(batch["input_ids"], batch["attention_mask"], batch["word_index"])  # (windows, words, labels)


def train_step(model: NerTagger, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    model.head(emissions(model, batch), batch["labels"], batch["word_mask"]).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def loss_backward(head, scores: torch.Tensor, batch: dict) -> None:
    """A head's loss alone, forward and backward, on fixed emissions."""
    head(scores.detach().requires_grad_(), batch["labels"], batch["word_mask"]).backward()


def cost(work: Workload, *, batches: int, batch_size: int, repeats: int = 5) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as out:
        datamodule = build_datamodule(our_config(work, Path(out), batch_size=batch_size))
        datamodule.setup("fit")
        loader = iter(datamodule.train_dataloader())
        train = [move_data_to_device(next(loader), device) for _ in range(batches + 1)]
        test = list(datamodule.test_dataloader())  # sorted by length: take batches from short to long
        test = [
            move_data_to_device(test[i * len(test) // batches], device)
            for i in range(min(batches, len(test)))
        ]
    torch.manual_seed(0)
    models = {head: NerTagger(work.encoder, work.labels, head=head).to(device) for head in ("softmax", "crf")}
    models["crf"].load_state_dict(models["softmax"].state_dict(), strict=False)  # the CRF keeps its own
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=5e-5) for name, model in models.items()}

    # training steps, turn about; the first batch warms both up untimed
    seconds, loss_seconds = {"softmax": 0.0, "crf": 0.0}, {"softmax": 0.0, "crf": 0.0}
    for i, batch in enumerate(train):
        order = ["softmax", "crf"] if i % 2 == 0 else ["crf", "softmax"]
        for name in order:
            seconds[name] += timed(train_step, models[name], optimizers[name], batch)[1] if i else 0.0
        if i > 0:  # the heads' loss alone on the same emissions
            with torch.no_grad():
                scores = emissions(models["softmax"], batch)
            for name in order:
                _, elapsed = timed(loss_backward, models[name].head, scores, batch, repeats=repeats)
                loss_seconds[name] += elapsed

    # decoding on fixed emissions; pytorch-crf decodes with its own random scores, ours with the same ones
    decode = {"argmax": 0.0, "viterbi": 0.0, "pytorch_crf": 0.0}
    forward_decode = {"softmax": 0.0, "crf": 0.0}
    reference = CRF(len(work.labels), batch_first=True).to(device)
    scores = (reference.transitions, reference.start_transitions, reference.end_transitions)
    identical = True
    for model in models.values():
        model.eval()
    with torch.inference_mode():
        for batch in test:
            emitted, mask = emissions(models["crf"], batch), batch["word_mask"]
            decode["argmax"] += timed(models["softmax"].head.decode, emitted, mask, repeats=repeats)[1]
            decode["viterbi"] += timed(models["crf"].head.decode, emitted, mask, repeats=repeats)[1]
            theirs, elapsed = timed(reference.decode, emitted, mask)
            decode["pytorch_crf"] += elapsed
            identical &= viterbi_decode(emitted, mask, *scores) == theirs
            for name, model in models.items():
                forward_decode[name] += timed(model.decode_batch, batch)[1]
    steps = len(train) - 1
    return {
        "device": str(device),
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
