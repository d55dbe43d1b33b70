"""The built documentation: ``mkdocs build --strict`` passes, no raw Sphinx role (``:class:`X` ``)
is left as text in any rendered page, and docstring cross-references render as links.

The site is built once for the module (about 15 s idle); the test is skipped where mkdocs is not
installed (CI installs the ``docs`` extra, so it runs there)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A role mkdocstrings did not understand: ":class:" then the backquoted target, which Markdown
# turned into <code>, or left as a backquote inside a code span.
LEAKED_ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj):(?:<code>|`)")
# A Markdown cross-reference that autorefs did not resolve is left as text.
UNRESOLVED_REF = re.compile(r"\]\[vqkit\.[\w.]*\]")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def pages(site: Path) -> list[Path]:
    found = sorted(site.rglob("*.html"))
    assert any(p.parent.name == "api" for p in found), "the API page was not built"
    return found


def test_no_raw_sphinx_role_in_the_rendered_pages(site):
    leaks = []
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        for match in LEAKED_ROLE.finditer(html):
            context = re.sub(r"<[^>]+>", "", html[match.start() : match.start() + 80])
            leaks.append(f"{page.relative_to(site)}: {context.strip()}")
    assert not leaks, "raw Sphinx roles render as text:\n" + "\n".join(leaks)


def test_every_cross_reference_resolves(site):
    unresolved = [
        f"{page.relative_to(site)}: {match.group()}"
        for page in pages(site)
        for match in UNRESOLVED_REF.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not unresolved, "cross-references left as text:\n" + "\n".join(unresolved)


def test_docstring_cross_references_are_links(site):
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    # vqkit.from_pretrained's docstring refers to [`HubMixin.from_pretrained`][...]
    link = re.compile(r'<a[^>]*href="[^"]*#vqkit\.HubMixin\.from_pretrained"[^>]*>')
    assert link.search(api), "the cross-reference to HubMixin.from_pretrained is not a link"


def test_the_patterns_find_what_they_look_for():
    assert LEAKED_ROLE.search("<p>Built by :func:<code>load_array</code></p>")
    assert LEAKED_ROLE.search("see :class:`X`")
    assert not LEAKED_ROLE.search("<p>see <code>VQVAE</code>: a model</p>")
    assert UNRESOLVED_REF.search("<p>[<code>X</code>][vqkit.X]</p>")
    assert not UNRESOLVED_REF.search('<a href="#vqkit.X"><code>X</code></a>')
