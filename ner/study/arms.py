"""The grid of an ablation study: arms, the training tasks they need, and each task's command line.

An arm is a trained head plus a way to decode and score it. Arms that share a head share its training runs:
`softmax`, `softmax-viterbi` and the model card's protocol all evaluate the same softmax runs, so the grid
trains one run per head x seed and no more. A training task is one process (`experiments/run.py` with
overrides) writing to `STUDY/runs/{head}-seed{seed}/`, so the same list runs on a laptop, one GPU or as a
SLURM array.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ner.errors import NerError

PROTOCOLS = ("honest", "card", "both")
# Overrides every training task gets: resumable, quiet, and every epoch kept for the evaluation arms.
TASK_OVERRIDES = ("progress_bar=false", "ckpt_path=last", "keep_epoch_checkpoints=true")


@dataclass(frozen=True)
class Arm:
    """What one row of the comparison is: the runs of `head`, decoded with `decode` (None: as trained)."""

    name: str
    head: str
    decode: str | None = None


@dataclass(frozen=True)
class TrainTask:
    """One training run of the grid: `python experiments/run.py <overrides>` into `run_dir`."""

    index: int
    head: str
    seed: int
    run_dir: Path
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        return run_name(self.head, self.seed)

    @property
    def log(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + ".log")

    def command(self, python: str, script: str | Path) -> list[str]:
        return [python, str(script), *self.overrides]

    def shell(self, python: str, script: str | Path) -> str:
        return shlex.join(self.command(python, script))


@dataclass(frozen=True)
class Study:
    """A whole ablation: its folder, arms, seeds, which arms the card protocol re-scores, and the tasks."""

    name: str
    dir: Path
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    protocol: str
    card_arms: tuple[Arm, ...] = ()
    tasks: tuple[TrainTask, ...] = field(default=())

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def comparison_dir(self) -> Path:
        return self.dir / "comparison"

    @property
    def honest_arms(self) -> tuple[Arm, ...]:
        return self.arms if self.protocol in ("honest", "both") else ()

    @property
    def card_arms_used(self) -> tuple[Arm, ...]:
        return self.card_arms if self.protocol in ("card", "both") else ()


def run_name(head: str, seed: int) -> str:
    return f"{head}-seed{seed}"


def override_key(override: str) -> str:
    """`++trainer.x=1` -> `trainer.x`: the key an override sets (later overrides of a key win)."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(*groups: Iterable[str]) -> list[str]:
    """Concatenate override lists; when a key repeats, its last value wins, in its first position."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            if "=" not in override:
                raise NerError(f"override {override!r} is not KEY=VALUE")
            merged[override_key(override)] = override
    return list(merged.values())


def parse_arms(arms: Mapping[str, Mapping[str, str | None]]) -> tuple[Arm, ...]:
    """`{name: {head, decode}}` from the study config, in config order."""
    parsed = []
    for name, spec in arms.items():
        if "head" not in spec:
            raise NerError(f"ablation arm {name!r} needs a head (e.g. head: softmax)")
        unknown = set(spec) - {"head", "decode"}
        if unknown:
            raise NerError(f"ablation arm {name!r}: unknown keys {sorted(unknown)} (expected head, decode)")
        parsed.append(Arm(str(name), str(spec["head"]), spec.get("decode")))
    if not parsed:
        raise NerError("the ablation has no arms")
    return tuple(parsed)


def build_study(
    name: str,
    study_dir: str | Path,
    arms: Mapping[str, Mapping[str, str | None]],
    seeds: Sequence[int],
    run_overrides: Sequence[str],
    protocol: str = "both",
    card_arms: Sequence[str] = (),
) -> Study:
    """The study and its training tasks, seed-major (seed 1's heads first, so pairs finish early).

    `run_overrides` go to every training run (model, data, trainer, ...); the task adds head, seed, the
    resume/checkpoint settings and its own `hydra.run.dir`.
    """
    if protocol not in PROTOCOLS:
        raise NerError(f"protocol={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise NerError(f"ablation seeds must be distinct and non-empty, got {list(seeds)}")
    parsed = parse_arms(arms)
    by_name = {arm.name: arm for arm in parsed}
    missing = [a for a in card_arms if a not in by_name]
    if missing:
        raise NerError(f"card_arms {missing} are not arms of the study ({', '.join(by_name)})")
    study_dir = Path(study_dir).absolute()
    study = Study(name, study_dir, parsed, tuple(seeds), protocol, tuple(by_name[a] for a in card_arms))
    used = {arm.head for arm in (*study.honest_arms, *study.card_arms_used)}
    heads = [h for h in dict.fromkeys(arm.head for arm in parsed) if h in used]
    tasks = []
    for seed in seeds:
        for head in heads:
            run_dir = study.runs_dir / run_name(head, seed)
            overrides = merge_overrides(
                [f"head={head}", f"seed={seed}"], run_overrides, TASK_OVERRIDES, [f"hydra.run.dir={run_dir}"]
            )
            tasks.append(TrainTask(len(tasks), head, seed, run_dir, tuple(overrides)))
    return Study(study.name, study.dir, study.arms, study.seeds, protocol, study.card_arms, tuple(tasks))
