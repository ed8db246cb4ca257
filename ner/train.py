"""One run: train, select the best epoch on dev, evaluate it on dev and test, write every output.

Called by `experiments/run.py` with the composed Hydra config; all logic lives here so that the
ablation runner, SLURM jobs and tests run exactly the same code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from ner.callbacks import EpochHistory, Preemption, RandomState
from ner.data.datamodule import NerDataModule
from ner.data.splits import DEV_ON_TEST_WARNING
from ner.data.writer import corpus_predictions, sentence_predictions
from ner.encoders import resolve_encoder
from ner.files import atomic_write_text, write_json
from ner.model import NerTagger

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> NerDataModule:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("name", None)
    return NerDataModule(tokenizer=resolve_encoder(cfg.model.encoder), seed=cfg.seed, **data)


def build_model(cfg: DictConfig, labels: list[str]) -> NerTagger:
    head = OmegaConf.to_container(cfg.head, resolve=True)
    name, head_lr = head.pop("name"), head.pop("lr", None)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    if head_lr is not None:
        optim["head_lr"] = head_lr
    return NerTagger(
        encoder=resolve_encoder(cfg.model.encoder),
        labels=labels,
        head=name,
        head_options=head,
        dropout=cfg.model.dropout,
        **optim,
    )


def build_trainer(cfg: DictConfig, out: Path) -> tuple[L.Trainer, ModelCheckpoint, EpochHistory]:
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best-epoch{epoch}",
        auto_insert_metric_name=False,
        monitor="val/f1",
        mode="max",
        save_last=False,  # `Preemption` writes last.ckpt: at every epoch end, not only along with a new best
    )
    history = EpochHistory()
    # Resumable runs: `last.ckpt` also mid-epoch, every N steps and on SIGTERM / SIGUSR1, with the RNG states.
    # `checkpoint_every_n_steps` may be absent from the config (or null): epoch ends and signals only.
    preemption = Preemption(out / "checkpoints", every_n_steps=cfg.get("checkpoint_every_n_steps"))
    callbacks = [history, LearningRateMonitor("step"), checkpoint, RandomState(), preemption]
    if (
        cfg.keep_epoch_checkpoints
    ):  # for evaluations that revisit every epoch (e.g. the model card's protocol)
        callbacks.append(
            ModelCheckpoint(
                dirpath=out / "checkpoints",
                filename="epoch{epoch}",
                auto_insert_metric_name=False,
                save_top_k=-1,
                every_n_epochs=1,
            )
        )
    if cfg.progress_bar:
        callbacks.append(RichProgressBar())
    loggers = [
        CSVLogger(out, name="logs", version=""),
        TensorBoardLogger(out, name="tensorboard", version=""),
    ]
    # In a SLURM job Lightning takes ranks and world size from srun. `Preemption` requeues, not Lightning's
    # handler, which would save a checkpoint from inside the signal handler, mid-step.
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    trainer = L.Trainer(
        **OmegaConf.to_container(cfg.trainer, resolve=True),
        callbacks=callbacks,
        plugins=plugins,
        logger=loggers,
        default_root_dir=out,
        use_distributed_sampler=False,  # our batch samplers shard themselves and flag padding repeats
        enable_progress_bar=bool(cfg.progress_bar),
    )
    return trainer, checkpoint, history


def resolve_ckpt_path(ckpt_path: str | None, out: Path) -> str | None:
    """`last` resumes this output folder's last checkpoint when it exists (and starts fresh otherwise)."""
    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    return ckpt_path


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one configuration; returns the content of `metrics.json`."""
    started = time.perf_counter()
    out = Path(cfg.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")  # reads and validates every file before any model is built
    split = datamodule.split
    if split.dev_is_test:
        log.warning(DEV_ON_TEST_WARNING)
    model = build_model(cfg, datamodule.labels)
    trainer, checkpoint, history = build_trainer(cfg, out)
    if trainer.is_global_zero:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_json(out / "labels.json", datamodule.labels)

    trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.ckpt_path, out))
    epochs, best_epoch = list(history.epochs), history.best  # before evaluations reload checkpoints
    fit_seconds, processes = history.fit_seconds, history.processes
    best = checkpoint.best_model_path or None  # None when no validation ran: evaluate the last weights
    trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)

    metrics = {
        "protocol": {
            "dev": split.description,
            "selection": "dev F1 (val/f1, max)"
            if not split.dev_is_test
            else "TEST F1: " + DEV_ON_TEST_WARNING,
            "dev_is_test": split.dev_is_test,
            "scorer": "official JNLPBA rules (evalIOB2.pl); seqeval_default = seqeval's lenient default mode",
        },
        "dev": model.results["dev"],
        "test": model.results["test"],
        "best_epoch": best_epoch["epoch"] if best_epoch else None,
        "best_checkpoint": Path(best).name if best else None,
        "epochs": epochs,
        "sizes": {name: len(sentences) for name, sentences in datamodule.sentences.items()},
        "timing": {
            "fit_seconds": round(fit_seconds, 2),  # over every process that trained this run
            "processes": processes,  # 1, or more after resumes
            "total_seconds_this_process": round(time.perf_counter() - started, 2),
            "seconds_per_epoch": [e["seconds"] for e in epochs],
        },
        "model": {"encoder": cfg.model.encoder, "head": cfg.head.name, "labels": datamodule.labels},
        "seed": cfg.seed,
    }
    if trainer.is_global_zero:
        write_outputs(out, datamodule, model, metrics)
    return metrics


def write_outputs(out: Path, datamodule: NerDataModule, model: NerTagger, metrics: dict[str, Any]) -> None:
    """Predictions first, metrics last: a `metrics.json` on disk means the run finished."""
    for name in ("dev", "test"):
        predicted = model.predictions[name]
        sentences = datamodule.sentences[name]
        tags = [predicted[i] for i in range(len(sentences))]
        if name == "test":
            text = corpus_predictions(datamodule.test_corpus, tags)
        else:
            text = sentence_predictions(sentences, tags)
        atomic_write_text(out / "predictions" / f"{name}.iob2", text)
    if metrics["protocol"]["dev_is_test"]:
        atomic_write_text(out / "predictions" / "PROTOCOL.txt", DEV_ON_TEST_WARNING + "\n")
    write_json(out / "metrics.json", metrics)
