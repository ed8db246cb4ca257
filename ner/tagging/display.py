"""What `python -m ner tag` shows: progress on stderr while it runs, a summary when it ends."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ner.tagging.manifest import FAILED, FINISHED
from ner.tagging.shards import Shard

SHOWN_BAD_RECORDS = 20  # in the summary; the manifest lists them all


class Display:
    """Progress on stderr (documents per second; ETA over the input bytes of the shards, counted when a
    shard finishes: counting documents ahead would mean reading every shard twice) and a line per shard."""

    def __init__(self, todo: Sequence[Shard], enabled: bool) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
        self.progress = Progress(
            TextColumn("tagging"),
            BarColumn(),
            TextColumn("{task.fields[shards]}"),
            TextColumn("{task.fields[docs]:,} documents, {task.fields[rate]:.1f}/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.sizes = {shard.name: max(1, shard.path.stat().st_size) for shard in todo}
        self.total, self.finished, self.documents = len(todo), 0, 0
        self.started = time.monotonic()
        self.task = self.progress.add_task("", total=sum(self.sizes.values()), shards="", docs=0, rate=0.0)
        self.refresh()

    def refresh(self) -> None:
        rate = self.documents / max(1e-9, time.monotonic() - self.started)
        shards = f"{self.finished}/{self.total} shards"
        self.progress.update(self.task, shards=shards, docs=self.documents, rate=rate)

    def add_documents(self, n: int) -> None:
        self.documents += n
        self.refresh()

    def shard_finished(self, status: dict) -> None:
        self.finished += 1
        self.progress.advance(self.task, self.sizes[status["name"]])
        self.refresh()
        if status["status"] == FINISHED:
            bad = f", {len(status['bad_records'])} bad records" if status["bad_records"] else ""
            self.console.print(
                f"done {status['name']}: {status['documents']} documents, {status['entities']} entities"
                f"{bad} ({status['seconds']:.1f} s)"
            )
        else:
            self.console.print(f"failed {status['name']}: {status['reason']}", style="red")


def summary(console: Console, statuses: list[dict], skipped: list[dict], manifest: dict, seconds: float):
    """This process's shards (tagged now, already done, failed: documents read before it failed), its speed,
    the failures and bad records, and where the whole run stands (all processes, from the manifest)."""
    done = [s for s in statuses if s["status"] == FINISHED]
    failed = [s for s in statuses if s["status"] == FAILED]
    table = Table(title="python -m ner tag", title_justify="left")
    for column in ("shards", "count", "documents", "entities", "bad records", "deleted"):
        table.add_column(column, justify="left" if column == "shards" else "right")
    for label, rows in (("tagged now", done), ("already done", skipped), ("failed", failed)):
        counts = [sum(r.get(key, 0) for r in rows) for key in ("documents", "entities")]
        bad, deleted = sum(len(r["bad_records"]) for r in rows), sum(len(r["deleted"]) for r in rows)
        table.add_row(label, str(len(rows)), *(f"{n:,}" for n in counts), f"{bad:,}", f"{deleted:,}")
    console.print(table)
    documents = sum(s["documents"] for s in done)
    console.print(
        f"{documents:,} documents in {seconds:.1f} s, model loading included: "
        f"{documents / max(seconds, 1e-9):.1f} documents/s"
    )
    for status in failed:
        console.print(f"failed: {status['name']} ({status['input']}): {status['reason']}")
    bad = [record for status in done + failed for record in status["bad_records"]]
    for record in bad[:SHOWN_BAD_RECORDS]:
        console.print(f"bad record: {record['where']} (id {record['id']}): {record['reason']}")
    if len(bad) > SHOWN_BAD_RECORDS:
        console.print(f"... and {len(bad) - SHOWN_BAD_RECORDS} more bad records: see manifest.json")
    totals = manifest["totals"]
    console.print(f"manifest: {totals['done']} of {totals['shards']} shards done, {totals['failed']} failed")
