"""Run an ablation: `python experiments/ablate.py ablation=heads model=minilm data.dir=DIR [action=run]`.

Actions (see the README, *Ablation*): list | status | one index=N | train | evaluate | compare | run.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ner.config import register_resolvers
from ner.errors import user_errors
from ner.study.actions import run_action
from ner.study.arms import build_study, override_key

register_resolvers()
RUN_SCRIPT = Path(__file__).with_name("run.py")


def run_overrides(cfg: DictConfig, given: list[str]) -> list[str]:
    """What every training run gets: this model and data (with any data.* / model.* given here), then the
    study's overrides, then `extra`."""
    forwarded = [
        o for o in given if override_key(o).startswith(("data.", "model.")) and override_key(o) != "data.dir"
    ]
    return [
        f"model={cfg.model.name}",
        f"data={cfg.data.name}",
        f"data.dir={Path(cfg.data.dir).absolute()}",
        *forwarded,
        *cfg.ablation.overrides,
        *cfg.extra,
    ]


@hydra.main(version_base="1.3", config_path="configs", config_name="ablate")
def main(cfg: DictConfig) -> None:
    with user_errors():
        study = build_study(
            name=cfg.ablation.name,
            study_dir=cfg.study_dir,
            arms=OmegaConf.to_container(cfg.ablation.arms, resolve=True),
            seeds=list(cfg.ablation.seeds),
            run_overrides=run_overrides(cfg, list(HydraConfig.get().overrides.task)),
            protocol=cfg.protocol,
            card_arms=list(cfg.ablation.card_arms),
        )
        try:
            code = run_action(
                study,
                cfg.action,
                RUN_SCRIPT,
                index=cfg.index,
                jobs=cfg.jobs,
                gpus=[str(g) for g in cfg.gpus],
                force=cfg.force,
                device=cfg.device,
                redo=cfg.redo,
                resamples=cfg.resamples,
                seed=cfg.stats_seed,
            )
        except KeyboardInterrupt:  # the runs keep their last checkpoint: the next call resumes them
            code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
