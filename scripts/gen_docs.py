"""
Rewrite the generated tables in docs/ from their one declaration.

    python -m scripts.gen_docs          # rewrite docs/connection.md and docs/operator.md in place
    python -m scripts.gen_docs --check  # exit 1 when one of them is out of date (CI, tests)

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``;
edit the declaration (``aep_provider/aep/options.py`` for the connection,
``aep_provider/operators/arguments.py`` for the operator), never the block.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The connection tables.
DOC = REPO_ROOT / "docs" / "connection.md"
#: The operator's argument table.
OPERATOR_DOC = REPO_ROOT / "docs" / "operator.md"


def _blocks() -> dict[str, dict[str, Callable[[], str]]]:
    """Generated blocks per file name."""
    from aep_provider.aep.options import readme_tables
    from aep_provider.operators.arguments import doc_table

    return {
        DOC.name: {
            "connection-fields": lambda: readme_tables()[0],
            "connection-extras": lambda: readme_tables()[1],
        },
        OPERATOR_DOC.name: {"operator-arguments": doc_table},
    }


def render(text: str, name: str = DOC.name) -> str:
    """``text`` (the file ``name``) with every generated block rewritten; raises when a declared block has no markers."""
    for block_name, build in _blocks()[name].items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(block_name)} -->\n).*?(<!-- end generated: {re.escape(block_name)} -->)",
            re.S,
        )
        if not pattern.search(text):
            raise SystemExit(
                f"{name} has no '<!-- generated: {block_name} -->' ... '<!-- end generated: {block_name} -->' block"
            )
        block = build()
        text = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date, change nothing")
    parser.add_argument(
        "--file", type=Path, action="append", help="default: docs/connection.md and docs/operator.md (by file name)"
    )
    args = parser.parse_args(argv)
    stale = 0
    for path in args.file or [DOC, OPERATOR_DOC]:
        current = path.read_text(encoding="utf-8")
        wanted = render(current, path.name)
        if wanted == current:
            continue
        if args.check:
            print(f"{path} is out of date: run `python -m scripts.gen_docs`", file=sys.stderr)
            stale = 1
            continue
        path.write_text(wanted, encoding="utf-8")
        print(f"rewrote {path}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
