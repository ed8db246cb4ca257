"""GENIA-style tokenization and sentence splitting of raw text (`ner.inference.text`)."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from ner.data.reader import read_iob2
from ner.inference.text import split_sentences, tokenize

ROOT = Path(__file__).resolve().parents[1]


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # punctuation split off, hyphenated and slashed terms whole (the corpus' own tokens)
        (
            "levels of glucocorticoid receptors (GR) in lymphocytes,",
            "levels of glucocorticoid receptors ( GR ) in lymphocytes ,",
        ),
        ("NF-kappa B-mediated IL-2 gene expression", "NF-kappa B-mediated IL-2 gene expression"),
        ("C/EBP and CD4+ T-cells (+/-)", "C/EBP and CD4+ T-cells ( +/- )"),
        ("[3H]-thymidine uptake", "[ 3H ] -thymidine uptake"),
        ("1,25-dihydroxyvitamin D3", "1 , 25-dihydroxyvitamin D3"),
        ("p<0.05 in 50% of cases; ratio=2:1", "p < 0.05 in 50 % of cases ; ratio = 2 : 1"),
        ("PU.1 and Oct-2 bind the 5'-flanking region.", "PU.1 and Oct-2 bind the 5'-flanking region ."),
        ('the patient\'s "activated" cells', 'the patient \'s " activated " cells'),
        ("T- and B-lymphocytes", "T- and B-lymphocytes"),
        # abbreviations keep their dot; a lone capital keeps it only before a lower-case word
        ("e.g. IL-4, i.e. S.D. of cells (Li et al.)", "e.g. IL-4 , i.e. S.D. of cells ( Li et al. )"),
        ("E. coli and M. tuberculosis", "E. coli and M. tuberculosis"),
        ("activation of NF-kappa B. The", "activation of NF-kappa B . The"),
        ("Why? Because!", "Why ? Because !"),
    ],
)
def test_tokens_match_the_corpus_conventions(text, expected):
    assert words(text) == expected.split()


def test_offsets_point_into_the_input():
    rng = random.Random(0)
    alphabet = "aB1 -/.,;:()[]'\"%+=<>\n\tαβ"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        tokens = tokenize(text)
        assert all(text[t.start : t.end] == t.text and t.text.strip() == t.text and t.text for t in tokens)
        assert all(a.end <= b.start for a, b in zip(tokens, tokens[1:], strict=False))
        # nothing but whitespace is dropped
        assert "".join(t.text for t in tokens) == "".join(text.split())


def test_sentences_end_at_final_punctuation_and_blank_lines():
    text = (
        "NF-kappa B binds DNA. E. coli was used, e.g. in Fig. 2. Does it?\n\nA title without a dot\nThe end"
    )
    sentences = [" ".join(t.text for t in s) for s in split_sentences(text)]
    assert sentences == [
        "NF-kappa B binds DNA .",
        "E. coli was used , e.g. in Fig. 2 .",
        "Does it ?",
        "A title without a dot The end",
    ]
    flat = [t for s in split_sentences(text) for t in s]
    assert all(text[t.start : t.end] == t.text for t in flat)


def test_empty_and_blank_text():
    assert tokenize("") == [] and split_sentences("") == [] and split_sentences(" \n\n \t") == []


@pytest.mark.corpus
def test_retokenizing_the_corpus_keeps_its_tokens_and_sentences(jnlpba_dir):
    corpus = read_iob2(jnlpba_dir / "test.iob2")
    same = sum(words(" ".join(s.tokens)) == list(s.tokens) for s in corpus.sentences)
    assert same / len(corpus.sentences) >= 0.99  # the misses are citation lines ("J. Biol. Chem.")

    # sentence boundaries: each abstract's sentences joined by spaces, split again
    by_doc = defaultdict(list)
    for sentence in corpus.sentences:
        by_doc[sentence.doc_id].append(" ".join(sentence.tokens))
    gold = found = hits = 0
    for sentences in by_doc.values():
        ends, position = set(), -1
        for sentence in sentences:
            position += 1 + len(sentence)
            ends.add(position)
        predicted = {s[-1].end for s in split_sentences(" ".join(sentences))}
        gold, found, hits = gold + len(ends), found + len(predicted), hits + len(ends & predicted)
    assert hits / gold >= 0.99 and hits / found >= 0.97
