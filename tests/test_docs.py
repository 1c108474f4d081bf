"""The README and docs/ as a clone has them: every link points inside the repository at a
file that exists, and every query whose output the README shows fixes its row order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "ingest" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text
    for target in LINK.findall(text):
        if target.startswith("#"):
            continue
        assert "://" not in target, f"{page.name}: links outside the repository: {target}"
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO) and path.exists(), f"{page.name}: {target}"


def test_the_definitions_live_in_the_repository() -> None:
    text = (REPO / "docs" / "definitions.md").read_text()
    for term in ("Sufficient mask", "δ-complete mask", "α-transferability", "β-transferability(ε)",
                 "Empty signal", "Flat-earther", "Label transfer", "ASR fidelity"):  # fmt: skip
        assert f"**{term}**" in text, term
    readme = (REPO / "README.md").read_text()
    assert "](docs/definitions.md)" in readme and "](docs/design.md)" in readme


def _shown_queries(text: str) -> list[str]:
    """The SQL of every `sigwh sql "..."` or `duckdb ... "..."` in the README's code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    queries = []
    for block in blocks:
        queries += re.findall(r'(?:sigwh sql|duckdb [^"\n]*) "([^"]*)"', block, flags=re.S)
    return [q for q in queries if "SELECT" in q.upper()]


def test_readme_queries_fix_their_row_order() -> None:
    queries = _shown_queries((REPO / "README.md").read_text())
    assert len(queries) >= 4
    unordered = [q for q in queries if "ORDER BY" not in q.upper()]
    assert unordered == []


def test_the_readme_names_the_parameter_set_that_ingest_iterations_2_makes() -> None:
    from sigwarehouse.freqrex.params import FreqrexParams

    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"_for\((?:0\.5, )?'([0-9a-f]{16})'\)", readme))
    assert named == {FreqrexParams(iterations=2).hash()}
    assert "the set `sigwh ingest --iterations 2` makes" in readme
