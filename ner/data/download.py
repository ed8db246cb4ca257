"""Fetching a corpus that is not on disk yet (`prepare_data`), and one clear message when that cannot work."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ner.errors import NerError

DOWNLOAD_TIMEOUT_S = 30


def _fetch_member(url: str, member: str, target: Path) -> None:
    """Download a .tar.gz and copy one member out of it to `target` (written atomically)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        with tarfile.open(archive) as tar:
            matches = [m for m in tar.getmembers() if Path(m.name).name == member]
            if not matches:
                raise NerError(f"{url} does not contain {member}")
            extracted = tar.extractfile(matches[0])
            partial = target.with_suffix(".part")
            with partial.open("wb") as out:
                shutil.copyfileobj(extracted, out)
            partial.replace(target)


def ensure_corpus(data_dir: str | Path, splits: Mapping[str, Mapping[str, str] | None]) -> None:
    """Make sure `data_dir` holds `<split>.iob2` for every split in `splits` ({split: {url, member} or None}),
    downloading what is missing."""
    data_dir = Path(data_dir)
    files = {f"{split}.iob2": source or {} for split, source in splits.items()}
    missing = [name for name in files if not (data_dir / name).exists()]
    if not missing:
        return
    hint = (
        f"Put {' and '.join(files)} into {data_dir} (or point data.dir at the folder that holds them; "
        "for JNLPBA: the shared task's Genia4ERtask2.iob2 as train.iob2 and Genia4EReval2.iob2 as test.iob2)."
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in missing:
        source = files[name]
        if not source.get("url"):
            raise NerError(f"{data_dir / name} is missing and no download is configured. {hint}")
        try:
            _fetch_member(source["url"], source["member"], data_dir / name)
        except (OSError, tarfile.TarError) as error:
            raise NerError(
                f"{data_dir / name} is missing and the download from {source['url']} failed ({error}). {hint}"
            ) from None
