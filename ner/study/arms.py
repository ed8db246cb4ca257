"""What a row of the comparison is: an arm = the runs of one head (and training config), decoded one way.

Arms that share a head share its training runs: `softmax`, `softmax-viterbi` and the model card's protocol
all evaluate the same softmax runs, so the sweep (`experiments/configs/ablation/heads.yaml`) trains one run
per head x seed and no more. An arm may also name training settings beyond the head, which select its runs
by their saved config: `{head: crf, context: 64}` is the CRF runs trained with `data.context=64`
(`experiments/configs/ablation/recipe.yaml`). `context` is short for `data.context`; any other dotted config
key works too. A setting that is off (0, false, null) matches runs that lack the key (trained before it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from ner.errors import NerError

if TYPE_CHECKING:
    from ner.evaluation.run_folder import RunFolder

PROTOCOLS = ("honest", "card", "both")
ALIASES = {"context": "data.context"}  # an arm's short names for training config keys


@dataclass(frozen=True)
class Arm:
    """The runs of `head`, decoded with the head's decode mode `decode` (None: as trained, the run itself)."""

    name: str
    head: str
    decode: str | None = None
    config: tuple[tuple[str, Any], ...] = ()  # (config key, value) pairs the arm's runs were trained with

    def matches(self, run: RunFolder) -> bool:
        """Whether `run` is one of this arm's runs: its head, and every config setting the arm names."""
        if run.head != self.head:
            return False
        config = run.config
        return all(_off(OmegaConf.select(config, key, default=None)) == _off(v) for key, v in self.config)


def _off(value: Any) -> Any:
    """0, false and null are one value, "off" (a run saved before a setting existed has it off)."""
    return None if value in (None, False, 0) else value


def arms_in_use(
    arms: Mapping[str, Mapping[str, str | None]], card_arms: Sequence[str] = (), protocol: str = "both"
) -> tuple[tuple[Arm, ...], tuple[Arm, ...]]:
    """`(honest arms, card arms)` that `protocol` evaluates, from the study config's `{name: {head, decode,
    [config keys]}}` (in config order); `card_arms` name arms of `arms`."""
    if protocol not in PROTOCOLS:
        raise NerError(f"protocol={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    by_name = {}
    for name, spec in arms.items():
        if "head" not in spec:
            raise NerError(f"study arm {name!r} needs a head (e.g. head: softmax)")
        unknown = {k for k in spec if k not in ("head", "decode", *ALIASES) and "." not in str(k)}
        if unknown:
            raise NerError(
                f"study arm {name!r}: unknown keys {sorted(unknown)} (expected head, decode, "
                f"{', '.join(ALIASES)} or a dotted config key such as data.context_dropout)"
            )
        config = tuple((ALIASES.get(k, k), v) for k, v in spec.items() if k not in ("head", "decode"))
        by_name[str(name)] = Arm(str(name), str(spec["head"]), spec.get("decode"), config)
    if not by_name:
        raise NerError("the study has no arms")
    seen: dict[tuple, str] = {}
    for arm in by_name.values():
        key = (arm.head, arm.decode, tuple(sorted((k, _off(v)) for k, v in arm.config)))
        if key in seen:  # e.g. a context arm whose context is 0: it would score the same runs twice
            hint = (
                "; with no context in the recipe, give study.context=N"
                if dict(arm.config).get("data.context") is not None
                else ""
            )
            raise NerError(
                f"study arms {seen[key]!r} and {arm.name!r} select the same runs the same way: {key}{hint}"
            )
        seen[key] = arm.name
    missing = [a for a in card_arms if a not in by_name]
    if missing:
        raise NerError(f"card_arms {missing} are not arms of the study ({', '.join(by_name)})")
    honest = tuple(by_name.values()) if protocol != "card" else ()
    card = tuple(by_name[a] for a in card_arms) if protocol != "honest" else ()
    return honest, card
