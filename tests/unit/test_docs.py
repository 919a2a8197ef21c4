"""The operators' documentation: the mkdocs site in docs/ builds with no
broken link, anchor or page left out of the nav (``mkdocs build --strict``),
and the README's links into it land on a page and a heading that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import markdown

REPO = Path(__file__).parents[2]


def test_the_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    queues = (site / "queues" / "index.html").read_text(encoding="utf-8")
    assert 'id="erlang-c-staffing-advice"' in queues


def anchors(page: Path) -> set[str]:
    """The heading ids mkdocs gives a page (Python-Markdown's toc)."""
    html = markdown.markdown(page.read_text(encoding="utf-8"), extensions=["toc", "tables"])
    return set(re.findall(r'<h[1-6] id="([^"]+)"', html))


def test_the_readme_links_land_in_the_docs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert len(links) >= 10, "the README points at the docs pages"
    for path, anchor in links:
        page = REPO / path
        assert page.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(page), f"README links to {path}#{anchor}: no such heading"
