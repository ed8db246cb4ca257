"""The LightningModule: encoder -> dropout -> word-level states -> linear emissions -> head.

Constructor arguments are plain values, saved with `save_hyperparameters()`, together with the label
list and the encoder's configuration: a checkpoint rebuilds and decodes itself, offline.
"""

from __future__ import annotations

import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from ner.data.windows import merge_window_rows
from ner.distributed import gather_objects
from ner.encoders import encoder_from_config, load_encoder, load_tokenizer
from ner.errors import NerError
from ner.heads import build_head
from ner.metrics import EntityF1
from ner.tags import types_of

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
# `NerTagger.set_inference_precision`: exact float32, bfloat16 autocast, int8 dynamically quantized Linears
INFERENCE_PRECISIONS = ("32", "bf16", "int8")


def tokenizer_files(tokenizer: PreTrainedTokenizerBase) -> dict[str, bytes]:
    """The files `save_pretrained` writes for `tokenizer`, by name (what a checkpoint carries)."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}


class NerTagger(L.LightningModule):
    """Token classification over words, with a pluggable head (`softmax` or `crf`).

    Args:
        encoder: hub name or local folder of the pretrained encoder.
        labels: the label list (`O` first); index = label id.
        head: head name (`ner.heads.build_head`); `head_options` go to its constructor.
        dropout: on word states before the emission layer.
        lr / emission_lr / head_lr: AdamW learning rates of the encoder, of the emission layer on top of it
            (None: lr) and of the head's own parameters, e.g. the CRF's transitions (None: lr).
        weight_decay: AdamW decay, not applied to biases and norms.
        warmup_ratio: share of all optimizer steps with linear warm-up, then linear decay to 0.
        fused: PyTorch's fused AdamW kernel (CPU and GPU): optimizer steps about 4x faster than the default
            per-parameter loop, equal up to float rounding. Off by default: runs repeat earlier ones exactly.
        max_length / stride: the training data's windows (`data.max_length`, `data.stride`), kept so that
            inference windows sentences as training did.
        context / context_dropout: the training data's document context (`data.context`,
            `data.context_dropout`), kept so that inference gives sentences the context training did
            (checkpoints without them: 0).
        encoder_config: set in checkpoints; builds the architecture without downloading weights.
    """

    def __init__(
        self,
        encoder: str,
        labels: list[str],
        head: str = "softmax",
        head_options: dict[str, Any] | None = None,
        dropout: float = 0.3,
        lr: float = 5e-5,
        emission_lr: float | None = None,
        head_lr: float | None = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        fused: bool = False,
        max_length: int = 128,
        stride: int | None = None,
        context: int = 0,
        context_dropout: float = 0.0,
        encoder_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = encoder_from_config(encoder_config) if encoder_config else load_encoder(encoder)
        self.encoder.train()  # from_pretrained returns eval mode, and Lightning keeps modes as it finds them
        self.hparams.encoder_config = self.encoder.config.to_dict()
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.emissions = nn.Linear(self.encoder.config.hidden_size, len(self.labels))
        self.head = build_head(head, self.labels, **(head_options or {}))
        types = types_of(self.labels)
        self.metrics = nn.ModuleDict({"val": EntityF1(types), "test": EntityF1(types)})
        self.results: dict[str, dict] = {}  # split -> metric JSON of the last evaluation
        self.predictions: dict[str, dict[int, list[str]]] = {}  # split -> sentence index -> tags
        self._pending: list[tuple[int, list[str]]] = []
        self.tokenizer_files: dict[str, bytes] | None = None  # set from a checkpoint, or on first save
        self.inference_precision = "32"  # opt-in faster, approximate inference: `set_inference_precision`

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Carry the tokenizer's files: the checkpoint alone then rebuilds the tokenizer, offline."""
        if self.tokenizer_files is None:
            self.tokenizer_files = tokenizer_files(load_tokenizer(self.hparams.encoder))
        checkpoint["tokenizer_files"] = self.tokenizer_files

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.tokenizer_files = checkpoint.get("tokenizer_files")  # absent in older checkpoints

    def set_inference_precision(self, precision: str) -> NerTagger:
        """Trade exactness for inference speed; returns the model in eval mode. Measured costs in F1 and
        speed-ups: the README, *Benchmarks*. Heads always decode in float32.

        - "32": exact float32 (the default).
        - "bf16": the forward pass under bfloat16 autocast (GPUs; CPUs with AVX512-BF16 or AMX).
        - "int8": the encoder's Linear layers dynamically quantized to int8 (CPU only; cannot be undone).
        """
        if precision not in INFERENCE_PRECISIONS:
            expected = list(INFERENCE_PRECISIONS)
            raise NerError(f"unknown inference precision {precision!r}; expected one of {expected}")
        if self.inference_precision == "int8" and precision != "int8":
            raise NerError("an int8-quantized model cannot go back to another precision: reload it")
        if precision == "int8" and self.inference_precision != "int8":
            if self.device.type != "cpu":
                raise NerError(f"int8 inference runs on CPU only, the model is on {self.device}")
            with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
                warnings.simplefilter("ignore")
                quantize = torch.ao.quantization.quantize_dynamic
                quantize(self.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
        self.inference_precision = precision
        return self.eval()

    def forward(self, input_ids: Tensor, attention_mask: Tensor, word_index: Tensor) -> Tensor:
        """Emission scores of every word: (windows, words, labels)."""
        bf16 = self.inference_precision == "bf16"
        with torch.autocast(input_ids.device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            # (windows, subwords, hidden) -> each word's first subword: (windows, words, hidden)
            index = word_index.unsqueeze(-1).expand(-1, -1, states.size(-1))
            return self.emissions(self.dropout(states.gather(1, index)))

    def _emissions(self, batch: dict) -> Tensor:
        return self(batch["input_ids"], batch["attention_mask"], batch["word_index"])

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.head(self._emissions(batch), batch["labels"], batch["word_mask"])
        n = len(batch["sentence_index"])
        # The loggers read train/loss every `log_every_n_steps` steps. A progress-bar metric is turned into
        # a Python number after every step (a host-device sync on GPU): the bar gets a host copy as often.
        self.log("train/loss", loss, batch_size=n)
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self.log("loss", loss.detach().cpu(), prog_bar=True, logger=False, batch_size=n)
        return loss

    def sentence_emissions(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Emissions of whole sentences (sentences, words, labels) and their word mask (sentences, words):
        every word's row from the window that owns it. The one place windows become sentences again, for
        evaluation, `ner.evaluation.evaluate` and the `Predictor` alike."""
        windows = self._emissions(batch)  # (windows, words, labels)
        return merge_window_rows(
            windows, batch["window_owned"], batch["window_item"], len(batch["sentence_index"])
        )

    def decode_batch(
        self, batch: dict, mode: str | None = None, window_emissions: Tensor | None = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Label ids of each sentence of the batch and the head's per-word confidence in them.

        `window_emissions` (windows, words, labels): computed elsewhere (the ONNX backend) instead of by
        this encoder; merged and decoded exactly as this model's own."""
        if window_emissions is None:
            emissions, mask = self.sentence_emissions(batch)
        else:
            owned, items = batch["window_owned"], batch["window_item"]
            emissions, mask = merge_window_rows(window_emissions, owned, items, len(batch["sentence_index"]))
        paths = self.head.decode(emissions, mask, mode)
        return paths, self.head.scores(emissions, mask, paths)

    def _eval_step(self, batch: dict, split: str) -> None:
        emissions, mask = self.sentence_emissions(batch)
        pred = self.head.decode(emissions, mask)
        labels, _ = merge_window_rows(
            batch["labels"], batch["window_owned"], batch["window_item"], len(pred)
        )  # (sentences, words)
        gold = [row[:n] for row, n in zip(labels.tolist(), mask.sum(dim=1).tolist(), strict=True)]
        kept = [i for i, counted in enumerate(batch["counted"]) if counted]
        gold_tags = [[self.labels[t] for t in gold[i]] for i in kept]
        pred_tags = [[self.labels[t] for t in pred[i]] for i in kept]
        self.metrics[split].update(gold_tags, pred_tags)
        self._pending.extend(
            (batch["sentence_index"][i], tags) for i, tags in zip(kept, pred_tags, strict=True)
        )

    def _eval_end(self, split: str, name: str) -> None:
        result = self.metrics[split].compute()  # summed counts: exact across processes
        self.metrics[split].reset()
        predictions = gather_objects(self._pending)
        self._pending = []
        if self.trainer.sanity_checking:
            return
        self.results[name], self.predictions[name] = result, dict(predictions)
        scores = {f"{split}/{key}": result["micro"][key] for key in ("f1", "precision", "recall")}
        self.log_dict({**scores, f"{split}/macro_f1": result["macro"]["f1"]}, sync_dist=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val", "dev")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_end("test", "test")

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        """As Lightning's, but a fused AdamW (`fused=True`) may be clipped under bf16-mixed too.

        Lightning refuses to clip any fused optimizer under mixed precision, because with fp16 loss scaling
        its gradients are still scaled here. bf16-mixed scales nothing: they are clipped as in float32.
        """
        plugin = self.trainer.precision_plugin
        if self.hparams.fused and getattr(plugin, "precision", None) == "bf16-mixed" and gradient_clip_val:
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(self.parameters(), gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict:
        hp = self.hparams

        def groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
            named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
            decayed = [p for n, p in named if not n.endswith(NO_DECAY)]
            return [
                {"params": decayed, "lr": lr, "weight_decay": weight_decay},
                {"params": [p for n, p in named if n.endswith(NO_DECAY)], "lr": lr, "weight_decay": 0.0},
            ]

        param_groups = [
            *groups(self.encoder, hp.lr, hp.weight_decay),
            *groups(self.emissions, hp.emission_lr or hp.lr, hp.weight_decay),
            {"params": list(self.head.parameters()), "lr": hp.head_lr or hp.lr, "weight_decay": 0.0},
        ]
        param_groups = [group for group in param_groups if group["params"]]  # e.g. the softmax head's
        # fused=None keeps torch's default implementation (bit for bit what runs without the option gave)
        optimizer = torch.optim.AdamW(param_groups, lr=hp.lr, fused=True if hp.fused else None)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
