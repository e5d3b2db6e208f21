"""
Rewrite the generated tables in docs/connection.md from their one declaration.

    python -m scripts.gen_docs          # rewrite docs/connection.md in place
    python -m scripts.gen_docs --check  # exit 1 when docs/connection.md is out of date (CI, tests)

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``;
edit the declaration (``aep_provider/aep/options.py``), never the block.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The file holding the generated blocks (the connection tables).
DOC = REPO_ROOT / "docs" / "connection.md"


def _blocks() -> dict[str, Callable[[], str]]:
    from aep_provider.aep.options import readme_tables

    return {
        "connection-fields": lambda: readme_tables()[0],
        "connection-extras": lambda: readme_tables()[1],
    }


def render(text: str) -> str:
    """``text`` with every generated block rewritten; raises when a declared block has no markers."""
    for name, build in _blocks().items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- end generated: {re.escape(name)} -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(
                f"{DOC.relative_to(REPO_ROOT)} has no '<!-- generated: {name} -->' ... "
                f"'<!-- end generated: {name} -->' block"
            )
        block = build()
        text = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/connection.md is out of date, change nothing"
    )
    parser.add_argument("--file", type=Path, default=DOC, help="default: docs/connection.md")
    args = parser.parse_args(argv)
    current = args.file.read_text(encoding="utf-8")
    wanted = render(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.file} is out of date: run `python -m scripts.gen_docs`", file=sys.stderr)
        return 1
    args.file.write_text(wanted, encoding="utf-8")
    print(f"rewrote {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
