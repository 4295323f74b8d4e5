"""What the documentation names exists: every repository path a doc, docstring or comment cites is in the
repository, nothing cites a file outside it, and the README keeps its promises short."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_FOLDERS = ("docs", "builders", "medsets", "scripts", "benchmarks", "tests", "cards")
# A path of the repository as prose cites it: `docs/hep2.md`, builders/hep2.py, medsets/metrics/README.md.
CITED = re.compile(r"(?<![\w./-])((?:" + "|".join(TOP_FOLDERS) + r")/[\w./*<>{}-]*[\w/*>}])")
# Placeholders stand for a family of files (cards/NAME.md, scripts/finetune_*.py, medsets/metrics/<name>/).
PLACEHOLDER = re.compile(r"[*<>{}]|\b[A-Z]{3,}\b")


def documents() -> list[Path]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "cards").glob("*.md")),
             ROOT / "medsets" / "metrics" / "README.md", ROOT / "pyproject.toml", ROOT / "Makefile"]
    code = sorted(p for folder in TOP_FOLDERS for p in (ROOT / folder).rglob("*.py"))
    return texts + code


def test_every_cited_path_exists():
    missing = []
    for document in documents():
        for line_number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1):
            for cited in CITED.findall(line):
                if PLACEHOLDER.search(cited) or cited.startswith("tests/data/"):
                    continue
                # The installed package's view of the mapped folders (medsets/builders/ is builders/ here).
                path = re.sub(r"^medsets/(builders|cards)\b", r"\1", cited.rstrip("/."))
                if not (ROOT / path).exists():
                    missing.append(f"{document.relative_to(ROOT)}:{line_number}: {cited}")
    assert missing == []


def test_nothing_cites_a_file_outside_the_repository():
    outside = re.compile(r"shared/(SOURCES|ARCHITECTURE|PERFORMANCE|seeds)|SOURCES\.md|\.\./shared")
    found = [f"{document.relative_to(ROOT)}:{n}" for document in documents()
             for n, line in enumerate(document.read_text(encoding="utf-8").splitlines(), start=1)
             if outside.search(line) and document != Path(__file__).resolve()]
    assert found == []


def test_readme_is_short_and_its_two_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 170
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.strip().splitlines()[-1] == "make test"
    for page in ("hep2", "leukemia", "gzmh", "bis5k", "building", "fine-tuning", "evaluation", "benchmarks"):
        assert f"docs/{page}.md" in readme, page
