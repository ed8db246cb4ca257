"""`python -m ner COMMAND ...`: the project's command lines in one place (`ner COMMAND` once installed)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "score": ("ner.evaluation.score", "score a token<TAB>gold<TAB>pred file with the official rules"),
    "evaluate": ("ner.evaluation.evaluate", "re-decode a run's checkpoint (another decode, epoch or split)"),
    "summarize": ("ner.evaluation.summary", "one Markdown table of finished runs"),
    "search": ("ner.study.search", "the recipe search's table and plots, by dev F1 (never test)"),
    "predict": ("ner.inference.predict", "tag raw text, JSON lines or pre-tokenized files"),
    "export": ("ner.inference.export", "write a checkpoint as a Hugging Face model folder"),
    "tag": (
        "ner.tagging.command",
        "tag PubMed XML, text or JSON lines collections into JSONL / PubTator / BioC",
    ),
}


def usage() -> str:
    lines = ["usage: python -m ner COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help}" for name, (_, help) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
