"""What a row of the comparison is: an arm = the runs of one head, decoded one way.

Arms that share a head share its training runs: `softmax`, `softmax-viterbi` and the model card's protocol
all evaluate the same softmax runs, so the sweep (`experiments/configs/ablation/heads.yaml`) trains one run
per head x seed and no more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ner.errors import NerError

PROTOCOLS = ("honest", "card", "both")


@dataclass(frozen=True)
class Arm:
    """The runs of `head`, decoded with the head's decode mode `decode` (None: as trained, the run itself)."""

    name: str
    head: str
    decode: str | None = None


def arms_in_use(
    arms: Mapping[str, Mapping[str, str | None]], card_arms: Sequence[str] = (), protocol: str = "both"
) -> tuple[tuple[Arm, ...], tuple[Arm, ...]]:
    """`(honest arms, card arms)` that `protocol` evaluates, from the study config's `{name: {head, decode}}`
    (in config order); `card_arms` name arms of `arms`."""
    if protocol not in PROTOCOLS:
        raise NerError(f"protocol={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    by_name = {}
    for name, spec in arms.items():
        if "head" not in spec:
            raise NerError(f"study arm {name!r} needs a head (e.g. head: softmax)")
        unknown = set(spec) - {"head", "decode"}
        if unknown:
            raise NerError(f"study arm {name!r}: unknown keys {sorted(unknown)} (expected head, decode)")
        by_name[str(name)] = Arm(str(name), str(spec["head"]), spec.get("decode"))
    if not by_name:
        raise NerError("the study has no arms")
    missing = [a for a in card_arms if a not in by_name]
    if missing:
        raise NerError(f"card_arms {missing} are not arms of the study ({', '.join(by_name)})")
    honest = tuple(by_name.values()) if protocol != "card" else ()
    card = tuple(by_name[a] for a in card_arms) if protocol != "honest" else ()
    return honest, card
