"""The head interface: what the model, evaluation, inference and export may ask of a head, and nothing more.

Nothing outside `ner/heads/` checks a head's class or reads its attributes; a new head implements this
`Protocol` (as an `nn.Module`), is registered in `HEADS` and gets one YAML in the head config group.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn


@dataclass(frozen=True)
class ExportedDecoder:
    """How an exported model decodes when an argmax per word is not enough (`ner.inference.hf`).

    `kind` "crf": Viterbi over the emissions, confidences from forward-backward marginals; "softmax_viterbi":
    Viterbi over per-word log-softmax, confidences from the softmax. Scores: `start`, `end` (labels,) and
    `transitions` (from, to), disallowed entries very negative or -inf.
    """

    kind: str
    start: Tensor
    end: Tensor
    transitions: Tensor


@runtime_checkable
class Head(Protocol):
    """Word emissions (batch, words, labels) and a word mask (batch, words) in; a loss or label paths out."""

    labels: list[str]
    # what `decode(mode=)` accepts; [0] is the mode the head was configured with
    decode_modes: tuple[str, ...]

    def __call__(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """The training loss (a scalar), as `nn.Module.__call__` runs `forward`."""
        ...

    def decode(self, emissions: Tensor, mask: Tensor, mode: str | None = None) -> list[list[int]]:
        """Best label ids per sequence, each of length mask[i].sum(); `mode` None: `decode_modes[0]`."""
        ...

    def scores(self, emissions: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per-word confidence in `paths` (a probability in [0, 1])."""
        ...

    def export_decoder(self, mode: str | None = None) -> ExportedDecoder | None:
        """What an exported folder needs to decode in `mode`; None: an argmax of the emissions per word,
        which a standard Hugging Face token classifier does on its own."""
        ...

    def parameters(self) -> Iterator[nn.Parameter]:
        """The head's own parameters (given `head.lr`), as `nn.Module.parameters`."""
        ...


def check_mode(head: Head, mode: str | None) -> str:
    """`mode`, or the configured one when None; a ValueError naming the head's modes otherwise."""
    if mode is None:
        return head.decode_modes[0]
    if mode not in head.decode_modes:
        raise ValueError(
            f"unknown decode mode {mode!r} for this head; expected one of {list(head.decode_modes)}"
        )
    return mode
