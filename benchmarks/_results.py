"""Write one benchmark's section of benchmarks/RESULTS.md, leaving the other sections alone."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in this folder; rerun one to refresh its section.\n"
)


def write_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- {name}:start -->\n{markdown.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    path.write_text(text)


def read_section(name: str, path: Path = RESULTS) -> str | None:
    """The markdown between ``<!-- name:start -->`` and ``<!-- name:end -->``, or ``None``."""
    if not path.exists():
        return None
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->\n(.*?)\n?<!-- {re.escape(name)}:end -->", re.S
    )
    match = pattern.search(path.read_text())
    return match.group(1) if match else None


def report(name: str, markdown: str, write: bool, path: Path = RESULTS) -> None:
    """Print a benchmark's section; when ``write``, also put it into ``path``
    (:func:`write_section`)."""
    print(markdown)
    if write:
        write_section(name, markdown, path)
        print(f"wrote the {name} section of {path}")
