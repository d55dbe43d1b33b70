"""Root conftest: the ``--benchmark`` flag that gates the ``benchmarks/`` suites.

``pytest benchmarks --benchmark`` runs them; without the flag they are collected and skipped.
pytest-benchmark's own ``--benchmark-*`` options work beside it (pytest does not abbreviate).
"""

from pathlib import Path

import pytest

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="run the benchmark suites under benchmarks/ (they are skipped otherwise)",
    )
    parser.addoption(
        "--bench-size",
        choices=("small", "full"),
        default="full",
        help="problem sizes for the benchmarks: 'small' for a quick pass, 'full' for the "
        "sizes the issues name (default)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--benchmark"):
        return
    skip = pytest.mark.skip(reason="benchmarks run only with `pytest benchmarks --benchmark`")
    for item in items:
        if BENCHMARK_DIR in Path(item.path).parents:
            item.add_marker(skip)
