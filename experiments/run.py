"""Train and evaluate one run: `python experiments/run.py head=crf model=minilm seed=3 ...` (Hydra)."""

import hydra
from omegaconf import DictConfig

from ner.config import register_resolvers
from ner.errors import user_errors
from ner.train import run

register_resolvers()


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> float:
    with user_errors():
        return run(cfg)["dev"]["micro"]["f1"]  # returned for Hydra sweepers that optimise dev F1


if __name__ == "__main__":
    main()
