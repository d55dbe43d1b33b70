"""The README's and the docs' ```python blocks run, page by page, so they cannot rot.

Blocks fenced ```python are executed in order in one namespace per page, in a temporary working
directory. Blocks fenced ```py are shown but not run (they need a network or a long run).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from vqkit import _registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_readme_has_runnable_quickstart():
    assert python_blocks(ROOT / "README.md"), "README.md must contain a runnable ```python block"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_page_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Pages may register example parts; keep them out of the registry other tests see.
    monkeypatch.setattr(
        _registry, "_REGISTRY", {kind: dict(names) for kind, names in _registry._REGISTRY.items()}
    )
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, source in enumerate(python_blocks(page), start=1):
        code = compile(source, f"{page.name}[block {number}]", "exec")
        exec(code, namespace)  # running our own documentation is the point


def test_readme_setup_commands_are_the_ci_ones():
    """The README's test command is what .ci/run runs, word for word."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(r"<!-- test-command -->\s*```bash\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md must mark its test command with <!-- test-command -->"
    command = match.group(1).strip()
    assert command in ci, f"the README's test command is not in .ci/run: {command!r}"
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
