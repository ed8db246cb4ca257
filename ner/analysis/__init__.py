"""Error analysis of finished runs, for notebooks: entity outcomes, confusions, F1 by bucket, comparisons.

`entities` classifies every gold and predicted entity as the official scorer reads them; `compare` sets two
runs side by side; `corpus` describes a corpus folder; `plots` draws the tables.
"""

from ner.analysis.entities import (
    Outcome,
    Run,
    Span,
    boundary_table,
    classify_entities,
    classify_sentence,
    entities,
    entity_strings,
    f1_by,
    f1_by_entity_length,
    f1_by_fragmentation,
    f1_by_sentence_length,
    f1_seen_unseen,
    invalid_transition_table,
    invalid_transitions,
    load_run,
    outcome_table,
    outcomes_by_type,
    run_tokenizer,
    score_check,
    subword_counts,
    training_sentences,
    type_confusion,
)
from ner.tables import Table

__all__ = [
    "Outcome",
    "Run",
    "Span",
    "Table",
    "boundary_table",
    "classify_entities",
    "classify_sentence",
    "entities",
    "entity_strings",
    "f1_by",
    "f1_by_entity_length",
    "f1_by_fragmentation",
    "f1_by_sentence_length",
    "f1_seen_unseen",
    "invalid_transition_table",
    "invalid_transitions",
    "load_run",
    "outcome_table",
    "outcomes_by_type",
    "run_tokenizer",
    "score_check",
    "subword_counts",
    "training_sentences",
    "type_confusion",
]
