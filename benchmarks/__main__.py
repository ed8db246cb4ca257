"""`python -m benchmarks`: every benchmark in one process, a rich table and a JSON file.

    python -m benchmarks --ckpt outputs/real/minilm-softmax/checkpoints/best-epoch2.ckpt   # the full CPU run
    python -m benchmarks --sections gpu                                                    # GPU mode only
    python -m benchmarks --smoke --out /tmp/smoke.json                                     # what CI checks

Defaults suit a small CPU machine (minutes); every size is an option. See the README, *Benchmarks*.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from benchmarks import crf, ddp, gpu, inference, training
from benchmarks.common import MINILM, ROOT, corpus_dir, machine, make_workload, quiet, tiny_encoder
from benchmarks.report import check_targets, print_report

SECTIONS = ("training", "inference", "crf", "scaling", "ddp", "gpu")
SAMPLE = ROOT / "ner" / "data" / "sample"
SMOKE = {  # toy sizes: the smoke test checks that every section runs, in seconds
    "steps": 3,
    "warmup": 1,
    "batch_size": 4,
    "train_sentences": 24,
    "infer_sentences": 8,
    "test_sentences": 16,
    "crf_batches": 2,
    "gpu_size": "tiny",
    "gpu_steps": 3,
    "gpu_warmup": 1,
    "gpu_batch_size": 4,
    "gpu_variants": "sdpa+fused+bucket",
    "ddp_epochs": 1,
    "ddp_extra": "++trainer.limit_train_batches=2",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="JNLPBA folder (default: $NER_JNLPBA_DIR, else ../shared/data/jnlpba)")
    parser.add_argument(
        "--ckpt",
        help="trained checkpoint for the inference comparison and its F1 costs "
        "(default: an untrained emission layer over the encoder, labelled as such)",
    )
    parser.add_argument(
        "--encoder", default=MINILM, help="encoder of both trainers (default: the packaged MiniLM)"
    )
    parser.add_argument(
        "--sections",
        default=None,
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; gpu only with a GPU)",
    )
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per training run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps of each run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--train-sentences",
        type=int,
        default=None,
        help="training slice (default: steps x batch size, one epoch); scaling takes 25/50/100%% of it",
    )
    parser.add_argument(
        "--infer-sentences", type=int, default=1000, help="test sentences timed for inference"
    )
    parser.add_argument(
        "--test-sentences",
        type=int,
        default=None,
        help="test sentences scored for F1 with --ckpt (default: the whole test set)",
    )
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16-mixed training runs")
    parser.add_argument("--crf-batches", type=int, default=10, help="batches for the CRF cost")
    parser.add_argument("--gpu-size", choices=("scibert", "tiny"), default="scibert")
    parser.add_argument("--gpu-steps", type=int, default=60)
    parser.add_argument("--gpu-warmup", type=int, default=10)
    parser.add_argument("--gpu-batch-size", type=int, default=32)
    parser.add_argument(
        "--gpu-variants", default=None, help=f"comma-separated subset of {','.join(gpu.VARIANTS)}"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--ddp-processes", default="1,2", help="process counts of the ddp section")
    parser.add_argument("--ddp-epochs", type=int, default=3, help="quickstart epochs per ddp contender")
    parser.add_argument("--ddp-threads", type=int, default=1, help="torch threads per ddp process")
    parser.add_argument("--ddp-extra", default="", help="space-separated overrides for every ddp contender")
    parser.add_argument(
        "--smoke", action="store_true", help="toy sizes, toy encoder, shipped sample: checks it runs"
    )
    parser.add_argument("--out", default=None, help="JSON file (default: benchmarks/results/<cpu|gpu>.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key.replace("-", "_"), value)
        args.data = args.data or str(SAMPLE)
    sections = args.sections.split(",") if args.sections else [s for s in SECTIONS if s != "gpu"]
    if args.sections is None and (torch.cuda.is_available() or args.smoke):
        sections.append("gpu")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; expected some of {list(SECTIONS)}")
    args.sections = sections
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"machine": machine(), "settings": {k: v for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as scratch:
        encoder = tiny_encoder(Path(scratch) / "encoder") if args.smoke else args.encoder
        n_train = args.train_sentences or args.steps * args.batch_size
        n_test = args.test_sentences if args.ckpt else (args.test_sentences or args.infer_sentences)
        work = make_workload(corpus_dir(args.data), Path(scratch) / "data", n_train, n_test, encoder)
        if "training" in args.sections:
            results["training"] = training.compare(
                work, steps=args.steps, warmup=args.warmup, batch_size=args.batch_size, bf16=not args.no_bf16
            )
        if "inference" in args.sections:
            results["inference"] = inference.compare(
                work, args.ckpt, n_timed=args.infer_sentences, batch_size=args.batch_size, pipeline_batch=True
            )
        if "crf" in args.sections:
            results["crf"] = crf.cost(work, batches=args.crf_batches, batch_size=args.batch_size)
        if "scaling" in args.sections:
            results["scaling"] = training.scaling(work, batch_size=args.batch_size)
        if "ddp" in args.sections:
            results["ddp"] = ddp.scaling(
                tuple(int(n) for n in args.ddp_processes.split(",")),
                epochs=args.ddp_epochs,
                threads=args.ddp_threads,
                extra=args.ddp_extra.split(),
            )
        if "gpu" in args.sections:
            variants = args.gpu_variants.split(",") if args.gpu_variants else None
            results["gpu"] = gpu.benchmark(
                work,
                size=args.gpu_size,
                steps=args.gpu_steps,
                warmup=args.gpu_warmup,
                batch_size=args.gpu_batch_size,
                variants=variants,
                peak=args.peak_tflops,
            )
    results["targets"] = check_targets(results)
    out = Path(
        args.out or ROOT / "benchmarks" / "results" / f"{'gpu' if torch.cuda.is_available() else 'cpu'}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print_report(results)
    print(f"written: {out}")
    return results


if __name__ == "__main__":
    main()
