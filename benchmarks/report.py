"""The issue's targets checked against the figures, and the tables printed at the end of a run
(`ner.tables.Table`: rich in a terminal, `.to_markdown()` for the README)."""

from __future__ import annotations

from rich.console import Console

from ner.tables import Table

TARGETS = {  # name -> what is checked
    "training": "ours >= 1.5x the HF Trainer's real words/s, fp32 both",
    "inference": "ours >= 2x pipeline (5x on a GPU) within 0.2 F1 points of fp32 (needs --ckpt)",
    "tagging": "docs/s >= 3x the pipeline's with tags identical to torch fp32 (best exact path)",
    "crf": "CRF training step <= 1.15x the softmax step",
    "gpu": "MFU >= 35% for SciBERT forward + backward, bf16 (needs a GPU)",
}


def check_targets(results: dict) -> dict:
    """Each target: met (True/False), or None where this run could not measure it, with the figure used."""
    checks = {}  # name -> (met, figure)
    if training := results.get("training"):
        ratio = training["ratios"]["ours_vs_hf_fp32"]
        checks["training"] = (ratio >= 1.5, f"{ratio:.2f}x")
    if (inference := results.get("inference")) and inference["trained"]:
        need = 5.0 if inference["device"].startswith("cuda") else 2.0
        usable = [r for r in inference["predictor"] if abs(r["f1_points_vs_fp32"]) <= 0.2]
        best = max(usable, key=lambda r: r["vs_pipeline"])
        checks["inference"] = (
            best["vs_pipeline"] >= need,
            f"{best['vs_pipeline']:.2f}x with {best['precision']}",
        )
    elif inference:
        checks["inference"] = (None, "untrained head: F1 cost not measurable")
    if tagging := results.get("tagging"):
        ratio, fastest = tagging["best_exact_vs_pipeline"], tagging["fastest_within_0.2_f1_points"]
        within = f"; fastest within 0.2 F1 points: {fastest}" if fastest else ""
        met = ratio >= 3.0 if tagging["trained"] else None  # a toy or untrained model's speed proves nothing
        untrained = "" if tagging["trained"] else " (untrained head: not checked)"
        checks["tagging"] = (met, f"{ratio:.2f}x with {tagging['best_exact']}{within}{untrained}")
    if crf := results.get("crf"):
        ratio = crf["train_step_ratio_crf_vs_softmax"]
        checks["crf"] = (ratio <= 1.15, f"{ratio:.3f}x on {crf['device']}")
    gpu = results.get("gpu")
    mfus = [v["mfu"] for v in gpu["variants"] if v["mfu"] is not None] if gpu else []
    if mfus and gpu["size"] == "scibert":
        checks["gpu"] = (max(mfus) >= 0.35, f"{max(mfus):.1%}")
    else:
        checks["gpu"] = (None, "not measured: no GPU" + (" (toy-size check only)" if gpu else ""))
    return {name: {"target": TARGETS[name], "met": met, "figure": fig} for name, (met, fig) in checks.items()}


def tables(results: dict) -> list[Table]:
    """One table per section that ran, then the targets; columns carry the JSON file's own names."""
    out = []
    if t := results.get("training"):
        ratios = [
            {"name": f"ratio {name}", "words_per_second": f"{r:.2f}x"} for name, r in t["ratios"].items()
        ]
        columns = ["name", "words_per_second", "padding_fraction", "seconds_per_step", "peak_rss_mib"]
        title = f"Training: {t['steps']} steps of {t['batch_size']} sentences ({t['warmup']} untimed)"
        out.append(Table(title, [*t["runs"].values(), *ratios], columns, digits=3))
    if i := results.get("inference"):
        rows = [
            {"name": f"pipeline ({name}, batch {run['batch_size']})", **run}
            for name, run in i["pipeline"].items()
        ]
        rows += [{"name": f"Predictor, precision {run['precision']}", **run} for run in i["predictor"]]
        columns = ["name", "sentences_per_second", "vs_pipeline", "test_f1", "f1_points_vs_fp32"]
        title = f"Inference: {i['timed_sentences']} test sentences on {i['device']} ({i['model']})"
        out.append(Table(title, rows, columns, digits=3))
    if t := results.get("tagging"):
        out.extend(tagging_tables(t))
    if c := results.get("crf"):
        step, loss, decode, evals = (
            c[k] for k in ("train_step_ms", "loss_fwd_bwd_ms", "decode_ms_per_batch", "eval_step_ms")
        )
        paths = f"ours {c['decode_speedup_vs_pytorch_crf']}x faster, identical paths: "
        paths += str(c["viterbi_paths_identical_to_pytorch_crf"])
        rows = [  # measure, softmax / argmax, CRF / Viterbi, ratio
            ("training step ms", step["softmax"], step["crf"], c["train_step_ratio_crf_vs_softmax"]),
            ("  of which loss fwd+bwd ms", loss["softmax"], loss["crf"], None),
            (
                "decode ms/batch (heads only)",
                decode["argmax"],
                decode["viterbi"],
                c["decode_ratio_viterbi_vs_argmax"],
            ),
            ("  pytorch-crf decode ms/batch", None, decode["pytorch_crf"], paths),
            (
                "eval step ms (forward + decode)",
                evals["softmax"],
                evals["crf"],
                c["eval_step_ratio_crf_vs_softmax"],
            ),
        ]
        columns = ["measure", "softmax / argmax", "CRF / Viterbi", "ratio"]
        title = (
            f"CRF cost ({c['device']}, {c['train_batches']} training / {c['decode_batches']} test batches)"
        )
        out.append(Table(title, [dict(zip(columns, row, strict=True)) for row in rows], columns, digits=3))
    if s := results.get("scaling"):
        fit = s["linear_fit"]
        title = (
            "Scaling: second training epoch of our trainer (bucket, fused AdamW, fp32); least squares: "
            f"{fit['fixed_seconds']:.1f} s + {fit['ms_per_1k_words']:.0f} ms / 1k words, "
            f"R^2 {fit['r_squared']}"
        )
        columns = (
            "fraction sentences steps words seconds ms_per_1k_words cost_per_word_vs_full first_epoch_seconds"
        )
        out.append(Table(title, s["rows"], columns.split(), digits=3))
    if d := results.get("ddp"):
        title = (
            f"Processes: quickstart sample, {d['epochs']} epochs, {d['threads_per_process']} thread(s) each"
        )
        out.append(
            Table(title, d["rows"], ["processes", "fit_seconds", "seconds_per_epoch", "speedup_vs_1"], 3)
        )
    if g := results.get("gpu"):
        title = (
            f"GPU mode: {g['size']} on {g['device']}, {g['precision']}, batch {g['batch_size']}, "
            f"max length {g['max_length']}"
        )
        columns = ["variant", "tokens_per_second", "padding_fraction", "model_tflops_per_second", "mfu"]
        out.append(Table(title, g["variants"], columns, digits=4))
    met = {True: "yes", False: "no", None: "n/a"}
    targets = [{**check, "met": met[check["met"]]} for check in results["targets"].values()]
    return [*out, Table("Targets", targets)]


def tagging_tables(t: dict) -> list[Table]:
    """Documents/s of every option and of the pipeline, the tag command's runs, its profile, PubMed's cost."""
    rows = [{"name": f"pipeline (batch {run['batch_size']})", **run} for run in t["pipeline"].values()] + [
        {"name": run["option"], **run} for run in t["options"]
    ]
    columns = ["name", "documents_per_second", "vs_pipeline", "words_differing_from_torch_fp32"]
    columns += ["documents_differing_from_torch_fp32", "test_f1", "f1_points_vs_torch_fp32"]
    title = f"Tagging: {t['documents']} test abstracts on {t['device']} ({t['model']})"
    tables = [Table(title, rows, columns, digits=4)]
    command = t["tag_command"]
    if command["runs"]:
        columns = ["input", "option", "workers", "documents", "wall_seconds", "documents_per_second_wall"]
        columns += ["documents_per_second_tagging", "error"]
        tables.append(Table("Tag command: python -m ner tag --workers N", command["runs"], columns, digits=4))
    if profile := command.get("profile"):
        title = f"Tag run profile: {profile['option']}, 1 worker, {profile['total_seconds']} s (cProfile)"
        tables.append(Table(title, profile["rows"], ["phase", "seconds", "share"], digits=3))
    cost = [{"option": name, **figures} for name, figures in t["pubmed"].items()]
    columns = [
        "option",
        "device",
        "documents_per_second",
        "measured_on_cpus",
        "hours_on_this_machine",
        "cpu_core_hours",
    ]
    columns += ["hours_on_64_cpus", "hours_on_1024_cpus"]
    tables.append(Table("PubMed: 36M abstracts at these rates (linear scaling)", cost, columns, digits=4))
    return tables


def print_report(results: dict, console: Console | None = None) -> None:
    console = console or Console()
    m = results["machine"]
    console.print(
        f"[bold]{m['date']}[/]  {m['cpu']} x{m['cores']} ({m['torch_threads']} torch threads)  "
        f"gpu={m['gpu']}  torch {m['torch']}  transformers {m['transformers']}  lightning {m['lightning']}"
    )
    for table in tables(results):
        console.print(table)
