"""Train and evaluate one run: `python experiments/run.py head=crf model=minilm seed=3 ...` (Hydra).

`ckpt_path=last` resumes the run in its folder: from `checkpoints/last.ckpt` when it was interrupted, not at
all when it has finished (`metrics.json`). A folder that another process is training is refused.
With `-m` it is a Hydra sweep, e.g. the study: `python experiments/run.py -m ablation=heads` (README).
`data.dev=none retrain_from=RUN` is the final retrain on train+dev (no dev: returns None to a sweeper).
"""

from contextlib import nullcontext

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from ner.config import register_resolvers
from ner.errors import user_errors
from ner.evaluation.run_folder import RunFolder
from ner.files import run_lock
from ner.train import run as train

register_resolvers()


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> float:
    # In a sweep a run's error goes to Hydra's job runner, which reports it (the study's callback goes on).
    errors = nullcontext() if HydraConfig.get().mode == RunMode.MULTIRUN else user_errors()
    with errors, run_lock(cfg.output_dir):
        run = RunFolder(cfg.output_dir)
        if cfg.ckpt_path == "last" and run.finished:
            print(f"{run.path}: finished already (metrics.json), skipped")
            return dev_f1(run.metrics)
        return dev_f1(train(cfg))  # returned for Hydra sweepers that optimise dev F1


def dev_f1(metrics: dict) -> float | None:
    """None for a run that scored no dev sentence (e.g. ++trainer.limit_val_batches=0)."""
    return (metrics.get("dev") or {}).get("micro", {}).get("f1")


if __name__ == "__main__":
    main()
