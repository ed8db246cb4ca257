"""Raw text -> sentences of GENIA-style tokens, with character offsets into the input.

The model only ever saw JNLPBA's tokens, so inference must cut raw text the same way: brackets,
commas, colons, semicolons, `=`, `<`, `>`, `%` and double quotes split off wherever they occur; a
sentence's final `.`, `?` or `!` split off; `'s` split off; hyphens, slashes, `+`, primes and inner
dots kept (`NF-kappa`, `IL-2`, `CD4+`, `+/-`, `C/EBP`, `5'-flanking`, `PU.1`, `0.05`, `T-`).
Abbreviations keep their dot (`e.g.`, `i.e.`, `et al.`, `S.D.`), and so does a lone capital before a
lower-case word (`E. coli`), but not before anything else (`NF-kappa B.` ends a sentence).

Retokenizing the corpus' own tokens joined by spaces returns them unchanged for nearly every token
(tests/test_text.py measures it on the JNLPBA test file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPLIT_ANYWHERE = '()[]{},;:=<>%"'
SENTENCE_END = (".", "?", "!")
# Abbreviations that keep their final dot (lower-cased); "etc." is left out: it usually ends a sentence.
ABBREVIATIONS = {
    "al.", "approx.", "ca.", "cf.", "dr.", "e.g.", "fig.", "figs.", "i.e.", "no.", "nos.", "prof.",
    "ref.", "refs.", "resp.", "vs.", "viz.",
}  # fmt: skip
_PIECES = re.compile("[" + re.escape(SPLIT_ANYWHERE) + "]|[^" + re.escape(SPLIT_ANYWHERE) + "]+")
_LETTER_DOTS = re.compile(r"(?:[A-Za-z]\.){2,}")  # S.D., i.p., U.S.
_INITIAL = re.compile(r"[A-Z]\.")  # E. (coli), M. (tuberculosis)
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Token:
    """One token: its text and where it is in the input, `text == input[start:end]`."""

    text: str
    start: int
    end: int


def _keeps_dot(piece: str, next_char: str) -> bool:
    """Whether a piece ending in `.` is an abbreviation (its dot is part of it)."""
    if piece.lower() in ABBREVIATIONS or _LETTER_DOTS.fullmatch(piece):
        return True
    return bool(_INITIAL.fullmatch(piece)) and next_char.islower()


def _split_piece(text: str, start: int, end: int, next_char: str) -> list[Token]:
    """Peel quotes, `'s` and final punctuation off one piece free of SPLIT_ANYWHERE characters."""
    head: list[Token] = []
    tail: list[Token] = []
    while start < end:
        piece = text[start:end]
        if len(piece) > 1 and piece[0] in "'`" and piece[1].isalnum() and piece.lower() != "'s":
            head.append(Token(piece[0], start, start + 1))
            start += 1
        elif len(piece) > 3 and piece.endswith("..."):
            tail.append(Token("...", end - 3, end))
            end -= 3
        elif len(piece) > 1 and piece[-1] in "?!":
            tail.append(Token(piece[-1], end - 1, end))
            end -= 1
        elif len(piece) > 1 and piece[-1] == "." and not _keeps_dot(piece, next_char):
            tail.append(Token(".", end - 1, end))
            end -= 1
        elif len(piece) > 2 and piece[-2:].lower() == "'s":
            tail.append(Token(piece[-2:], end - 2, end))
            end -= 2
        elif len(piece) > 1 and piece[-1] == "'" and piece[-2].isalpha():  # a closing quote (5' is a prime)
            tail.append(Token(piece[-1], end - 1, end))
            end -= 1
        else:
            head.append(Token(piece, start, end))
            break
    return head + tail[::-1]


def tokenize(text: str) -> list[Token]:
    """GENIA-style tokens of `text`, with their character offsets."""
    tokens: list[Token] = []
    chunks = list(re.finditer(r"\S+", text))
    for k, chunk in enumerate(chunks):
        # the next word's first character decides whether a lone capital's dot is an abbreviation's
        following = chunks[k + 1].group()[0] if k + 1 < len(chunks) else ""
        for piece in _PIECES.finditer(chunk.group()):
            start, end = chunk.start() + piece.start(), chunk.start() + piece.end()
            if piece.group() in SPLIT_ANYWHERE:
                tokens.append(Token(piece.group(), start, end))
            else:
                next_char = text[end] if end < chunk.end() else following
                tokens.extend(_split_piece(text, start, end, next_char))
    return tokens


def split_sentences(text: str) -> list[list[Token]]:
    """Sentences of `text` as token lists: each ends after a standalone `.`, `?` or `!`, or at a blank line.

    A dot that belongs to an abbreviation never ends a sentence, because `tokenize` keeps it attached.
    """
    sentences: list[list[Token]] = []
    position = 0
    paragraphs = [*_PARAGRAPH.finditer(text), None]
    for separator in paragraphs:
        stop = separator.start() if separator else len(text)
        current: list[Token] = []
        for token in tokenize(text[position:stop]):
            current.append(Token(token.text, token.start + position, token.end + position))
            if token.text in SENTENCE_END:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        position = separator.end() if separator else len(text)
    return sentences
