"""
Rewrite the README's generated tables from their one declaration.

    python -m scripts.gen_docs          # rewrite README.md in place
    python -m scripts.gen_docs --check  # exit 1 when README.md is out of date (CI, tests)

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``;
edit the declaration (``aep_provider/aep/options.py``), never the block.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
                f"README.md has no '<!-- generated: {name} -->' ... '<!-- end generated: {name} -->' block"
            )
        block = build()
        text = pattern.sub(lambda m, block=block: m.group(1) + block + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date, change nothing")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = render(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{args.readme} is out of date: run `python -m scripts.gen_docs`", file=sys.stderr)
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    print(f"rewrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
