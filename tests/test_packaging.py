"""Packaging facts that a core install relies on (the built wheel itself is smoke-tested by
.ci/run with .ci/wheel_smoke.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import vqkit

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source():
    assert "version" not in PROJECT["project"]
    assert "version" in PROJECT["project"]["dynamic"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "vqkit.__version__"}
    assert str(Version(vqkit.__version__)) == vqkit.__version__  # PEP 440, normalised
    # setuptools reads the attribute statically: it must be a plain string assignment.
    source = (ROOT / "vqkit" / "__init__.py").read_text()
    assert re.search(r'^__version__ = "[^"]+"$', source, re.MULTILINE)


def test_core_dependencies_can_write_safetensors():
    """safetensors.torch writes through numpy; the [torch] extra is what brings it."""
    deps = {Requirement(d).name: Requirement(d) for d in PROJECT["project"]["dependencies"]}
    assert "torch" in deps["safetensors"].extras
    assert {"torch", "huggingface-hub", "einops"} <= set(deps)


def test_typed_package_and_metadata():
    assert (ROOT / "vqkit" / "py.typed").is_file()
    assert "py.typed" in PROJECT["tool"]["setuptools"]["package-data"]["vqkit"]
    assert "Typing :: Typed" in PROJECT["project"]["classifiers"]
    assert PROJECT["project"]["license"] == "MIT"
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(PROJECT["project"]["urls"])


def test_sdist_leaves_the_tests_out():
    manifest = (ROOT / "MANIFEST.in").read_text().splitlines()
    assert "prune tests" in manifest


def test_the_ci_smoke_tests_the_wheel_in_a_core_only_venv():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m build" in ci
    assert '"$dist/core/bin/pip" install -q "$dist"/vqkit-*.whl' in ci  # no extras
    assert ".ci/wheel_smoke.py" in ci
