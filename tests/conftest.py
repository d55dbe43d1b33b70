"""Shared test helpers live in ``tests/`` (e.g. ``gloo_workers``); put it on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
