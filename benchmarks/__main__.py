"""`python -m benchmarks`: every benchmark in one process, a rich table and a JSON file.

    python -m benchmarks --ckpt outputs/real/minilm-softmax/checkpoints/best-epoch2.ckpt   # the full CPU run
    python -m benchmarks --sections gpu                                                    # GPU mode only
    python -m benchmarks --sections tagging --ckpt CKPT --out benchmarks/results/tagging-cpu.json  # docs/s
    python -m benchmarks --smoke --out /tmp/smoke.json                                     # what CI checks

Defaults suit a small CPU machine (minutes); every size is an option. See the README, *Benchmarks*.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks import crf, ddp, gpu, inference, tagging, training
from benchmarks.common import MINILM, ROOT, corpus_dir, machine, make_workload, quiet, random_encoder
from benchmarks.report import check_targets, print_report
from ner.files import write_json

SECTIONS = ("training", "inference", "tagging", "crf", "scaling", "ddp", "gpu")
SAMPLE = ROOT / "ner" / "data" / "sample"
SMOKE = (  # toy sizes that win over other flags: the smoke test checks that every section runs, in seconds
    "--steps 3 --warmup 1 --batch-size 4 --train-sentences 24 --infer-sentences 8 --test-sentences 16 "
    "--crf-batches 2 --gpu-size tiny --gpu-steps 3 --gpu-warmup 1 --gpu-batch-size 4 "
    "--gpu-variants sdpa+fused+bucket --ddp-epochs 1 --ddp-extra ++trainer.limit_train_batches=2 "
    "--tag-documents 6 --tag-runs xml:1"
).split()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    option = parser.add_argument
    option("--data", help="JNLPBA folder (default: $NER_JNLPBA_DIR, else ../shared/data/jnlpba)")
    option("--ckpt", help="trained checkpoint for inference and its F1 costs (default: untrained head)")
    option("--encoder", default=MINILM, help="encoder of both trainers (default: the packaged MiniLM)")
    option("--sections", help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; gpu if a GPU)")
    option("--steps", type=int, default=40, help="optimizer steps per training run")
    option("--warmup", type=int, default=5, help="untimed first steps of each run")
    option("--batch-size", type=int, default=32)
    option(
        "--train-sentences", type=int, help="training slice (default: steps x batch); scaling: 25/50/100%%"
    )
    option("--infer-sentences", type=int, default=1000, help="test sentences timed for inference")
    option("--test-sentences", type=int, help="test sentences scored for F1 with --ckpt (default: all)")
    option("--no-bf16", action="store_true", help="skip the bf16-mixed training runs")
    option("--tag-documents", type=int, help="tagging: test abstracts tagged (default: all 404)")
    option(
        "--tag-runs",
        default="xml:1,xml:2,jsonl:1",
        help="tagging: `python -m ner tag` runs as INPUT:WORKERS (xml or jsonl shards), comma-separated",
    )
    option("--crf-batches", type=int, default=10, help="batches for the CRF cost")
    option("--gpu-size", choices=("scibert", "tiny"), default="scibert")
    option("--gpu-steps", type=int, default=60)
    option("--gpu-warmup", type=int, default=10)
    option("--gpu-batch-size", type=int, default=32)
    option("--gpu-variants", help=f"comma-separated subset of {','.join(gpu.VARIANTS)}")
    option("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in Lightning's table")
    option("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    option("--ddp-processes", default="1,2", help="process counts of the ddp section")
    option("--ddp-epochs", type=int, default=3, help="quickstart epochs per ddp contender")
    option("--ddp-threads", type=int, default=1, help="torch threads per ddp process")
    option("--ddp-extra", default="", help="space-separated overrides for every ddp contender")
    option("--smoke", action="store_true", help="toy sizes, toy encoder, shipped sample: checks it runs")
    option("--out", help="JSON file (default: benchmarks/results/<cpu|gpu>.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*(sys.argv[1:] if argv is None else argv), *SMOKE])
        args.data = args.data or str(SAMPLE)
    sections = args.sections.split(",") if args.sections else [s for s in SECTIONS if s != "gpu"]
    if args.sections is None and (torch.cuda.is_available() or args.smoke):
        sections.append("gpu")
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; expected some of {list(SECTIONS)}")
    args.sections = sections
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"machine": machine(), "settings": vars(args)}
    with tempfile.TemporaryDirectory() as scratch:
        encoder = random_encoder(Path(scratch) / "encoder") if args.smoke else args.encoder
        n_train = args.train_sentences or args.steps * args.batch_size
        n_test = args.test_sentences if args.ckpt else (args.test_sentences or args.infer_sentences)
        corpus = corpus_dir(args.data)
        work = make_workload(corpus, Path(scratch) / "data", n_train, n_test, encoder)
        if "training" in args.sections:
            results["training"] = training.compare(
                work, steps=args.steps, warmup=args.warmup, batch_size=args.batch_size, bf16=not args.no_bf16
            )
        if "inference" in args.sections:
            results["inference"] = inference.compare(
                work, args.ckpt, n_timed=args.infer_sentences, batch_size=args.batch_size
            )
        if "tagging" in args.sections:
            results["tagging"] = tagging.benchmark(
                work,
                corpus,
                args.ckpt,
                n_documents=args.tag_documents,
                batch_size=args.batch_size,
                tag_runs=args.tag_runs,
            )
        if "crf" in args.sections:
            results["crf"] = crf.cost(work, batches=args.crf_batches, batch_size=args.batch_size)
        if "scaling" in args.sections:
            results["scaling"] = training.scaling(work, batch_size=args.batch_size)
        if "ddp" in args.sections:
            processes = [int(n) for n in args.ddp_processes.split(",")]
            results["ddp"] = ddp.scaling(processes, args.ddp_epochs, args.ddp_threads, args.ddp_extra.split())
        if "gpu" in args.sections:
            results["gpu"] = gpu.benchmark(
                work,
                size=args.gpu_size,
                steps=args.gpu_steps,
                warmup=args.gpu_warmup,
                batch_size=args.gpu_batch_size,
                variants=args.gpu_variants.split(",") if args.gpu_variants else None,
                peak=args.peak_tflops,
            )
    results["targets"] = check_targets(results)
    device = "gpu" if torch.cuda.is_available() else "cpu"
    out = write_json(args.out or ROOT / "benchmarks" / "results" / f"{device}.json", results)
    print_report(results)
    print(f"written: {out}")
    return results


if __name__ == "__main__":
    main()
