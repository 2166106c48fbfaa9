"""The README and docs/ stay walkable and true: every page is linked from the README,
every relative link and anchor resolves, and the tables that mirror code match it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", markdown), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def relative_links(markdown: str) -> list[str]:
    return [
        link
        for link in LINK.findall(FENCE.sub("", markdown))
        if not re.match(r"^[a-z]+:", link) and not link.startswith("mailto:")
    ]


def test_the_readme_links_every_docs_page() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    linked = {Path(link.split("#")[0]).name for link in relative_links(readme)}
    assert PAGES, "docs/ has no pages"
    assert [page.name for page in PAGES if page.name not in linked] == []


def test_the_readme_stays_short() -> None:
    # A newcomer's README: what and why, the two commands, install, the tour, links.
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", [REPO_ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    text = page.read_text()
    broken = []
    for link in relative_links(text):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        missing_anchor = (
            path.exists()
            and anchor
            and path.suffix == ".md"
            and anchor not in anchors(path.read_text())
        )
        if not path.exists() or missing_anchor:
            broken.append(link)
    assert broken == []


def test_the_policy_table_lists_every_bundled_policy_with_its_action() -> None:
    page = (DOCS / "policies.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", page, flags=re.M))
    bundled = {}
    for path in sorted((REPO_ROOT / "policies").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        bundled[document["id"]] = document["action"]
    assert set(rows) == set(bundled)
    for policy, action in bundled.items():
        # no-inline-secrets reads "Enforce on plugin ConfigMaps, Warn elsewhere": its
        # check raises single findings above the policy's own action.
        assert action in rows[policy], policy
