"""The docs tree can be walked: every relative link in README.md, hardware.md,
CHANGELOG.md and docs/ leads to a file that exists, and an #anchor to a
heading of that file; every page of docs/ is reached from docs/README.md;
and the README's two newcomer commands are the scripts as they are."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", REPO / "hardware.md", REPO / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_every_relative_link_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        for target in links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_in_the_index() -> None:
    index = {(DOCS / t.partition("#")[0]).resolve() for t in links(DOCS / "README.md")}
    pages = {p.resolve() for p in DOCS.glob("*.md") if p.name != "README.md"}
    assert sorted(str(p.relative_to(REPO)) for p in pages - index) == []


def test_the_readme_is_a_front_door() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, "move detail into docs/ and link it"
    assert (REPO / "docs" / "README.md").name in text or "docs/README.md" in text


def test_the_readme_commands_are_the_scripts() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    demo = (REPO / "scripts" / "demo.sh").read_text(encoding="utf-8")
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"```sh\n{script}\n```" in text
        assert os.access(REPO / script, os.X_OK), script
    # what the README says the demo builds, from what, is what the script does
    for word in ("footage/vtest.avi", "ultrasonic/hcsr04_log.csv", "recordings/vtest-hcsr04"):
        assert word in text and word in demo, word
