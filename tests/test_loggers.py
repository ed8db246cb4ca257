"""The `logger` config group: every choice composes into Lightning loggers; mlflow logs offline into the
run folder; a logger whose package is missing is one clear error naming the extra to install."""

from __future__ import annotations

import pytest
from test_config import CONFIGS, compose_config

from ner.errors import NerError
from ner.train import build_loggers, run


@pytest.mark.parametrize("choice", sorted(p.stem for p in (CONFIGS / "logger").glob("*.yaml")))
def test_every_logger_choice_composes(choice):
    cfg = compose_config([f"logger={choice}"])
    assert all("_target_" in options for options in cfg.logger.values())


def test_default_is_csv_and_tensorboard(tmp_path):
    cfg = compose_config([f"output_dir={tmp_path}"])
    names = [type(logger).__name__ for logger in build_loggers(cfg)]
    assert names == ["ResumableCSVLogger", "TensorBoardLogger"]


def test_quickstart_with_mlflow_logs_into_a_local_store(tmp_path):
    from mlflow.tracking import MlflowClient

    overrides = ["experiment=quickstart", "progress_bar=false", "trainer.max_epochs=2", "logger=mlflow"]
    metrics = run(compose_config([*overrides, f"output_dir={tmp_path}", "++trainer.limit_train_batches=3"]))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("ner").experiment_id])
    history = client.get_metric_history(mlflow_run.info.run_id, "val/f1")
    values = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
    # one value per epoch, then the final evaluation of the best checkpoint
    assert values == pytest.approx([*(e["dev_f1"] for e in metrics["epochs"]), metrics["dev"]["micro"]["f1"]])
    losses = client.get_metric_history(mlflow_run.info.run_id, "train/loss")
    assert losses and all(m.value > 0 for m in losses)
    assert mlflow_run.data.params["head"] == "softmax"  # the hyperparameters arrive too


def test_a_missing_logger_package_names_the_extra(monkeypatch, tmp_path):
    import lightning.pytorch.loggers.wandb as wandb_logger

    monkeypatch.setattr(wandb_logger, "_WANDB_AVAILABLE", False)  # as where wandb is not installed
    with pytest.raises(NerError, match=r"pip install -e '\.\[wandb\]'"):
        build_loggers(compose_config(["logger=wandb", f"output_dir={tmp_path}"]))
