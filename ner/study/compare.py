"""Compare arms over seeds: aggregate per-run results, test the arms' differences, gather the card protocol.

Input: run folders. Each contributes the arms evaluated next to it (`eval/<arm>.json`, see
`ner.study.evaluate_arms`) or, for a plain run without `eval/`, itself as one arm named after its head (and
decode mode when not per-word argmax). `eval/card-<arm>.json` files feed the model card section. Runs
retrained on train+dev (`data.dev=none`, `ablation=retrain`) are not arms of their own: each arm's retrained
runs are summarized next to its dev-selected ones, with a paired test between the two (`retrained`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ner.data.reader import read_iob2
from ner.errors import NerError
from ner.evaluation.run_folder import RunFolder
from ner.study.arms import Arm
from ner.study.evaluate_arms import native_arm, trained_decode
from ner.study.protocol import ALONE, CARD_LABEL, LADDER
from ner.study.stats import document_record, documents_of, f1, paired_test, summarize
from ner.tags import types_of

HONEST = (
    "honest: epoch selected on dev, official JNLPBA 2004 rules (evalIOB2.pl), every word of every sentence; "
    "macro = unweighted mean over types"
)


@dataclass(frozen=True)
class ArmRun:
    """One arm's result on one run (one seed)."""

    run_dir: Path
    result: dict

    @property
    def seed(self) -> int:
        return int(self.result["seed"])


Arms = dict[str, list[ArmRun]]


def collect(run_dirs: Sequence[str | Path], arm_order: Sequence[str] = ()) -> tuple[Arms, Arms, Arms]:
    """`(honest arms, card arms, retrained arms)`: `{arm: [one ArmRun per run, by seed]}`; the arms named in
    `arm_order` first, in that order, then the others as found (each run's own arm first)."""
    found: dict[str, Arms] = {"honest": {}, "card": {}, "retrained": {}}
    for run in map(RunFolder, run_dirs):
        metrics = run.metrics  # a NerError when the run has not finished
        results = [json.loads(p.read_text()) for p in sorted((run.path / "eval").glob("*.json"))]
        results.sort(key=lambda result: not result.get("native", False))  # the run's own arm first
        if not any(r.get("protocol") == "honest" for r in results):  # a plain run: itself
            decode = trained_decode(run)
            # per-word argmax is plain decoding; any other mode (viterbi) names the arm
            name = run.head if decode in (run.head, "argmax") else f"{run.head}-{decode}"
            results.append(native_arm(Arm(name, run.head), metrics, decode))
        for result in results:
            protocol = "card" if result.get("protocol") == "card" else "honest"
            protocol = "retrained" if result.get("retrain") else protocol
            found[protocol].setdefault(result["arm"], []).append(ArmRun(run.path, result))
    for arms in found.values():
        for name, runs in arms.items():
            seeds = [r.seed for r in runs]
            if len(set(seeds)) != len(seeds):
                raise NerError(
                    f"arm {name!r} has two runs with the same seed ({sorted(seeds)}): "
                    f"{', '.join(str(r.run_dir) for r in runs)}"
                )
            runs.sort(key=lambda r: r.seed)
    rank = {name: k for k, name in enumerate(arm_order)}
    honest, card, retrained = (
        dict(sorted(a.items(), key=lambda item: rank.get(item[0], len(rank)))) for a in found.values()
    )
    return honest, card, retrained


def over(runs: Sequence[ArmRun], get: Callable[[dict], float]) -> dict:
    """`summarize` over seeds of `get(result)`."""
    return summarize([get(r.result) for r in runs])


def arm_summary(runs: Sequence[ArmRun], types: Sequence[str]) -> dict:
    """Mean / std / min / max over seeds of the headline metrics and of each type's F1."""
    first = runs[0].result
    return {
        "head": first["head"],
        "decode": first["decode"],
        "selection": first["selection"],
        "seeds": [r.seed for r in runs],
        "runs": [str(r.run_dir) for r in runs],
        "metrics": {
            "test_f1": over(runs, lambda r: r["test"]["micro"]["f1"]),
            "test_macro_f1": over(runs, lambda r: r["test"]["macro"]["f1"]),
            "test_precision": over(runs, lambda r: r["test"]["micro"]["precision"]),
            "test_recall": over(runs, lambda r: r["test"]["micro"]["recall"]),
            "dev_f1": over(runs, lambda r: r["dev"]["micro"]["f1"]),
        },
        "per_type_f1": {t: over(runs, lambda r, t=t: r["test"]["per_type"][t]["f1"]) for t in types},
    }


def best_on_dev(arms: dict) -> dict:
    """The arm the study picks for its final retrain: the highest mean dev F1 of the arms with the most seeds.

    An arm with fewer seeds is listed as pending, not ranked: its mean over fewer seeds is not comparable.
    """
    most = max(len(arm["seeds"]) for arm in arms.values())
    ranked = {name: arm for name, arm in arms.items() if len(arm["seeds"]) == most}
    best = max(ranked, key=lambda name: ranked[name]["metrics"]["dev_f1"]["mean"])
    return {
        "arm": best,
        "dev_f1": ranked[best]["metrics"]["dev_f1"]["mean"],
        "seeds": most,
        "pending": {name: len(arm["seeds"]) for name, arm in arms.items() if name not in ranked},
    }


def pooled_counts(
    runs: Sequence[ArmRun], seeds: Sequence[int], types: Sequence[str]
) -> tuple[list[str], np.ndarray, str]:
    """Per-document test counts of `runs` with those seeds, summed over seeds, and the resampling unit."""
    docs, total, unit = None, None, "abstracts"
    for run in runs:
        if run.seed not in seeds:
            continue
        path = run.run_dir / run.result["predictions"]["test"]
        record = run.result.get("test_documents")  # absent: an arm file from before the counts were kept
        if record is None:
            record = document_record(read_iob2(path, types, with_predictions=True), types)
        ids, counts, unit = documents_of(record, types, str(path))
        if docs is not None and ids != docs:
            raise NerError(f"{path}: not the same test documents as the other runs")
        docs, total = ids, counts if total is None else total + counts
    return docs, total, unit


def paired(
    a: str,
    runs_a: Sequence[ArmRun],
    b: str,
    runs_b: Sequence[ArmRun],
    types: Sequence[str],
    resamples: int,
    seed: int,
) -> dict | None:
    """F1(b) - F1(a), micro and macro, on the seeds both have (None: no common seed)."""
    seeds = sorted({r.seed for r in runs_a} & {r.seed for r in runs_b})
    if not seeds:
        return None
    docs_a, counts_a, unit = pooled_counts(runs_a, seeds, types)
    docs_b, counts_b, _ = pooled_counts(runs_b, seeds, types)
    if docs_a != docs_b:
        raise NerError(f"arms {a} and {b} were tested on different documents")
    return {
        "a": a,
        "b": b,
        "seeds": seeds,
        "resampled": unit,
        "pooled_f1": {a: float(f1(counts_a.sum(0))), b: float(f1(counts_b.sum(0)))},
        "micro": paired_test(counts_a, counts_b, "micro", resamples, seed),
        "macro": paired_test(counts_a, counts_b, "macro", resamples, seed),
    }


def significance(honest: Arms, types: Sequence[str], resamples: int, seed: int) -> list[dict]:
    """Every pair of arms (in arm order), on the seeds both have: F1(second) - F1(first), micro and macro."""
    tests = (paired(a, honest[a], b, honest[b], types, resamples, seed) for a, b in combinations(honest, 2))
    return [test for test in tests if test is not None]


def retrained_summary(
    name: str,
    runs: Sequence[ArmRun],
    selected: Sequence[ArmRun],
    types: Sequence[str],
    resamples: int,
    seed: int,
) -> dict:
    """An arm retrained on train+dev next to the same arm selected on dev: test F1 over seeds, and the
    paired test retrained - dev-selected on their common seeds."""
    retrained = f"{name} (retrained on train+dev)"

    def test_f1(arm_runs: Sequence[ArmRun]) -> dict:
        return {
            "seeds": [r.seed for r in arm_runs],
            "runs": [str(r.run_dir) for r in arm_runs],
            "test_f1": over(arm_runs, lambda r: r["test"]["micro"]["f1"]),
            "test_macro_f1": over(arm_runs, lambda r: r["test"]["macro"]["f1"]),
        }

    return {
        "trained_on": "train+dev",
        "labels": [r.result["retrain"]["label"] for r in runs],
        "retrained": test_f1(runs),
        "dev_selected": test_f1(selected) if selected else None,
        "significance": paired(name, selected, retrained, runs, types, resamples, seed) if selected else None,
    }


def card_summary(runs: Sequence[ArmRun]) -> dict:
    """The card protocol against the honest one on the same seeds: headline numbers and the ladder."""
    return {
        "label": CARD_LABEL,
        "seeds": [r.seed for r in runs],
        "card_micro_f1": over(runs, lambda r: r["card"]["micro"]["f1"]),
        "card_macro_avg_as_reported": over(runs, lambda r: r["card"]["macro_avg_as_reported"]["f1"]),
        "card_true_macro_f1": over(runs, lambda r: r["card"]["true_macro"]["f1"]),
        "honest_micro_f1": over(runs, lambda r: r["honest"]["micro"]["f1"]),
        "honest_macro_f1": over(runs, lambda r: r["honest"]["macro"]["f1"]),
        "inflation_micro_f1": over(runs, lambda r: r["inflation"]["micro_f1"]),
        "inflation_reported_macro": over(runs, lambda r: r["inflation"]["reported_macro_vs_honest_macro_f1"]),
        "words_dropped": over(runs, lambda r: r["truncation"]["words_dropped"]),
        "ladder": [
            {
                "step": label,
                "f1": over(runs, lambda r, k=k: r["ladder"][k]["f1"]),
                "delta_f1": over(runs, lambda r, k=k: r["ladder"][k].get("delta_f1", 0.0)),  # 0 for the first
            }
            for k, (label, _, _) in enumerate(LADDER)
        ],
        "alone": [
            {"factor": label, "delta_f1": over(runs, lambda r, k=k: r["alone"][k]["delta_f1"])}
            for k, (label, _, _) in enumerate(ALONE)
        ],
    }


def compare(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    resamples: int = 10_000,
    seed: int = 0,
    arm_order: Sequence[str] = (),
) -> dict:
    """The whole comparison as a JSON-ready dict (`comparison.json`); run paths relative to `out_dir`.

    Arms appear in `arm_order`, then as found (each run's own arm first)."""
    honest, card, retrained = collect(run_dirs, arm_order)
    if not honest:
        raise NerError("nothing to compare: no finished dev-selected runs")
    labels = next(iter(honest.values()))[0].result["test"]["per_type"]
    types = types_of(f"B-{t}" for t in labels)
    arms = {name: arm_summary(runs, types) for name, runs in honest.items()}
    final = {
        name: retrained_summary(name, runs, honest.get(name, []), types, resamples, seed)
        for name, runs in retrained.items()
    }
    if out_dir is not None:
        summaries = [
            *arms.values(),
            *(s[k] for s in final.values() for k in ("retrained", "dev_selected") if s[k]),
        ]
        for summary in summaries:
            summary["runs"] = [os.path.relpath(r, out_dir) for r in summary["runs"]]
    return {
        "protocol": HONEST,
        "types": types,
        "arms": arms,
        "best_on_dev": best_on_dev(arms),
        "significance": significance(honest, types, resamples, seed),
        "significance_method": (
            f"paired bootstrap ({resamples} resamples of test documents, percentile CI) and approximate "
            f"randomization ({resamples} shuffles); seeds pooled (counts summed per document); "
            "difference = b - a"
        ),
        "card_protocol": {name: card_summary(runs) for name, runs in card.items()},
        "retrained": final,  # {arm: retrained on train+dev vs dev-selected}; {} without retrained runs
    }
