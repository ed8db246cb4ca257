"""One run: train, select the best epoch on dev, evaluate it on dev and test, write every output.

With `data.dev=none` (the final retrain on every training abstract) there is no dev and no validation loop:
the run trains a fixed number of epochs, taken from a dev-selected run (`retrain_from=RUN`) or given by hand,
keeps the last epoch and is scored on test only (the plan and its callbacks: `ner.retrain`).

Called by `experiments/run.py` with the composed Hydra config; all logic lives here so that sweeps,
SLURM jobs and tests run exactly the same code.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar, Timer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from ner.callbacks import EpochHistory, Preemption, RandomState, StepCheckpoint
from ner.csv_logger import KeepCurveOnResume
from ner.data.datamodule import NerDataModule
from ner.data.splits import DEV_ON_TEST_WARNING
from ner.data.writer import corpus_predictions, sentence_predictions
from ner.encoders import resolve_encoder
from ner.errors import NerError
from ner.files import atomic_write_text, write_json
from ner.model import NerTagger
from ner.retrain import StopAfterEpochs, TrainEpochHistory, retrain_plan
from ner.tables import Table

log = logging.getLogger(__name__)


def quiet_library_notices() -> None:
    """Silence what libraries print about themselves on every run, and no real warning: Lightning's advert
    for its cloud logger, deprecations inside Lightning and torchdata (pytree `LeafSpec`, `set_vital`), and
    `weights_only` on the checkpoints Lightning writes and reloads itself (with False: they hold loop states).
    """
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda r: "litlogger" not in str(r.msg)
    )
    for message in (r".*isinstance\(treespec, LeafSpec\)", r".*'set_vital' is deprecated", r".*weights_only"):
        warnings.filterwarnings("ignore", message=message)


def build_datamodule(cfg: DictConfig) -> NerDataModule:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("name", None)
    return NerDataModule(tokenizer=resolve_encoder(cfg.model.encoder), seed=cfg.seed, **data)


def build_model(cfg: DictConfig, labels: list[str]) -> NerTagger:
    """The model from the config, one key to one argument (README, *Running*)."""
    head, optim = cfg.head, cfg.optim
    return NerTagger(
        encoder=resolve_encoder(cfg.model.encoder),
        labels=labels,
        head=head.name,
        head_options=OmegaConf.to_container(head.options, resolve=True),
        head_lr=head.lr,
        dropout=cfg.model.dropout,
        lr=optim.lr,
        emission_lr=optim.head_lr,
        weight_decay=optim.weight_decay,
        warmup_ratio=optim.warmup_ratio,
        fused=optim.fused,
        max_length=cfg.data.max_length,
        stride=cfg.data.stride,
        context=cfg.data.get("context", 0),
        context_dropout=cfg.data.get("context_dropout", 0.0),
    )


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """One Lightning logger per entry of the `logger` group (`experiments/configs/logger/`)."""
    loggers = []
    for name, options in (cfg.get("logger") or {}).items():
        try:
            loggers.append(instantiate(options))
        except InstantiationException as error:
            if isinstance(error.__cause__, ModuleNotFoundError):
                raise NerError(f"logger={name} needs its package: pip install -e '.[{name}]'") from None
            raise
    return loggers


def build_trainer(
    cfg: DictConfig, out: Path, retrain: dict[str, Any] | None = None
) -> tuple[L.Trainer, ModelCheckpoint | None, EpochHistory]:
    """The trainer and its callbacks; with `retrain` (no dev) no validation at all and no best checkpoint."""
    folder = out / "checkpoints"
    files = {"dirpath": folder, "auto_insert_metric_name": False, "enable_version_counter": False}
    # `last.ckpt`, the state a resume starts from, after every epoch (`best` would write it only along with
    # a new best) and, with `checkpoint_every_n_steps`, every N steps mid-epoch too.
    # every epoch kept for evaluations that revisit each one (e.g. the model card's protocol)
    if cfg.keep_epoch_checkpoints:
        epochs = ModelCheckpoint(filename="epoch{epoch}", save_top_k=-1, save_last=True, **files)
    else:
        epochs = ModelCheckpoint(filename="last", **files)
    timer = Timer()  # its training clock is saved in checkpoints: fit seconds add up over resumed processes
    trainer_options = OmegaConf.to_container(cfg.trainer, resolve=True)
    if retrain is None:
        history = EpochHistory(timer)
        best = ModelCheckpoint(filename="best-epoch{epoch}", monitor="val/f1", mode="max", **files)
        callbacks = [
            timer,
            history,
            LearningRateMonitor("step"),
            best,
            epochs,
            RandomState(),
            Preemption(folder),
        ]
    else:  # no dev: no validation loop (not even a sanity check), no best checkpoint; the last epoch is kept
        history, best = TrainEpochHistory(timer), None
        callbacks = [timer, history, LearningRateMonitor("step"), epochs, RandomState(), Preemption(folder)]
        callbacks.append(StopAfterEpochs(retrain["epochs"]))
        trainer_options.update(limit_val_batches=0, num_sanity_val_steps=0)
    callbacks.append(KeepCurveOnResume())
    if cfg.checkpoint_every_n_steps:
        callbacks.append(
            StepCheckpoint(filename="last", every_n_train_steps=cfg.checkpoint_every_n_steps, **files)
        )
    if cfg.progress_bar:
        callbacks.append(RichProgressBar())
    # In a SLURM job Lightning takes ranks and world size from srun. `Preemption` requeues, not Lightning's
    # handler, which would save a checkpoint from inside the signal handler, mid-step.
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    trainer = L.Trainer(
        **trainer_options,
        callbacks=callbacks,
        plugins=plugins,
        logger=build_loggers(cfg) or False,
        default_root_dir=out,
        use_distributed_sampler=False,  # our batch samplers shard themselves and flag padding repeats
        enable_progress_bar=bool(cfg.progress_bar),
    )
    return trainer, best, history


def resolve_ckpt_path(ckpt_path: str | None, out: Path) -> str | None:
    """`last` resumes this output folder's last checkpoint when it exists (and starts fresh otherwise)."""
    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    return ckpt_path


def check_limits(cfg: DictConfig) -> dict[str, Any]:
    """The debugging limits set in `trainer` (for metrics.json "partial"); `overfit_batches` is refused."""
    limits = {k: v for k in ("fast_dev_run", "overfit_batches") if (v := cfg.trainer.get(k))}
    for k in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        if (v := cfg.trainer.get(k)) is not None and (v, type(v)) != (1.0, float):  # 1 is one batch, 1.0 all
            limits[k] = v
    if "overfit_batches" in limits:
        # Lightning swaps the loader's sampler for a sequential one, which our batch samplers cannot take.
        raise NerError(
            "trainer.overfit_batches is not supported: use ++trainer.limit_train_batches=N "
            "++trainer.limit_val_batches=N data.dev=... to train and check on a few batches"
        )
    return limits


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate one configuration; returns the content of `metrics.json`."""
    started = time.perf_counter()
    out = Path(cfg.output_dir)
    limits = check_limits(cfg)
    retrain = retrain_plan(cfg)  # before anything is read or trained: a bad retrain_from fails at once
    if retrain:  # the schedule's length; StopAfterEpochs ends training after retrain["epochs"]
        cfg.trainer.max_epochs = retrain["schedule_epochs"]
    quiet_library_notices()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")  # reads and validates every file before any model is built
    split = datamodule.split
    if split.dev_is_test:
        log.warning(DEV_ON_TEST_WARNING)
    model = build_model(cfg, datamodule.labels)
    trainer, checkpoint, history = build_trainer(cfg, out, retrain)
    if trainer.is_global_zero:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_json(out / "labels.json", datamodule.labels)

    trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.ckpt_path, out))
    epochs, best_epoch = list(history.epochs), history.best if split.has_dev else None  # before reloads
    fit_seconds, processes = history.fit_seconds, history.processes
    best = checkpoint.best_model_path or None if checkpoint else None  # None: evaluate the last weights
    if split.has_dev:
        trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False)

    sizes = {name: len(sentences) for name, sentences in datamodule.sentences.items()}
    evaluated = {name: len(model.predictions.get(name, {})) for name in ("dev", "test")}
    if split.dev_is_test:
        selection = "TEST F1: " + DEV_ON_TEST_WARNING
    elif retrain:
        selection = f"none: the last epoch is kept ({retrain['label']})"
    else:
        selection = "dev F1 (val/f1, max)"
    protocol = {
        "dev": split.description,
        "selection": selection,
        "dev_is_test": split.dev_is_test,
        "scorer": "official JNLPBA rules (evalIOB2.pl); seqeval_default = seqeval's lenient default mode",
        # e.g. "read as IOB1, converted to IOB2": every output is IOB2 (null: the files were IOB2)
        "tagging": datamodule.scheme_note,
    }
    if retrain:  # {trained_on, from, epochs, schedule_epochs, label}
        protocol["retrain"] = retrain
    metrics = {
        "protocol": protocol,
        # None: no dev batch was evaluated (limit_val_batches=0); no "dev" key at all without a dev set
        **({"dev": model.results.get("dev")} if split.has_dev else {}),
        "test": model.results.get("test"),
        "best_epoch": best_epoch["epoch"] if best_epoch else None,
        "best_checkpoint": Path(best).name if best else None,
        **({"kept_epoch": epochs[-1]["epoch"] if epochs else None} if retrain else {}),
        "epochs": epochs,
        "sizes": sizes,
        "timing": {
            "fit_seconds": round(fit_seconds, 2),  # over every process that trained this run
            "processes": processes,  # 1, or more after resumes
            "total_seconds_this_process": round(time.perf_counter() - started, 2),
            "seconds_per_epoch": [e["seconds"] for e in epochs],
        },
        "model": {
            "encoder": cfg.model.encoder,
            "head": cfg.head.name,
            "decode": model.head.decode_modes[0],  # as trained
            "labels": datamodule.labels,
        },
        "seed": cfg.seed,
    }
    if limits:  # a debugging run: say what it skipped
        splits = ("dev", "test") if split.has_dev else ("test",)
        metrics["partial"] = {
            "limits": limits,
            **{name: {"evaluated": evaluated[name], "of": sizes[name]} for name in splits},
        }
    if trainer.is_global_zero:
        write_outputs(out, datamodule, model, metrics)
        print_summary(out, metrics)
    return metrics


def write_outputs(out: Path, datamodule: NerDataModule, model: NerTagger, metrics: dict[str, Any]) -> None:
    """Predictions first, metrics last: a `metrics.json` on disk means the run finished.

    A debugging run that evaluated only some sentences of a split writes predictions of those alone."""
    for name in ("dev", "test") if "dev" in metrics else ("test",):
        predicted = model.predictions.get(name, {})
        sentences = datamodule.sentences[name]
        if len(predicted) == len(sentences) and name == "test":
            text = corpus_predictions(datamodule.test_corpus, [predicted[i] for i in range(len(sentences))])
        else:
            kept = sorted(predicted)
            text = sentence_predictions([sentences[i] for i in kept], [predicted[i] for i in kept])
        atomic_write_text(out / "predictions" / f"{name}.iob2", text)
    if metrics["protocol"]["dev_is_test"]:
        atomic_write_text(out / "predictions" / "PROTOCOL.txt", DEV_ON_TEST_WARNING + "\n")
    write_json(out / "metrics.json", metrics)


def print_summary(out: Path, metrics: dict[str, Any]) -> None:
    """What a run ends with on the console: its scores, where its files are and what to run next."""
    rows = []
    for name in ("dev", "test") if "dev" in metrics else ("test",):  # no dev block: trained on train+dev
        scores = metrics[name] or {}  # None: not evaluated (limit_val_batches=0)
        micro, macro = scores.get("micro", {}), scores.get("macro", {})
        rows.append({"split": name, "micro F1": micro.get("f1"), "macro F1": macro.get("f1")})
    protocol = metrics["protocol"]
    console = Console(highlight=False, soft_wrap=True)  # soft wrap: long paths stay copyable
    console.print(Table("Run finished", rows))
    console.print(f"dev: {protocol['dev']}; model selection: {protocol['selection']}")
    if protocol.get("retrain"):
        console.print(f"[bold]{protocol['retrain']['label']}[/]")
    if protocol.get("tagging"):
        console.print(f"tags: {protocol['tagging']}; predictions are written in IOB2")
    if "partial" in metrics:
        partial = metrics["partial"]
        shown = ", ".join(
            f"{n} {partial[n]['evaluated']} of {partial[n]['of']}" for n in ("dev", "test") if n in partial
        )
        console.print(f"[bold yellow]partial run[/] {partial['limits']}: scores of {shown} sentences only")
    ckpt = out / "checkpoints" / (metrics["best_checkpoint"] or "last.ckpt")
    kept = (
        f"kept epoch: {metrics['kept_epoch']}"
        if "kept_epoch" in metrics
        else f"best epoch: {metrics['best_epoch']}"
    )
    console.print(f"{kept}; run folder: {out}")
    shown = "{dev,test}.iob2" if "dev" in metrics else "test.iob2"
    console.print(f"  metrics.json, predictions/{shown}, checkpoints/, logs/, config.yaml")
    console.print("next:")
    console.print(f"  python -m ner score {out / 'predictions' / 'test.iob2'}")
    console.print(f"  python -m ner predict --ckpt {ckpt} TEXT_FILE")
    console.print(f"  python -m ner export --ckpt {ckpt} --out {out / 'hf'}")
