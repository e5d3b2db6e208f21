"""Every relative link in README.md and docs/*.md points at a file that exists, and at a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

#: The reference documentation: each page must be linked from the README and from docs/README.md.
PAGES = {
    "local-stack.md",
    "connection.md",
    "operator.md",
    "validation.md",
    "delivery-guarantees.md",
    "backfills.md",
    "scaling-out.md",
    "monitoring.md",
    "emulator.md",
    "development.md",
}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_without_code(path.read_text(encoding="utf-8"))) if not re.match(r"[a-z]+:", t)]


def test_the_slug_matches_github():
    assert _slug("What a run returns (XCom `return_value`)") == "what-a-run-returns-xcom-return_value"
    assert (
        _slug("Kafka connections: managed clusters and callbacks") == "kafka-connections-managed-clusters-and-callbacks"
    )


def _broken(doc: Path) -> list[str]:
    broken = []
    for target in _links(doc):
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(doc: Path):
    assert _links(doc) or doc.name != "README.md", f"{doc} links nothing?"
    broken = _broken(doc)
    assert not broken, f"{doc.relative_to(REPO_ROOT)}: broken links {broken}"


def test_every_docs_page_is_linked_from_the_readme_and_the_index():
    assert {p.name for p in (REPO_ROOT / "docs").glob("*.md")} == PAGES | {"README.md"}
    readme = set(_links(REPO_ROOT / "README.md"))
    index = set(_links(REPO_ROOT / "docs" / "README.md"))
    for page in sorted(PAGES):
        assert f"docs/{page}" in readme, f"README.md does not link docs/{page}"
        assert page in index, f"docs/README.md does not link {page}"


def test_the_link_checker_catches_a_broken_link(tmp_path):
    (tmp_path / "b.md").write_text("# Title here\n")
    doc = tmp_path / "a.md"
    doc.write_text("[ok](b.md#title-here) [gone](c.md) [bad anchor](b.md#nope) `[code](x.md)` [web](https://x.org)\n")
    assert _links(doc) == ["b.md#title-here", "c.md", "b.md#nope"]
    assert _anchors(tmp_path / "b.md") == {"title-here"}
    assert _broken(doc) == ["c.md: no such file", "b.md#nope: no heading with anchor #nope"]
