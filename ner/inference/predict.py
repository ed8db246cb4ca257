"""Tag raw text or pre-tokenized sentences from the command line; JSON lines out.

    python -m ner predict --ckpt outputs/quickstart/checkpoints/last.ckpt abstracts.txt > entities.jsonl
    echo "IL-2 gene expression requires NF-kappa B." | python -m ner predict --ckpt last.ckpt -

Input (a file, or `-` for standard input), UTF-8:
- plain text: one document per line; blank lines are skipped. Each document gives
  `{"line": N, "text": ..., "entities": [{"type", "start", "end", "text", "score"}, ...]}`.
- JSON lines (`--format jsonl`, a `.jsonl` file, or input whose first line starts with `{`): objects with
  `"text"` (raw text -> `"entities"` added), `"tokens"` (a word list -> `"tags"` and `"scores"` added) or
  `"sentences"` (a pre-tokenized document, a list of word lists -> `"tags"` and `"scores"`, one list per
  sentence); every other field (an id, say) is passed through.
A record is one document: a model trained with `data.context > 0` gives each sentence the neighbouring
sentences of its own record as context (a text's sentences, a `"sentences"` list), never another record's;
a `"tokens"` record is a document of one sentence.
Character offsets count Unicode code points of the text, as Python's `text[start:end]` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from ner.errors import DataError, user_errors
from ner.files import atomic_write_text, decode_text, read_bytes

STDIN = "<stdin>"
INPUT_KEYS = ("text", "tokens", "sentences")  # a record holds exactly one of them
PROGRESS_FROM = 100  # records: smaller inputs finish before a progress bar would help


def read_input(source: str) -> tuple[str, str]:
    """`(name, text)` of a file or of standard input (`-`), decoded as UTF-8; DataError if that fails."""
    if source == "-":
        name, data = STDIN, sys.stdin.buffer.read()
    else:
        name, data = source, read_bytes(source)
    text = decode_text(name, data, "utf-8-sig")  # a byte-order mark is not part of the first document
    if not text.strip():
        raise DataError(name, "is empty: expected one document per line, or JSON lines")
    return name, text


def parse_records(name: str, text: str, fmt: str) -> list[dict]:
    """Input records, each with `line` and one of `text`, `tokens`, `sentences` (validated, with line
    numbers)."""
    lines = text.splitlines()
    if fmt == "auto":
        first = next(line for line in lines if line.strip())
        fmt = "jsonl" if name.endswith((".jsonl", ".json")) or first.lstrip().startswith("{") else "text"
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if fmt == "text":
            records.append({"line": number, "text": line})
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(name, f"not valid JSON ({error.msg})", number) from None
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict) or sum(key in record for key in INPUT_KEYS) != 1:
            raise DataError(name, 'expected an object with one of "text", "tokens" or "sentences"', number)
        if "text" in record and not isinstance(record["text"], str):
            raise DataError(name, '"text" must be a string', number)
        tokens = record.get("tokens")
        if "tokens" in record and not (
            isinstance(tokens, list) and all(isinstance(t, str) and t.strip() for t in tokens)
        ):
            raise DataError(name, '"tokens" must be a list of non-empty strings', number)
        sentences = record.get("sentences")
        if "sentences" in record and not (isinstance(sentences, list) and all(map(_is_words, sentences))):
            raise DataError(name, '"sentences" must be a list of lists of non-empty strings', number)
        records.append({"line": number, **record})
    return records


def _is_words(words) -> bool:
    return isinstance(words, list) and all(isinstance(w, str) and w.strip() for w in words)


def annotate(predictor, records: list[dict], progress: bool) -> list[dict]:
    """Each record with its `entities` (text) or `tags` and `scores` (tokens; per sentence for sentences)."""
    texts = [r for r in records if "text" in r]
    tokenized = [r for r in records if "text" not in r]
    for record, entities in zip(texts, predictor.entities([r["text"] for r in texts], progress), strict=True):
        record["entities"] = [asdict(entity) for entity in entities]
    documents = [r["sentences"] if "sentences" in r else [r["tokens"]] for r in tokenized]
    for record, tagged in zip(tokenized, predictor.tag_documents(documents, progress), strict=True):
        tags = [list(t.tags) for t in tagged]
        scores = [[round(s, 6) for s in t.scores] for t in tagged]
        single = "tokens" in record  # one word list in, one tag list out
        record["tags"], record["scores"] = (tags[0], scores[0]) if single else (tags, scores)
    return records


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ner predict", description=__doc__.split("\n")[0])
    parser.add_argument("input", nargs="?", default="-", help="text or JSONL file; '-' (default): stdin")
    parser.add_argument("--ckpt", required=True, help="checkpoint of a run (e.g. RUN/checkpoints/last.ckpt)")
    parser.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto", help="input format")
    parser.add_argument("--output", "-o", help="write JSON lines here instead of stdout")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per forward pass")
    parser.add_argument("--max-length", type=int, help="subwords per window (default: as in training)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--precision",
        choices=("32", "bf16", "int8"),  # ner.model.INFERENCE_PRECISIONS, without importing torch here
        default="32",
        help="32: exact (default); bf16: bfloat16 autocast, faster on GPUs and AVX512-BF16/AMX CPUs; "
        "int8: dynamically quantized encoder, CPU only (costs F1: see the README's benchmark figures)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),  # ner.inference.onnx.BACKENDS
        default="torch",
        help="torch (default) or onnx: the encoder runs in ONNX Runtime, same tags as torch fp32",
    )
    parser.add_argument(
        "--onnx-model",
        help="the graph for --backend onnx (from python -m ner export --onnx: DIR/model.onnx,"
        " DIR/model.int8.onnx; default: exported to a temporary folder for this run)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bar on stderr (default: from {PROGRESS_FROM} records)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with user_errors():
        name, text = read_input(args.input)
        records = parse_records(name, text, args.format)
        from ner.inference.predictor import Predictor  # after the input checks: loading torch takes seconds

        predictor = Predictor.from_checkpoint(
            args.ckpt,
            device=args.device,
            precision=args.precision,
            max_length=args.max_length,
            batch_size=args.batch_size,
            backend=args.backend,
            onnx_model=args.onnx_model,
        )
        progress = args.progress if args.progress is not None else len(records) >= PROGRESS_FROM
        lines = [json.dumps(r, ensure_ascii=False) for r in annotate(predictor, records, progress)]
        if args.output:
            atomic_write_text(args.output, "\n".join(lines) + "\n")
        else:
            sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
