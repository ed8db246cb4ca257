"""Tagging one shard: read its records, find the entities of its documents in chunks, and put its outputs
in place only when all of them are complete.

Every output is written to a temporary file beside its final name (`.NAME.SUFFIX.XXXX.tmp`, hidden, so
that `find_shards` never picks it up) and renamed into place once the whole shard is tagged; the status
file says `done` only after that. A kill at any moment therefore leaves either the complete outputs of a
shard or a status that is not `done` (the next run tags the shard again and removes the leftovers).
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ner.errors import NerError
from ner.tagging.inputs import BadRecord, Deleted, Document, read_shard
from ner.tagging.manifest import FAILED, FINISHED, INTERRUPTED, RUNNING, read_status, write_status
from ner.tagging.outputs import SUFFIXES, TaggedDocument, render
from ner.tagging.shards import Shard

CHUNK = 256  # documents per predictor call: bounded memory, and enough for its length sorting to help
STREAMED = ("jsonl", "pubtator")  # formats whose file is the concatenation of its chunks' renderings
# Test hook: seconds to sleep per document read, so that a test can kill a run while a shard is in flight.
DELAY_ENV = "NER_TAG_TEST_DELAY"


class Interrupted(BaseException):
    """SIGTERM/SIGUSR1 (SLURM's time limit or preemption) or Ctrl-C: abandon the shard in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class Options:
    """What a process needs to load the predictor: the command's model options."""

    ckpt: str
    device: str | None = None
    backend: str = "torch"
    onnx_model: str | None = None
    precision: str = "32"
    batch_size: int = 32
    max_length: int | None = None


def load_predictor(options: Options, device: str | None):
    """`Predictor.from_checkpoint` with the command's options."""
    from ner.inference.predictor import Predictor  # torch: seconds to import, so only where it is used

    return Predictor.from_checkpoint(
        options.ckpt,
        device=device,
        precision=options.precision,
        backend=options.backend,
        onnx_model=options.onnx_model,
        batch_size=options.batch_size,
        max_length=options.max_length,
    )


def find_entities(predictor, documents: Sequence[Document]) -> list[TaggedDocument]:
    """The documents with their entities, per passage, offsets into that passage."""
    # the passages of a document are tagged together: each other's context where the model was trained so
    found = predictor.document_entities([[passage.text for passage in d.passages] for d in documents])
    return [
        TaggedDocument(document, tuple(tuple(entities) for entities in passages))
        for document, passages in zip(documents, found, strict=True)
    ]


class ShardOutput:
    """One output file of a shard, growing in a temporary file until `commit` renames it into place."""

    def __init__(self, out: Path, name: str, fmt: str) -> None:
        self.fmt, self.relative = fmt, f"{name}{SUFFIXES[fmt]}"
        self.path = out / self.relative
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.tmp, self.handle = Path(tmp), os.fdopen(fd, "w", encoding="utf-8")
        self.held: list[TaggedDocument] = []  # formats rendered once, at the end (BioC: one collection)

    def add(self, documents: list[TaggedDocument]) -> None:
        if self.fmt in STREAMED:
            self.handle.write(render(self.fmt, documents))
        else:
            self.held.extend(documents)

    def commit(self) -> dict:
        if self.fmt not in STREAMED:
            self.handle.write(render(self.fmt, self.held))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)
        return {"path": self.relative, "bytes": self.path.stat().st_size}

    def discard(self) -> None:
        self.handle.close()  # a no-op after commit
        self.tmp.unlink(missing_ok=True)


def remove_leftovers(out: Path, shard: Shard, formats: Iterable[str]) -> None:
    """The outputs of an earlier attempt at this shard, complete or not (the shard is tagged again)."""
    old = read_status(out, shard.name) or {}
    paths = {out / o["path"] for o in old.get("outputs", {}).values()}
    paths |= {out / f"{shard.name}{SUFFIXES[fmt]}" for fmt in set(formats) | set(old.get("formats", ()))}
    for path in paths:
        path.unlink(missing_ok=True)
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # a killed run's temporary files
            tmp.unlink(missing_ok=True)


def tag_shard(
    shard: Shard,
    out: Path,
    predictor,
    fingerprint: dict,
    on_documents: Callable[[int], None] | None = None,
) -> dict:
    """Tag one shard and write its outputs and status; the status (`done` or `failed`, with the reason).

    A shard that cannot be read (`ShardError`, also mid-file) or tagged is `failed` and its partial outputs
    are discarded; `Interrupted` is re-raised after marking the shard `interrupted`."""
    formats = fingerprint["formats"]
    started = time.monotonic()
    head = {"name": shard.name, "input": str(shard.path)}
    tail = {"formats": formats, "fingerprint": fingerprint, "host": socket.gethostname(), "pid": os.getpid()}
    remove_leftovers(out, shard, formats)
    write_status(out, {**head, "status": RUNNING, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **tail})
    delay = float(os.environ.get(DELAY_ENV) or 0)
    outputs = [ShardOutput(out, shard.name, fmt) for fmt in formats]
    documents = entities = 0
    bad: list[dict] = []
    deleted: list[str] = []
    pending: list[Document] = []

    def flush() -> None:
        nonlocal documents, entities
        tagged = find_entities(predictor, pending)
        for output in outputs:
            output.add(tagged)
        documents += len(tagged)
        entities += sum(len(passage) for t in tagged for passage in t.entities)
        if on_documents:
            on_documents(len(tagged))
        pending.clear()

    def give_up() -> None:  # no output of this attempt stays, neither temporary nor renamed
        for output in outputs:
            output.discard()
        remove_leftovers(out, shard, formats)

    try:
        for record in read_shard(shard.path):
            if isinstance(record, Document):
                pending.append(record)
                if delay:
                    time.sleep(delay)
                if len(pending) >= CHUNK:
                    flush()
            elif isinstance(record, BadRecord):
                bad.append(asdict(record))
            elif isinstance(record, Deleted):
                deleted.extend(record.ids)
        if pending:
            flush()
        written = {output.fmt: output.commit() for output in outputs}
        state = {"status": FINISHED}
    except Exception as error:
        give_up()
        if not isinstance(error, NerError):  # not the input's fault: show where it went wrong
            traceback.print_exc()
        reason = str(error) if isinstance(error, NerError) else f"{type(error).__name__}: {error}"
        written, state = {}, {"status": FAILED, "reason": reason}
    except BaseException as error:  # Interrupted, KeyboardInterrupt: leave nothing half-written
        give_up()
        reason = str(error) or type(error).__name__
        write_status(out, {**head, "status": INTERRUPTED, "reason": reason, **tail})
        raise
    status = {**head, **state, "documents": documents, "entities": entities, "bad_records": bad}
    status |= {
        "deleted": deleted,
        "seconds": round(time.monotonic() - started, 3),
        "outputs": written,
        **tail,
    }
    write_status(out, status)
    return status


# --workers N: each pool process loads the predictor once (on its first shard) and keeps it.
_worker: dict = {}


def init_pool(options: Options, devices, progress, threads: int) -> None:
    """Pool initializer: one device from `devices` (a queue), `threads` CPU threads, signals left to the
    parent (which stops the pool on Ctrl-C or SIGUSR1), and an exit when the parent dies (even SIGKILL), so
    that no orphan goes on writing outputs."""
    import threading

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _worker.update(options=options, device=devices.get(), progress=progress)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def pool_task(shard: Shard, out: Path, fingerprint: dict) -> dict:
    """`tag_shard` in a pool process; documents tagged are reported on the progress queue."""
    try:
        if "predictor" not in _worker:
            _worker["predictor"] = load_predictor(_worker["options"], _worker["device"])
    except NerError as error:
        raise NerError(str(error)) from None  # a plain NerError: DataError's arguments do not pickle
    progress = _worker["progress"]
    return tag_shard(shard, out, _worker["predictor"], fingerprint, lambda n: progress.put(n))
