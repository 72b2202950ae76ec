"""Every document a product file cites is in the repository."""

from __future__ import annotations

import re
import subprocess

from tests.packaging.distributions import REPO

OUTSIDE = re.compile(r"\b(DESIGN|SYSTEM|STYLE)\.md\b|\.\./shared/")
DOC_REFERENCE = re.compile(r"\bdocs/([A-Z][A-Z_]+\.md)")


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in listed.split() if f.endswith((".py", ".md", ".sh", ".hcl", ".toml", ".yaml", "Makefile"))]


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = tracked_text_files()
    assert len(files) > 100, f"saw only {len(files)} files"
    offenders = [f for f in files if OUTSIDE.search((REPO / f).read_text(errors="replace"))]
    assert not offenders, offenders


def test_every_cited_doc_exists() -> None:
    cited = {
        name
        for f in tracked_text_files()
        for name in DOC_REFERENCE.findall((REPO / f).read_text(errors="replace"))
    }
    assert {"COMPONENTS.md", "PLATFORM.md"} <= cited
    missing = sorted(name for name in cited if not (REPO / "docs" / name).is_file())
    assert not missing, missing


#: A measured figure's file under docs/results/ (a .json or .txt), written out in full (no {a,b} patterns).
RESULT_REFERENCE = re.compile(r"\bdocs/results/[A-Za-z0-9_./-]+\.(?:json|txt)\b")


def test_every_cited_result_file_exists() -> None:
    """A figure in the docs names the committed JSON behind it; that file must be there (results move
    between rounds' folders, and a stale path would leave a figure without its evidence)."""
    cited = {
        path
        for f in tracked_text_files()
        if f.endswith(".md") or f.endswith(".py")
        for path in RESULT_REFERENCE.findall((REPO / f).read_text(errors="replace"))
    }
    assert len(cited) >= 10, f"saw only {len(cited)} result files cited"
    missing = sorted(path for path in cited if not (REPO / path).is_file())
    assert not missing, missing
