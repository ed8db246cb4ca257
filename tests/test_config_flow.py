"""Config flows one way: the composed Hydra config -> `build_model` -> `NerTagger`'s arguments, one key to
one argument; nothing popped or moved. `optim.lr`, `optim.head_lr` and `head.lr` each reach their own
parameters, and the training windows (`data.max_length`, `data.stride`) travel in the hyperparameters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_config import compose_config

from ner.tags import build_labels
from ner.train import build_model

LABELS = build_labels(["DNA", "protein"])


def learning_rates(model) -> dict[str, set[float]]:
    """{`encoder` | `emissions` | `head`: the learning rates its parameters get from the optimizer}."""
    model._trainer = SimpleNamespace(estimated_stepping_batches=10)  # all configure_optimizers reads of it
    optimizer = model.configure_optimizers()["optimizer"]
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    parts = {"encoder": model.encoder, "emissions": model.emissions, "head": model.head}
    return {name: {lr_of[id(p)] for p in part.parameters()} for name, part in parts.items()}


@pytest.fixture(scope="module")
def crf_model():
    cfg = compose_config(
        [
            "experiment=quickstart",
            "head=crf",
            "optim.lr=0.01",
            "optim.head_lr=0.02",
            "head.lr=0.03",
            "optim.warmup_ratio=0",  # the scheduler's first factor is then 1: group lr = configured lr
            "head.options.constrained=false",
            "data.max_length=64",
            "data.stride=16",
        ]
    )
    return build_model(cfg, LABELS)


def test_each_learning_rate_reaches_its_own_parameters(crf_model):
    assert learning_rates(crf_model) == {"encoder": {0.01}, "emissions": {0.02}, "head": {0.03}}
    assert (crf_model.hparams.lr, crf_model.hparams.emission_lr, crf_model.hparams.head_lr) == (
        0.01,
        0.02,
        0.03,
    )


def test_head_options_and_windows_reach_the_model(crf_model):
    assert crf_model.hparams.head == "crf" and crf_model.hparams.head_options == {"constrained": False}
    assert not crf_model.head.constrained
    assert (crf_model.hparams.max_length, crf_model.hparams.stride) == (64, 16)


def test_defaults_keep_the_model_cards_recipe():
    """Emission layer at the encoder's rate (as before `optim.head_lr` had a meaning), CRF at 1e-3."""
    cfg = compose_config(["experiment=quickstart", "head=crf", "optim.warmup_ratio=0"])
    rates = learning_rates(build_model(cfg, LABELS))
    assert rates == {"encoder": {cfg.optim.lr}, "emissions": {cfg.optim.lr}, "head": {1e-3}}
    softmax = build_model(compose_config(["experiment=quickstart", "head.options.decode=viterbi"]), LABELS)
    assert softmax.head.decode_modes[0] == "viterbi" and list(softmax.head.parameters()) == []
    assert (softmax.hparams.max_length, softmax.hparams.stride) == (128, None)
