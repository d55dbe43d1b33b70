"""The docstrings of every vqkit module render on the API page (mkdocstrings, Markdown): no raw
Sphinx roles such as :class:`X`, which show up as text; write ``X`` or [`X`][vqkit.X]."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "vqkit"
FILES = sorted(ROOT.rglob("*.py"))  # every module (tests/test_docs_html.py checks the site)
ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|obj|exc):`")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT.parent).as_posix())
def test_no_raw_sphinx_roles(path):
    lines = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if ROLE.search(line)
    ]
    assert not lines, "raw Sphinx roles render as text on the API page:\n" + "\n".join(lines)


def test_the_pattern_finds_a_role():
    assert ROLE.search("see :class:`~vqkit.VQVAE`")
    assert not ROLE.search("see ``VQVAE``")


def test_every_public_name_is_on_the_api_page():
    import vqkit

    api = (ROOT.parent / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {m.rsplit(".", 1)[-1] for m in re.findall(r"^::: ([\w.]+)", api, re.MULTILINE)}
    documented |= {"KINDS", "__version__"}  # described in the page's text
    assert "vqkit.KINDS" in api
    missing = [name for name in vqkit.__all__ if name not in documented]
    assert not missing, f"public names missing from docs/api.md: {missing}"
    private = re.findall(r"^::: (vqkit\._[\w.]+)", api, re.MULTILINE)
    assert not private, f"docs/api.md shows private import paths: {private}"
