"""`python -m ner tag`: tag collections of PubMed XML, plain text or JSON lines into JSONL, PubTator or BioC.

    python -m ner tag --ckpt RUN/checkpoints/last.ckpt --out tagged/ --format jsonl,bioc baseline/*.xml.gz

Each input file is a shard with one output per format (`OUT/<name>.jsonl`, ...; names: `ner.tagging.shards`)
and a status file; `OUT/manifest.json` lists every shard (`ner.tagging.manifest`). Running the same command
again skips the shards that are finished for the same input, model and formats, and tags the others again:
new ones, failed or interrupted ones, ones whose output is missing or incomplete, and ones tagged with
another model or other formats (their old outputs are replaced). `--shard-index i --shard-count N` (by
default from a SLURM array: experiments/slurm/tag.sbatch) takes shards i, i+N, ... of the sorted list.
Exit status: 0, 1 if a shard failed, 2 for a usage error, 128+N when stopped by signal N.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields
from pathlib import Path

from rich.console import Console

from ner.errors import NerError, user_errors
from ner.tagging.display import Display, summary
from ner.tagging.inputs import find_shards
from ner.tagging.manifest import (
    FAILED,
    INTERRUPTED,
    RUNNING,
    read_status,
    rebuild_manifest,
    why_not_finished,
    write_status,
)
from ner.tagging.outputs import FORMATS
from ner.tagging.shards import (
    Shard,
    input_fingerprint,
    model_fingerprint,
    name_shards,
    select,
    slurm_partition,
)
from ner.tagging.worker import Interrupted, Options, init_pool, load_predictor, pool_task, tag_shard


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ner tag", description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="shard files, folders or globs")
    parser.add_argument("--ckpt", required=True, help="checkpoint of a run (e.g. RUN/checkpoints/last.ckpt)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (outputs and manifest.json)")
    parser.add_argument("--format", default="jsonl", help=f"comma-separated, of {', '.join(FORMATS)}")
    parser.add_argument("--workers", type=int, default=1, help="processes, each taking whole shards")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    parser.add_argument("--onnx-model", help="ONNX file for --backend onnx (python -m ner export --onnx)")
    parser.add_argument(
        "--precision", choices=("32", "bf16", "int8"), default="32", help="as for python -m ner predict"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")
    parser.add_argument("--max-length", type=int, help="subwords per window (default: as in training)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available; with "
                        "--workers N on GPUs: one GPU per worker)")  # fmt: skip
    parser.add_argument("--shard-index", type=int, help="this process takes shards i, i+N, ...")
    parser.add_argument("--shard-count", type=int, help="N (default for both: the SLURM array task)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="default: on a terminal"
    )
    args = parser.parse_args(argv)
    if (args.shard_index is None) != (args.shard_count is None):
        parser.error("--shard-index and --shard-count go together")
    if args.workers < 1 or args.batch_size < 1:
        parser.error("--workers and --batch-size must be positive")
    return args


def parse_formats(text: str) -> list[str]:
    """The requested formats in the canonical order (FORMATS), so that `bioc,jsonl` == `jsonl,bioc`."""
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(asked - set(FORMATS))
    if unknown or not asked:
        raise NerError(f"--format {text!r}: expected a comma-separated list of {', '.join(FORMATS)}")
    return [fmt for fmt in FORMATS if fmt in asked]


def plan(args: argparse.Namespace) -> tuple[list[Shard], list[Shard]]:
    """(all shards of the run, the ones this process takes)."""
    out = args.out.resolve()
    # never the run's own outputs (OUT inside an input folder): they would be tagged as input next time
    paths = [p for p in find_shards(args.inputs) if not p.is_relative_to(out)]
    if not paths:
        raise NerError(f"{', '.join(args.inputs)}: no shards outside the output folder {args.out}")
    shards = name_shards(paths)
    if args.shard_index is not None:
        index, count = args.shard_index, args.shard_count
    else:
        index, count = slurm_partition(dict(os.environ)) or (0, 1)
    return shards, select(shards, index, count)


def worker_devices(device: str | None, workers: int) -> list[str | None]:
    """One GPU per worker (round robin) when GPUs are there and no particular device was asked for."""
    import torch

    if device in (None, "cuda") and torch.cuda.is_available():
        return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    return [device] * workers


def run_in_process(todo, out, options, fingerprints, display) -> Iterator[dict]:
    """Shards one after the other in this process; yields each shard's status as it finishes."""
    if not todo:
        return  # no model to load
    predictor = load_predictor(options, options.device)
    for shard in todo:
        yield tag_shard(shard, out, predictor, fingerprints[shard.name], display.add_documents)


def run_in_pool(todo, out, options, fingerprints, display, workers: int) -> Iterator[dict]:
    """Shards on `workers` spawned processes; yields each shard's status as it finishes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked process
    devices, progress = context.Queue(), context.Queue()
    for device in worker_devices(options.device, workers):
        devices.put(device)
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    pool = ProcessPoolExecutor(workers, context, init_pool, (options, devices, progress, threads))
    try:
        running = {pool.submit(pool_task, shard, out, fingerprints[shard.name]) for shard in todo}
        while running:
            done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            while True:
                try:
                    display.add_documents(progress.get_nowait())
                except queue.Empty:
                    break
            for future in done:
                yield future.result()  # NerError (the model would not load): the run stops
    except BrokenProcessPool:
        stop(pool)
        raise NerError(
            "a worker process died (out of memory? killed?): run the command again to go on"
        ) from None
    except BaseException:  # also GeneratorExit: the caller stopped (Ctrl-C, SIGTERM, an error)
        stop(pool)
        raise
    pool.shutdown()


def stop(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes now, shards in flight and all."""
    for process in list(pool._processes.values()):  # Python 3.14: pool.terminate_workers()
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def stop_on_signals() -> dict:
    """SIGTERM, SIGUSR1 (SLURM: time limit, preemption) and SIGINT raise `Interrupted`; the old handlers."""

    def handler(signum, frame):
        raise Interrupted(signum)

    signals = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    return {signum: signal.signal(signum, handler) for signum in signals}


def abandoned(out: Path, todo: Sequence[Shard]) -> None:
    """Shards left `running` by a stopped run (a terminated worker could not say so) become `interrupted`."""
    for shard in todo:
        status = read_status(out, shard.name)
        if status and status["status"] == RUNNING:
            write_status(out, {**status, "status": INTERRUPTED, "reason": "the run stopped"})


def tag(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    for name, path in (("--ckpt", args.ckpt), ("--onnx-model", args.onnx_model)):
        if path and not Path(path).is_file():
            raise NerError(f"{name} {path}: file not found")
    shards, mine = plan(args)
    out = args.out
    model = model_fingerprint(args.ckpt, args.backend, args.onnx_model, args.precision, args.max_length)
    fingerprints = {
        s.name: {"input": input_fingerprint(s.path), "model": model, "formats": formats} for s in mine
    }
    todo, skipped = [], []
    for shard in mine:
        status = read_status(out, shard.name)
        reason = why_not_finished(out, status, fingerprints[shard.name])
        if reason is None:
            skipped.append(status)
        else:
            todo.append(shard)
            if reason != "new":
                print(f"tagging {shard.name} again: {reason}", file=sys.stderr)
    options = Options(**{field.name: getattr(args, field.name) for field in fields(Options)})
    print(
        f"{len(mine)} of {len(shards)} shards for this process, {len(skipped)} already done, "
        f"{len(todo)} to tag -> {out}",
        file=sys.stderr,
    )
    display = Display(todo, args.progress if args.progress is not None else sys.stderr.isatty())
    started, statuses = time.monotonic(), []
    workers = min(args.workers, len(todo))
    if workers > 1:
        results = run_in_pool(todo, out, options, fingerprints, display, workers)
    else:
        results = run_in_process(todo, out, options, fingerprints, display)
    previous = stop_on_signals()
    try:
        with display.progress:
            for status in results:
                statuses.append(status)
                display.shard_finished(status)
                rebuild_manifest(out, shards)
    except Interrupted as stopped:
        print(f"{stopped}: {len(statuses)} shards finished; run the command again to go on", file=sys.stderr)
        return 128 + stopped.signum
    finally:
        results.close()  # a pool's processes are terminated, shards in flight abandoned
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        abandoned(out, todo)
        manifest = rebuild_manifest(out, shards)
    summary(
        Console(highlight=False, soft_wrap=True, markup=False),
        statuses,
        skipped,
        manifest,
        time.monotonic() - started,
    )
    return 1 if any(s["status"] == FAILED for s in statuses) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with user_errors():
        return tag(args)


if __name__ == "__main__":
    sys.exit(main())
