"""
The shell commands README.md and docs/*.md tell users to run, read from the docs themselves.

Commands are the lines of fenced ``bash`` blocks (``\\`` continuations joined, ``# comments``
dropped) and inline code spans that start like a command (``make ...``, ``scripts/local ...``,
``curl ...``). Tests run them through :func:`documented`, so what they run is what the docs say;
``tests/test_docs_commands.py`` checks that every command is run by a test or says why it is not.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

#: Inline code spans that are commands to run (the rest name commands, options or values).
INLINE_COMMAND = re.compile(r"^(make |scripts/local |curl |\.venv/bin/|docker |KAFKA_BOOTSTRAP_SERVERS=)")
_BLOCK = re.compile(r"^[ \t]*```(bash|sh|shell|console)\n(.*?)^[ \t]*```", re.S | re.M)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Command:
    doc: str  # path relative to the repository, e.g. "docs/backfills.md"
    text: str

    def __str__(self) -> str:
        return f"{self.doc}: {self.text}"


def _lines(block: str) -> list[str]:
    """The block's commands: ``\\`` continuations and quotes that span lines joined, ``# comments`` dropped."""
    commands, current, quote = [], "", None
    for line in block.splitlines():
        line = line.lstrip() if current and quote is None else line
        for i, char in enumerate(line):
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (i == 0 or line[i - 1].isspace()):
                line = line[:i]
                break
        line = line.rstrip()
        if quote is not None:
            current += line + "\n"
        elif line.endswith("\\"):
            current += line[:-1].rstrip() + " "
        else:
            commands.append((current + line).strip())
            current = ""
    return [c for c in commands if c]


def commands(docs: list[Path] = DOCS) -> list[Command]:
    """Every documented command, in document order."""
    found = []
    for path in docs:
        text = path.read_text(encoding="utf-8")
        doc = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name
        for block in _BLOCK.finditer(text):
            found += [Command(doc, line) for line in _lines(textwrap.dedent(block.group(2))) if line]
        prose = _BLOCK.sub("", text)
        found += [Command(doc, span.strip()) for span in _INLINE.findall(prose) if INLINE_COMMAND.match(span)]
    return found


def documented(doc: str, prefix: str) -> str:
    """The one command of ``doc`` (e.g. ``"docs/backfills.md"``) that starts with ``prefix``, as written."""
    matches = sorted({c.text for c in commands() if c.doc == doc and c.text.startswith(prefix)})
    assert len(matches) == 1, f"{doc}: expected one command starting {prefix!r}, found {matches}"
    return matches[0]
