"""Seed statistics and paired significance tests between arms scored on the same test set.

The resampling unit is the abstract (`###MEDLINE:` document; a sentence where a file has no markers):
sentences of one abstract share vocabulary and annotator habits, so they are not independent. Seeds are
pooled: each arm's counts per abstract are summed over its seeds, and both arms use the same seeds, so a
resample compares the arms on the same abstracts and the same seeds. F1 is recomputed from the summed counts
of every resample, never averaged over documents.

- Paired bootstrap (`scipy.stats.bootstrap`, paired, percentile): draw abstracts with replacement; the
  percentile interval of F1(B) - F1(A) is the confidence interval, and the two-sided p-value is twice the
  share of resamples on the far side of 0 (add-one smoothed).
- Approximate randomization (`scipy.stats.permutation_test`, permutation_type='samples'): swap the two
  arms' counts on each abstract with probability 1/2; p is twice the smaller tail of the shuffled
  differences beyond the observed one (add-one smoothed; exact when there are fewer than `resamples`
  swap patterns).
Identical arms give p = 1 in both; an arm better on every abstract gives p near 2/(n + 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from ner.data.reader import Corpus, Sentence
from ner.errors import NerError
from ner.metrics import count_sentence

COUNTS = ("tp", "n_pred", "n_gold")


def summarize(values: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean, sample standard deviation (n - 1; 0 for one value), min, max and the values themselves."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {
        "n": len(values),
        "mean": float(np.mean(values)),
        "std": std,
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def document_counts(sentences: Sequence[Sentence], types: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Official-rule counts per document: `(doc ids in file order, (docs, 3 [tp, n_pred, n_gold], types))`.

    A document is a run of consecutive sentences with one doc id (the JNLPBA test file repeats a few ids for
    different abstracts, which stay separate units); sentences without an id are one unit each. Sentences
    need `predicted` tags (a predictions file read with `with_predictions=True`)."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    previous = None
    for i, sentence in enumerate(sentences):
        if sentence.predicted is None:
            raise ValueError("document_counts needs sentences read from a predictions file")
        doc = sentence.doc_id if sentence.doc_id is not None else f"sentence{i}"
        if doc != previous:
            ids.append(doc)
            rows.append(np.zeros((len(COUNTS), len(types)), dtype=np.int64))
            previous = doc
        counts = count_sentence(sentence.tags, sentence.predicted, types)
        rows[-1] += np.array([counts[name] for name in COUNTS], dtype=np.int64)
    return ids, np.stack(rows)


def document_record(corpus: Corpus, types: Sequence[str]) -> dict:
    """Per-document counts of a predictions file as JSON, kept in each arm's result: the paired tests need
    only these, so a study compares again from its committed results (which hold none of the corpus)."""
    ids, counts = document_counts(corpus.sentences, types)
    unit = "abstracts" if corpus.has_doc_markers else "sentences (the test file has no abstract markers)"
    return {
        "unit": unit,
        "types": list(types),
        "counts": list(COUNTS),
        "documents": ids,
        "per_document": counts.tolist(),
    }


def documents_of(record: dict, types: Sequence[str], where: str) -> tuple[list[str], np.ndarray, str]:
    """`(doc ids, counts (docs, 3, types) in the order of `types`, unit)` from a `test_documents` record."""
    if record["counts"] != list(COUNTS) or sorted(record["types"]) != sorted(types):
        raise NerError(
            f"{where}: per-document counts of {record['counts']} over types {record['types']}, "
            f"expected {list(COUNTS)} over {list(types)}"
        )
    counts = np.asarray(record["per_document"], dtype=np.int64).reshape(-1, len(COUNTS), len(types))
    order = [record["types"].index(t) for t in types]
    return list(record["documents"]), counts[:, :, order], record["unit"]


def f1(counts: np.ndarray, metric: str = "micro") -> np.ndarray:
    """F1 from summed counts `(..., 3, types)`: micro over all types, or the unweighted mean over types."""
    tp, n_pred, n_gold = (counts[..., k, :].astype(float) for k in range(3))
    if metric == "micro":
        tp, n_pred, n_gold = tp.sum(-1), n_pred.sum(-1), n_gold.sum(-1)
    elif metric != "macro":
        raise ValueError(f"metric must be micro or macro, got {metric!r}")
    denominator = n_pred + n_gold
    # 2PR/(P+R) = 2tp/(n_pred+n_gold); 0 where undefined, as the scorer does
    value = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return value if metric == "micro" else value.mean(-1)


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    metric: str = "micro",
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | int | str]:
    """Compare arm B with arm A on the same documents; `a`, `b`: counts `(docs, 3, types)`, seeds summed.

    Returns the observed difference F1(B) - F1(A), its bootstrap confidence interval, and both p-values."""
    if a.shape != b.shape:
        raise ValueError(f"paired arms need counts of the same documents, got shapes {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    a, b = a.astype(float), b.astype(float)
    observed = float(f1(b.sum(0), metric) - f1(a.sum(0), metric))

    def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # summed counts (..., 3, types)
        return f1(b, metric) - f1(a, metric)

    # scipy moves the documents axis last; the bootstrap puts the batch of resamples before it, as
    # (3, types, batch, docs), the permutation test before everything, as (batch, 3, types, docs)
    def resampled(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return difference(*(np.moveaxis(x.sum(axis), (0, 1), (-2, -1)) for x in (a, b)))

    def shuffled(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
        return difference(a.sum(axis), b.sum(axis))

    options = {"n_resamples": resamples, "vectorized": True, "axis": 0, "batch": 500, "rng": rng}
    boot = stats.bootstrap(
        (a, b), resampled, paired=True, method="percentile", confidence_level=level, **options
    )
    # scipy gives the bootstrap distribution, not a p-value: twice the smaller tail beyond 0, add-one smoothed
    distribution = boot.bootstrap_distribution
    tail = min(int(np.sum(distribution <= 0)), int(np.sum(distribution >= 0)))
    p_boot = min(1.0, 2.0 * (tail + 1) / (resamples + 1))
    # approximate randomization: 'samples' swaps the two arms' counts on each document with probability 1/2
    randomized = stats.permutation_test((a, b), shuffled, permutation_type="samples", **options)
    low, high = boot.confidence_interval
    return {
        "metric": metric,
        "difference": observed,
        "ci_low": float(low),
        "ci_high": float(high),
        "level": level,
        "p_bootstrap": p_boot,
        "p_randomization": float(randomized.pvalue),
        "documents": a.shape[0],
        "resamples": resamples,
    }
