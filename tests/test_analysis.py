"""Error analysis (`ner.analysis*`): outcomes add up to the official counts, on hand-made and real runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from rich.console import Console

from ner.analysis import (
    Outcome,
    Run,
    Span,
    Table,
    boundary_table,
    classify_entities,
    classify_sentence,
    entities,
    f1_by_entity_length,
    f1_by_fragmentation,
    f1_by_sentence_length,
    f1_seen_unseen,
    invalid_transition_table,
    invalid_transitions,
    load_run,
    outcome_table,
    run_tokenizer,
    score_check,
    subword_counts,
    training_sentences,
    type_confusion,
)
from ner.analysis import corpus as analysis_corpus
from ner.analysis.compare import (
    compare_runs,
    comparison_table,
    difference_examples,
    error_examples,
    highlight_html,
    highlight_rich,
)
from ner.analysis.corpus import MODEL_CARD_TAG_COUNTS, fragmentation_table, label_count_table, read_corpus
from ner.data.reader import Sentence
from ner.errors import NerError
from ner.metrics import count_sentence

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["DNA", "RNA", "protein"]


def sentence(gold: str, pred: str, tokens: str | None = None) -> Sentence:
    gold_tags, pred_tags = tuple(gold.split()), tuple(pred.split())
    words = tuple(tokens.split()) if tokens else tuple(f"w{i}" for i in range(len(gold_tags)))
    return Sentence(words, gold_tags, None, tuple(range(1, len(words) + 1)), pred_tags)


def outcomes_of(gold: str, pred: str) -> list[tuple]:
    return [
        (o.side, o.span.start, o.span.end, o.category, o.boundary)
        for o in classify_sentence(0, gold.split(), pred.split())
    ]


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        (
            "B-DNA I-DNA O",
            "B-DNA I-DNA O",
            [("gold", 0, 2, "correct", None), ("pred", 0, 2, "correct", None)],
        ),
        (
            "B-DNA I-DNA O",
            "B-RNA I-RNA O",
            [("gold", 0, 2, "wrong_type", None), ("pred", 0, 2, "wrong_type", None)],
        ),
        # same span and first type, but a type change inside: not the official complete match
        (
            "B-DNA I-DNA O",
            "B-DNA I-RNA O",
            [("gold", 0, 2, "wrong_type", None), ("pred", 0, 2, "wrong_type", None)],
        ),
        (
            "O B-DNA I-DNA",
            "B-DNA I-DNA I-DNA",
            [("gold", 1, 3, "boundary", "left"), ("pred", 0, 3, "boundary", "left")],
        ),
        (
            "B-DNA I-DNA I-DNA",
            "B-DNA I-DNA O",
            [("gold", 0, 3, "boundary", "right"), ("pred", 0, 2, "boundary", "right")],
        ),
        (
            "O B-DNA O",
            "B-RNA I-RNA I-RNA",
            [("gold", 1, 2, "boundary_wrong_type", "both"), ("pred", 0, 3, "boundary_wrong_type", "both")],
        ),
        ("B-DNA O O", "O O B-DNA", [("gold", 0, 1, "missed", None), ("pred", 2, 3, "spurious", None)]),
        # an I- after O starts no entity (evalIOB2.pl): the gold entity is missed
        ("B-DNA I-DNA", "O I-DNA", [("gold", 0, 2, "missed", None)]),
    ],
)
def test_every_entity_gets_one_outcome(gold, pred, expected):
    assert outcomes_of(gold, pred) == expected


def test_outcomes_add_up_to_the_official_counts():
    """Random tag sequences, valid and invalid: correct = tp, gold outcomes = n_gold, predicted = n_pred."""
    rng = random.Random(0)
    tags = ["O", "O", "O", *(f"{p}-{t}" for t in TYPES for p in "BI")]
    for _ in range(2000):
        n = rng.randint(1, 9)
        gold, pred = [rng.choice(tags) for _ in range(n)], [rng.choice(tags) for _ in range(n)]
        outcomes = classify_sentence(0, gold, pred)
        counts = {k: sum(v) for k, v in count_sentence(gold, pred, TYPES).items()}
        assert sum(o.side == "gold" for o in outcomes) == counts["n_gold"]
        assert sum(o.side == "pred" for o in outcomes) == counts["n_pred"]
        assert sum(o.side == "pred" and o.category == "correct" for o in outcomes) == counts["tp"]
        assert sum(o.side == "gold" and o.category == "correct" for o in outcomes) == counts["tp"]
        assert all(o.side == "gold" or o.category != "missed" for o in outcomes)
        assert all((o.boundary is not None) == o.category.startswith("boundary") for o in outcomes)


SENTENCES = [
    sentence("B-DNA I-DNA O B-protein", "B-DNA I-DNA O B-DNA", "IL-2 gene in CD28"),
    sentence("O B-RNA O", "O B-RNA O", "the mRNA ."),
    sentence("B-protein O O O O O O O O O O O", "O I-protein O O O O O O O O O B-DNA", "p50 " * 12),
]


def test_summary_tables():
    outcomes = classify_entities(SENTENCES)
    table = outcome_table(outcomes)
    rows = {row["outcome"]: row for row in table.rows}
    assert rows["correct"]["gold"] == 2 and rows["wrong_type"]["gold"] == 1 and rows["missed"]["gold"] == 1
    assert (
        rows["spurious"]["predicted"] == 1 and rows["total"]["gold"] == 4 and rows["total"]["predicted"] == 4
    )
    assert boundary_table(outcomes).rows[0] == {"side": "left", "same type": 0, "wrong type": 0}

    confusion = {row["gold \\ predicted"]: row for row in type_confusion(SENTENCES).rows}
    assert confusion["protein"]["DNA"] == 1 and confusion["protein"]["(none)"] == 1
    assert confusion["(none)"]["DNA"] == 1 and confusion["DNA"]["DNA"] == 1

    found = invalid_transitions(SENTENCES)
    assert [(t.sentence, t.position, t.pattern) for t in found] == [(2, 1, "O -> I-X")]
    assert invalid_transition_table(SENTENCES).rows[-1]["count"] == 1


def test_f1_buckets_partition_the_entities():
    by_length = f1_by_sentence_length(SENTENCES, edges=(3, 10))
    assert by_length.column("bucket") == ["<=3", "4-10", ">10"]
    assert sum(by_length.column("n_gold")) == 4 and sum(by_length.column("tp")) == 2
    by_entity = f1_by_entity_length(SENTENCES, longest=2)
    assert {row["bucket"]: row["n_gold"] for row in by_entity.rows} == {"1": 3, "2+": 1}
    # word "IL-2" cut in 3 pieces, "gene" in 1: the DNA entity averages 2 subwords per word
    counts = [[3, 1, 1, 1], [1, 1, 1], [1] * 12]
    fragmentation = {row["bucket"]: row["n_gold"] for row in f1_by_fragmentation(SENTENCES, counts).rows}
    assert fragmentation == {"1": 3, "1.5-2": 1}
    training = [sentence("B-DNA I-DNA O", "O O O", "IL-2 gene x")]
    seen = {row["bucket"]: (row["tp"], row["n_gold"]) for row in f1_seen_unseen(SENTENCES, training).rows}
    assert seen == {"seen": (1, 1), "unseen": (1, 3)}


def hand_run(tmp_path: Path, name: str, head: str, sentences: list[Sentence]) -> Run:
    """A run folder that has only started (config.yaml), with hand-made predicted sentences."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.yaml").write_text(f"head:\n  name: {head}\n")
    return Run(folder, sentences)


def test_compare_runs_and_highlighting(tmp_path):
    a = hand_run(tmp_path, "a", "softmax", SENTENCES)
    fixed = SENTENCES[0].__class__(
        SENTENCES[0].tokens, SENTENCES[0].tags, None, SENTENCES[0].lines, SENTENCES[0].tags
    )
    b = hand_run(tmp_path, "b", "crf", [fixed, *SENTENCES[1:]])
    differences = compare_runs(a, b)
    assert [(d.sentence, d.entity, d.a, d.b) for d in differences] == [
        (0, Span(3, 4, "protein"), "wrong_type", "correct")
    ]
    row = comparison_table(a, b, differences).rows[0]
    assert row["right only in b (crf)"] == 1 and row["a (softmax) instead"] == "wrong_type 1"
    examples = difference_examples(a, b, differences)
    assert "<mark" in examples._repr_html_() and "CD28" in examples._repr_html_()
    with pytest.raises(ValueError, match="different sentences"):
        compare_runs(a, hand_run(tmp_path, "c", "crf", SENTENCES[:1]))

    html = highlight_html(("a<b", "IL-2", "gene"), [Span(1, 3, "DNA")], focus=Span(1, 3, "DNA"))
    assert "a&lt;b" in html and "IL-2 gene" in html and "outline" in html
    assert highlight_rich(("a", "IL-2", "gene"), [Span(1, 3, "DNA")]).plain == "a IL-2 gene[DNA]"


def test_tables_render_in_html_rich_and_markdown():
    table = Table("t", [{"name": "x<y", "f1": 0.5, "n": None}, {"name": "z", "f1": 0.25, "n": 3}])
    assert "x&lt;y" in table._repr_html_() and "0.5000" in table._repr_html_()
    console = Console(record=True, width=60)
    console.print(table)
    assert "0.5000" in console.export_text()
    # only-number columns right-aligned, a missing cell blank; the title is not part of the Markdown
    assert table.to_markdown().splitlines() == [
        "| name | f1 | n |",
        "| --- | ---: | ---: |",
        "| x<y | 0.5000 |  |",
        "| z | 0.2500 | 3 |",
    ]
    assert Table("t", table.rows, digits=1).to_markdown().splitlines()[2] == "| x<y | 0.5 |  |"


def test_invalid_transitions_are_every_i_that_continues_nothing():
    """Against the definition, position by position, on random predictions."""
    rng = random.Random(1)
    tags = ["O", *(f"{p}-{t}" for t in TYPES for p in "BI")]
    sentences = [
        sentence(" ".join(["O"] * n), " ".join(rng.choices(tags, k=n))) for n in list(range(1, 12)) * 30
    ]
    expected = [
        (i, k)
        for i, s in enumerate(sentences)
        for k, tag in enumerate(s.predicted)
        if tag.startswith("I-") and (k == 0 or s.predicted[k - 1][2:] != tag[2:])
    ]
    assert [(t.sentence, t.position) for t in invalid_transitions(sentences)] == expected
    assert all(
        t.previous == (sentences[t.sentence].predicted[t.position - 1] if t.position else None)
        for t in invalid_transitions(sentences)
    )


def test_load_run_needs_a_finished_run(tmp_path):
    with pytest.raises(NerError, match="has not finished"):
        load_run(tmp_path)


# --------------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_real_run_recounts_its_metrics(softmax_run):
    run = load_run(softmax_run)
    outcomes = classify_entities(run.sentences)
    saved, recounted = score_check(run, outcomes).rows
    for key in ("tp", "n_pred", "n_gold", "f1"):
        assert recounted[key] == pytest.approx(saved[key])
    assert len(training_sentences(run)) == run.metrics["sizes"]["train"]
    counts = subword_counts(run.sentences, run_tokenizer(run))
    assert [len(c) for c in counts] == [len(s) for s in run.sentences]
    for table in (
        f1_by_sentence_length(run.sentences),
        f1_by_entity_length(run.sentences),
        f1_by_fragmentation(run.sentences, counts),
        f1_seen_unseen(run.sentences, training_sentences(run)),
    ):
        assert sum(table.column("tp")) == saved["tp"] and sum(table.column("n_gold")) == saved["n_gold"]
    example = error_examples(run, outcomes, "missed", 1)
    assert len(example) == (1 if any(o.category == "missed" for o in outcomes) else 0)


@pytest.mark.slow
def test_real_runs_compared(softmax_run, crf_run):
    a, b = load_run(softmax_run), load_run(crf_run)
    differences = compare_runs(a, b)

    def correct(run: Run) -> set[tuple[int, Span]]:
        return {
            (o.sentence, o.span)
            for o in classify_entities(run.sentences)
            if o.side == "gold" and o.category == "correct"
        }

    assert {(d.sentence, d.entity) for d in differences} == correct(a) ^ correct(b)
    assert all(isinstance(o, Outcome) for o in classify_entities(a.sentences))


# ------------------------------------------------------------------------------------ corpus


def test_corpus_tables_on_the_sample():
    corpora = read_corpus(ROOT / "ner" / "data" / "sample")
    table = label_count_table(corpora["train"], corpora["test"])
    rows = {row["label"]: row for row in table.rows}
    assert rows["B-protein"]["train"] == 71 and rows["B-protein"]["card train"] == 30_269
    assert sum(len(entities(s.tags)) for s in corpora["test"]) == 76  # the sample's README


@pytest.mark.corpus
def test_corpus_label_counts_match_the_model_card(jnlpba_dir):
    corpora = read_corpus(jnlpba_dir)
    rows = {row["label"]: row for row in label_count_table(corpora["train"], corpora["test"]).rows}
    for label in MODEL_CARD_TAG_COUNTS:
        if label.startswith("B-"):  # entity counts are the card's exactly; I- and O within 2% (I-DNA: +1.2%)
            assert (
                rows[label]["train"] == rows[label]["card train"]
                and rows[label]["test"] == rows[label]["card test"]
            )
        else:
            assert abs(rows[label]["train diff"]) < 0.02 and abs(rows[label]["test diff"]) < 0.02


def test_fragmentation_table_counts_windowed_sentences(monkeypatch):
    class Characters:  # a stand-in tokenizer: every character is one subword
        name_or_path = "characters"

    monkeypatch.setattr(
        analysis_corpus,
        "subword_counts",
        lambda sentences, _: [[len(w) for w in s.tokens] for s in sentences],
    )
    corpora = {"x": [sentence("O O", "O O", "abc de"), sentence("O", "O", "a")]}
    row = fragmentation_table(corpora, Characters(), max_length=6).rows[0]
    assert (
        row["subwords/word"] == 2.0 and row["sentences > 6 subwords"] == 1 and row["words cut in 2+"] == 2 / 3
    )
