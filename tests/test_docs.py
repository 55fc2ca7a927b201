"""The documentation site builds with `mkdocs build --strict` (every page, every docstring,
every cross-reference resolved), and its API pages list every public name."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
SUBPACKAGES = sorted(
    p.parent.name for p in (ROOT / "gpm_sde").glob("*/__init__.py") if p.parent.name != "cli"
)


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (it is in the `dev` extra: pip install -e '.[dev]')",
)
def test_mkdocs_build_strict(tmp_path: Path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "JAX_PLATFORMS": "cpu"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "index.html").is_file()
    assert (site / "api" / "sde" / "index.html").is_file()


def _exports(init: Path) -> list[str]:
    """The names an `__init__.py` re-exports (`from .x import name as name`)."""
    return re.findall(r"\b(\w+) as \1\b", init.read_text(encoding="utf-8"))


@pytest.mark.parametrize("package", SUBPACKAGES)
def test_api_page_lists_every_export(package: str):
    page = API / f"{package}.md"
    assert page.is_file(), f"docs/api/{package}.md is missing: add it and list it in mkdocs.yml"
    text = page.read_text(encoding="utf-8")
    listed = set(re.findall(r"^        - (\w+)$", text, re.MULTILINE))
    anchored = set(re.findall(rf"\{{#gpm_sde\.{package}\.(\w+)\}}", text))
    missing = [n for n in _exports(ROOT / "gpm_sde" / package / "__init__.py")]
    missing = [n for n in missing if n not in listed | anchored]
    assert not missing, f"docs/api/{package}.md does not document {missing}"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"api/{package}.md" in nav


def test_every_theory_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs" / "theory").glob("*.md")):
        assert f"theory/{page.name}" in nav, f"docs/theory/{page.name} is not in mkdocs.yml nav"
