"""Tagging schemes: every file is read in its declared scheme and converted to IOB2, which heads, metrics
and output files use.

- `iob2`: `B-X` begins every entity, `I-X` continues it (JNLPBA, most BIO corpora);
- `iob1`: `I-X` begins an entity; `B-X` only where an X entity directly follows another (original CoNLL-2003);
- `iobes`: `B-`egin, `I-`nside, `E-`nd of a multi-word entity, `S-`ingle-word entity;
- `bilou`: the same with `L-`ast and `U-`nit.

Typeless tags (`B`, `I`, ...: BC2GM, the BLURB layouts) take `default_type`. A gold sequence that breaks
its scheme's rules is an error; predicted tags are converted without checks (invalid BIO is scored as the
official scorer scores it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ner.errors import NerError

SCHEMES = ("iob2", "iob1", "iobes", "bilou")  # also the order in which `guess_scheme` prefers them
# Each scheme's prefixes and their IOB2 prefix where the mapping is per tag (iob1 needs the previous tag).
PREFIXES = {
    "iob2": {"B": "B", "I": "I"},
    "iob1": {"B": "B", "I": "I"},
    "iobes": {"B": "B", "I": "I", "E": "I", "S": "B"},
    "bilou": {"B": "B", "I": "I", "L": "I", "U": "B"},
}
OUTSIDE = ("O", None)
GUESS_TYPE = "ENTITY"  # stands in for the type of typeless tags while guessing a file's scheme


class SchemeError(ValueError):
    """A tag or tag sequence that does not fit its scheme; `position` is the offending word."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(problem)
        self.position = position


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise NerError(
            f"unknown tagging scheme {scheme!r} (data.scheme); expected one of {', '.join(SCHEMES)}"
        )


def parse_tag(tag: str, scheme: str, default_type: str | None = None) -> tuple[str, str | None]:
    """`'S-protein'` -> `('S', 'protein')`, `'B'` -> `('B', default_type)`, `'O'` -> `('O', None)`."""
    if tag == "O":
        return OUTSIDE
    prefix, sep, entity_type = tag.partition("-")
    if prefix not in PREFIXES[scheme]:
        expected = "O or " + "/".join(f"{p}-<type>" for p in PREFIXES[scheme])
        raise ValueError(f"tag {tag!r} is not valid {scheme.upper()} (expected {expected})")
    if not sep:
        if default_type is None:
            raise ValueError(f"tag {tag!r} has no entity type: set data.default_type=NAME")
        return prefix, default_type
    if not entity_type:
        raise ValueError(f"tag {tag!r} has an empty entity type")
    return prefix, entity_type


def _problem(
    tags: Sequence[str], parsed: Sequence[tuple[str, str | None]], scheme: str
) -> SchemeError | None:
    """The first place where a parsed sequence breaks its scheme's rules, or None."""

    def opens(k: int, entity_type: str | None) -> bool:  # word k leaves an entity of this type open
        return 0 <= k < len(parsed) and parsed[k][0] in ("B", "I") and parsed[k][1] == entity_type

    def closes(k: int, entity_type: str | None) -> bool:  # word k continues or ends an open entity
        return k < len(parsed) and parsed[k][0] in ("I", "E", "L") and parsed[k][1] == entity_type

    def before(k: int) -> str:
        return f"after {tags[k - 1]}" if k > 0 else "at the sentence start"

    for i, (prefix, entity_type) in enumerate(parsed):
        if scheme == "iob2" and prefix == "I" and i > 0 and not opens(i - 1, entity_type):
            # a sentence-initial I- is accepted: a sentence split inside an entity (JNLPBA has four)
            return SchemeError(i, f"{tags[i]} {before(i)} is not valid IOB2")
        if scheme == "iob1" and prefix == "B" and not opens(i - 1, entity_type):
            return SchemeError(
                i, f"{tags[i]} {before(i)} is not valid IOB1 (B- only splits two adjacent entities)"
            )
        if scheme in ("iobes", "bilou"):
            if prefix in ("I", "E", "L") and not opens(i - 1, entity_type):
                return SchemeError(i, f"{tags[i]} {before(i)} is not valid {scheme.upper()}")
            if prefix in ("B", "I") and not closes(i + 1, entity_type):
                after = f"before {tags[i + 1]}" if i + 1 < len(tags) else "at the sentence end"
                return SchemeError(i, f"{tags[i]} {after} is not valid {scheme.upper()}")
    return None


def to_iob2(
    tags: Sequence[str], scheme: str = "iob2", default_type: str | None = None, strict: bool = True
) -> list[str]:
    """The IOB2 tags of one sentence read in `scheme`.

    `strict`: raise SchemeError where the sequence breaks the scheme (gold); else convert tag by tag
    (predictions, which may be invalid). IOB2 input is returned as it is: gold is never repaired here.
    """
    parsed = []
    for i, tag in enumerate(tags):
        try:
            parsed.append(parse_tag(tag, scheme, default_type))
        except ValueError as error:
            raise SchemeError(i, str(error)) from None
    if strict and (problem := _problem(tags, parsed, scheme)) is not None:
        raise problem
    iob2, previous = [], OUTSIDE
    for prefix, entity_type in parsed:
        prefix = "O" if entity_type is None else PREFIXES[scheme][prefix]
        if scheme == "iob1" and prefix == "I" and previous[1] != entity_type:
            prefix = "B"  # IOB1 begins an entity with I- wherever it does not continue one
        iob2.append("O" if prefix == "O" else f"{prefix}-{entity_type}")
        previous = (prefix, entity_type)
    return iob2


def guess_scheme(sentences: Iterable[Sequence[str]], default_type: str | None = None) -> str | None:
    """The first scheme of `SCHEMES` that every sentence fits, or None (for the hint in an error)."""
    sentences = list(sentences)
    for scheme in SCHEMES:
        try:
            for tags in sentences:
                to_iob2(tags, scheme, default_type or GUESS_TYPE)
        except SchemeError:
            continue
        return scheme
    return None


def scheme_note(scheme: str, default_type: str | None = None) -> str | None:
    """How the files were read, for a run's outputs; None for IOB2 files with typed tags."""
    parts = [f"read as {scheme.upper()}, converted to IOB2"] if scheme != "iob2" else []
    if default_type is not None:
        parts.append(f"typeless tags read as type {default_type!r}")
    return "; ".join(parts) or None
