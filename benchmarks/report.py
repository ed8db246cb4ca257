"""The issue's targets checked against the figures, and the rich tables printed at the end of a run."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

TARGETS = {  # name -> (what, threshold)
    "training": "ours >= 1.5x the HF Trainer's real words/s, fp32 both",
    "inference": "ours >= 2x pipeline (5x on a GPU) within 0.2 F1 points of fp32 (needs --ckpt)",
    "crf": "CRF training step <= 1.15x the softmax step",
    "gpu": "MFU >= 35% for SciBERT forward + backward, bf16 (needs a GPU)",
}


def check_targets(results: dict) -> dict:
    """Each target: met (True/False), or None where this run could not measure it, with the figure used."""
    checks = {}
    training = results.get("training")
    if training:
        ratio = training["ratios"]["ours_vs_hf_fp32"]
        checks["training"] = {"met": ratio >= 1.5, "figure": f"{ratio:.2f}x"}
    inference = results.get("inference")
    if inference:
        need = 5.0 if inference["device"].startswith("cuda") else 2.0
        if inference["trained"]:
            usable = [r for r in inference["predictor"] if abs(r["f1_points_vs_fp32"]) <= 0.2]
            best = max(usable, key=lambda r: r["vs_pipeline"])
            checks["inference"] = {
                "met": best["vs_pipeline"] >= need,
                "figure": f"{best['vs_pipeline']:.2f}x with precision {best['precision']}",
            }
        else:
            checks["inference"] = {"met": None, "figure": "untrained head: F1 cost not measurable"}
    crf = results.get("crf")
    if crf:
        ratio = crf["train_step_ratio_crf_vs_softmax"]
        checks["crf"] = {"met": ratio <= 1.15, "figure": f"{ratio:.3f}x on {crf['device']}"}
    gpu = results.get("gpu")
    if gpu:
        mfus = [v["mfu"] for v in gpu["variants"] if v["mfu"] is not None]
        checks["gpu"] = (
            {"met": max(mfus) >= 0.35, "figure": f"{max(mfus):.1%}"}
            if mfus and gpu["size"] == "scibert"
            else {"met": None, "figure": "not measured: no GPU (toy-size check only)"}
        )
    else:
        checks["gpu"] = {"met": None, "figure": "not measured: no GPU"}
    return {name: {"target": TARGETS[name], **check} for name, check in checks.items()}


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def print_report(results: dict, console: Console | None = None) -> None:
    console = console or Console()
    m = results["machine"]
    console.print(
        f"[bold]{m['date']}[/]  {m['cpu']} x{m['cores']} ({m['torch_threads']} torch threads)  "
        f"gpu={m['gpu']}  torch {m['torch']}  transformers {m['transformers']}  lightning {m['lightning']}"
    )
    if "training" in results:
        t = results["training"]
        table = _table(
            f"Training: {t['steps']} steps of {t['batch_size']} sentences ({t['warmup']} untimed)",
            ["run", "real words/s", "padding", "s/step", "peak RSS MiB"],
        )
        for run in t["runs"].values():
            table.add_row(
                run["name"],
                f"{run['words_per_second']:.0f}",
                f"{run['padding_fraction']:.1%}",
                f"{run['seconds_per_step']:.3f}",
                str(run["peak_rss_mib"]),
            )
        for name, ratio in t["ratios"].items():
            table.add_row(f"ratio {name}", f"{ratio:.2f}x", "", "", "")
        console.print(table)
    if "inference" in results:
        i = results["inference"]
        table = _table(
            f"Inference: {i['timed_sentences']} test sentences on {i['device']} ({i['model']})",
            ["run", "sentences/s", "vs faster pipeline", "test F1", "F1 points vs fp32"],
        )
        for name, run in i["pipeline"].items():
            table.add_row(
                f"pipeline ({name}, batch {run['batch_size']})",
                f"{run['sentences_per_second']:.1f}",
                "",
                "",
                "",
            )
        for run in i["predictor"]:
            f1 = f"{100 * run['test_f1']:.2f}" if "test_f1" in run else "-"
            delta = f"{run['f1_points_vs_fp32']:+.2f}" if "f1_points_vs_fp32" in run else "-"
            table.add_row(
                f"Predictor, precision {run['precision']}",
                f"{run['sentences_per_second']:.1f}",
                f"{run['vs_pipeline']:.2f}x",
                f1,
                delta,
            )
        console.print(table)
    if "crf" in results:
        c = results["crf"]
        table = _table(
            f"CRF cost ({c['device']}, {c['train_batches']} training / {c['decode_batches']} test batches)",
            ["measure", "softmax / argmax", "CRF / Viterbi", "ratio"],
        )
        table.add_row(
            "training step ms",
            f"{c['train_step_ms']['softmax']:.1f}",
            f"{c['train_step_ms']['crf']:.1f}",
            f"{c['train_step_ratio_crf_vs_softmax']:.3f}x",
        )
        table.add_row(
            "  of which loss fwd+bwd ms",
            f"{c['loss_fwd_bwd_ms']['softmax']:.2f}",
            f"{c['loss_fwd_bwd_ms']['crf']:.2f}",
            "",
        )
        d = c["decode_ms_per_batch"]
        table.add_row(
            "decode ms/batch (heads only)",
            f"{d['argmax']:.3f}",
            f"{d['viterbi']:.3f}",
            f"{c['decode_ratio_viterbi_vs_argmax']:.1f}x",
        )
        table.add_row(
            "  pytorch-crf decode ms/batch",
            "",
            f"{d['pytorch_crf']:.3f}",
            f"ours {c['decode_speedup_vs_pytorch_crf']:.1f}x faster, "
            f"identical paths: {c['viterbi_paths_identical_to_pytorch_crf']}",
        )
        table.add_row(
            "eval step ms (forward + decode)",
            f"{c['eval_step_ms']['softmax']:.1f}",
            f"{c['eval_step_ms']['crf']:.1f}",
            f"{c['eval_step_ratio_crf_vs_softmax']:.3f}x",
        )
        console.print(table)
    if "scaling" in results:
        fit = results["scaling"]["linear_fit"]
        table = _table(
            "Scaling: second training epoch of our trainer (bucket, fused AdamW, fp32); least squares: "
            f"{fit['fixed_seconds']:.1f} s + {fit['ms_per_1k_words']:.0f} ms / 1k words, "
            f"R^2 {fit['r_squared']}",
            [
                "share",
                "sentences",
                "steps",
                "real words",
                "seconds",
                "ms / 1k words",
                "vs 100%",
                "1st epoch s",
            ],
        )
        for row in results["scaling"]["rows"]:
            table.add_row(
                f"{row['fraction']:.0%}",
                str(row["sentences"]),
                str(row["steps"]),
                str(row["words"]),
                f"{row['seconds']:.1f}",
                f"{row['ms_per_1k_words']:.0f}",
                f"{row['cost_per_word_vs_full']:.2f}",
                f"{row['first_epoch_seconds']:.1f}",
            )
        console.print(table)
    if "ddp" in results:
        d = results["ddp"]
        table = _table(
            f"Processes: quickstart sample, {d['epochs']} epochs, "
            f"{d['threads_per_process']} thread(s) per process",
            ["processes", "fit seconds", "seconds per epoch", "speed-up vs 1"],
        )
        for row in d["rows"]:
            table.add_row(
                str(row["processes"]),
                f"{row['fit_seconds']:.1f}",
                ", ".join(f"{s:.1f}" for s in row["seconds_per_epoch"]),
                f"{row['speedup_vs_1']:.2f}x",
            )
        console.print(table)
    if "gpu" in results:
        g = results["gpu"]
        table = _table(
            f"GPU mode: {g['size']} on {g['device']}, {g['precision']}, batch {g['batch_size']}, "
            f"max length {g['max_length']}",
            ["variant", "tokens/s", "padding", "model TFLOP/s", "MFU"],
        )
        for v in g["variants"]:
            table.add_row(
                v["variant"],
                f"{v['tokens_per_second']:.0f}",
                f"{v['padding_fraction']:.1%}",
                f"{v['model_tflops_per_second']:.3f}",
                "-" if v["mfu"] is None else f"{v['mfu']:.1%}",
            )
        console.print(table)
    table = _table("Targets", ["target", "met", "figure"])
    for check in results["targets"].values():
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "n/a"}[check["met"]]
        table.add_row(check["target"], met, check["figure"])
    console.print(table)
