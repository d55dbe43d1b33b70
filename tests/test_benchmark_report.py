"""benchmarks/report.py on synthetic pytest-benchmark JSON, and the ``--benchmark`` gating.

The report's ratios are checked against hand-computed values; the gating runs pytest in a
subprocess on a temporary copy of the benchmark setup (root conftest, benchmarks/conftest.py,
benchmarks/_timing.py) with one tiny benchmark, so it does not depend on the real suites.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load_report():
    spec = importlib.util.spec_from_file_location("vqkit_bench_report", BENCH / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


report = _load_report()

MIB = 2**20


def _bench(group, impl, median, params, memory=None, items=None, q1=None, q3=None):
    extra = {"impl": impl, "device": "cpu"}
    if memory is not None:
        extra["peak_memory_bytes"] = memory
    if items is not None:
        extra.update(throughput_items=items, throughput_unit="vectors")
    q1 = median * 0.9 if q1 is None else q1
    q3 = median * 1.2 if q3 is None else q3
    return {
        "group": group,
        "name": f"test_{group}[{impl}]",
        "fullname": f"benchmarks/test_x.py::test_{group}[{impl}]",
        "params": params,
        "param": "-".join(str(v) for v in params.values()),
        "extra_info": extra,
        "options": {"timer": "sync_timer"},
        "stats": {
            "min": median * 0.8,
            "max": median * 1.5,
            "mean": median,
            "stddev": 0.0,
            "rounds": 7,
            "median": median,
            "iqr": q3 - q1,
            "q1": q1,
            "q3": q3,
            "ops": 1 / median,
        },
    }


def _run_json(benchmarks, device="cpu"):
    machine = {
        "torch": "2.13.0+cpu",
        "cuda": None,
        "bench_device": device,
        "gpu_name": None,
        "cpu_model": "Test CPU 9000",
        "cpu_count": 2,
        "torch_threads": 2,
        "python_version": "3.11.7",
        "system": "Linux",
        "bench_size": "small",
    }
    return {
        "machine_info": machine,
        "commit_info": {"id": "a" * 40, "dirty": True},
        "benchmarks": benchmarks,
        "datetime": "2026-01-02T03:04:05+00:00",
        "version": "5.3.1",
    }


@pytest.fixture
def synthetic(tmp_path):
    benchmarks = [
        # quantizer: vqkit vs a peer at two sizes, with memory and throughput
        _bench("quantize", "vqkit", 0.002, {"n": 4096, "impl": "vqkit"}, 10 * MIB, 4096),
        _bench("quantize", "vqp", 0.010, {"n": 4096, "impl": "vqp"}, 100 * MIB, 4096),
        _bench("quantize", "vqkit", 0.030, {"n": 65536, "impl": "vqkit"}, 20 * MIB, 65536),
        _bench("quantize", "vqp", 0.020, {"n": 65536, "impl": "vqp"}, 40 * MIB, 65536),
        # a peer row with no vqkit partner (different case): no ratio
        _bench("quantize", "vqp", 0.5, {"n": 999, "impl": "vqp"}),
        # prior sampling: fast vs naive, implementation given by a param other than "impl"
        _bench("sample", "fast", 0.1, {"grid": 8, "sampler": "fast"}),
        _bench("sample", "naive", 1.5, {"grid": 8, "sampler": "naive"}),
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_run_json(benchmarks)), encoding="utf-8")
    return path


def test_ratios_pair_same_case_only(synthetic):
    runs, rows = report.load_runs([synthetic])
    assert len(runs) == 1
    assert len(rows) == 7
    pairs = {
        (c.subject.group, c.subject.case_label, c.subject.impl, c.baseline.impl): c
        for c in report.compare(rows)
    }
    assert set(pairs) == {
        ("quantize", "n=4096", "vqkit", "vqp"),
        ("quantize", "n=65536", "vqkit", "vqp"),
        ("sample", "grid=8", "fast", "naive"),
    }
    small = pairs["quantize", "n=4096", "vqkit", "vqp"]
    assert small.time_ratio == pytest.approx(0.2)
    assert small.memory_ratio == pytest.approx(0.1)
    large = pairs["quantize", "n=65536", "vqkit", "vqp"]
    assert large.time_ratio == pytest.approx(1.5)
    assert large.memory_ratio == pytest.approx(0.5)
    sample = pairs["sample", "grid=8", "fast", "naive"]
    assert sample.time_ratio == pytest.approx(0.1 / 1.5)
    assert sample.memory_ratio is None  # no memory recorded


def test_explicit_baseline_and_no_cross_run_ratios(tmp_path):
    one = [_bench("g", "mine", 1.0, {"n": 1, "impl": "mine"})]
    one[0]["extra_info"]["baseline"] = "theirs"
    other = [_bench("g", "theirs", 4.0, {"n": 1, "impl": "theirs"})]
    paths = []
    for name, benches in (("a.json", one + other), ("b.json", other)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(_run_json(benches)), encoding="utf-8")
    _, rows = report.load_runs(paths)
    comparisons = report.compare(rows)
    assert len(comparisons) == 1, "a ratio must never pair rows of two different runs"
    assert comparisons[0].time_ratio == pytest.approx(0.25)
    assert comparisons[0].subject.run is comparisons[0].baseline.run


def test_markdown_tables_machine_and_missing_cuda(synthetic, tmp_path):
    out = tmp_path / "docs" / "benchmarks.md"
    plot = tmp_path / "docs" / "img" / "benchmarks.png"
    pytest.importorskip("matplotlib")
    assert report.main([str(synthetic), "--out", str(out), "--plot", str(plot)]) == 0
    text = out.read_text(encoding="utf-8")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](img/benchmarks.png)" in text  # link relative to the page
    assert "## quantize" in text
    assert "## sample" in text
    assert "CUDA figures are missing" in text
    assert "Test CPU 9000" in text
    assert "2.13.0+cpu" in text
    assert "2026-01-02" in text
    assert "aaaaaaaaaa (uncommitted changes)" in text
    # the 4096 row: 2 ms median, 4096 vectors per call -> 2.05M vectors/s, 10 MiB, ratios
    row = next(line for line in text.splitlines() if line.startswith("| n=4096 | vqkit |"))
    assert "| 2 ms |" in row
    assert "2.05M vectors/s" in row
    assert "10 MiB" in row
    assert "0.2× time, 0.1× memory vs vqp" in row
    assert "| quantize | n=4096 | cpu | vqkit / vqp | 0.2× (5× faster) | 0.1× |" in text
    assert "| quantize | n=65536 | cpu | vqkit / vqp | 1.5× (slower) | 0.5× |" in text
    assert "Busy machine" not in text  # no load recorded


@pytest.mark.parametrize(("load", "busy"), [(2.2, False), (7.5, True)])
def test_busy_machine_warning_follows_the_load(tmp_path, load, busy):
    data = _run_json([_bench("g", "vqkit", 1e-3, {"n": 1, "impl": "vqkit"})])
    data["machine_info"].update(load_average_start=0.4, load_average_end=1.9)
    data["benchmarks"][0]["extra_info"]["load_average"] = load  # 2 cores: busy above 3
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    runs, rows = report.load_runs([path])
    text = report.render_markdown(runs, rows, report.compare(rows))
    assert ("Busy machine" in text) is busy
    assert f"max {load:.2f} (start 0.40, end 1.90) on 2 cores" in text


def test_cuda_run_drops_the_missing_note(tmp_path):
    data = _run_json([_bench("g", "vqkit", 1e-3, {"n": 1, "impl": "vqkit"})], device="cuda")
    data["benchmarks"][0]["extra_info"]["device"] = "cuda"
    data["machine_info"]["gpu_name"] = "NVIDIA H100"
    path = tmp_path / "cuda.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    runs, rows = report.load_runs([path])
    text = report.render_markdown(runs, rows, report.compare(rows))
    assert "CUDA figures are missing" not in text
    assert "NVIDIA H100" in text


def test_number_formats():
    assert report.fmt_time(0.002) == "2 ms"
    assert report.fmt_time(0.9997) == "1000 ms"  # never "1e+03 ms"
    assert report.fmt_time(12.34) == "12.3 s"
    assert report.fmt_time(5e-7) == "500 ns"
    assert report.fmt_bytes(2**20 - 100) == "1024 KiB"  # never "1.02e+03 KiB"
    assert report.fmt_bytes(3 * 2**30) == "3 GiB"
    assert report.fmt_bytes(None) == "-"
    assert report.fmt_rate(2_048_000, "vectors") == "2.05M vectors/s"


def test_rejects_json_that_is_not_pytest_benchmark(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="not pytest-benchmark JSON"):
        report.load_runs([path])


# ----------------------------------------------------------------------------------------------
# The --benchmark gating, end to end in a subprocess

TINY_SUITE = """
import pytest
import torch
from _timing import record_peak_memory, run_pedantic, set_throughput

MIB = 2**20


def make_alloc(mib, device):
    def call():
        return torch.ones(mib * MIB // 4, device=device).sum()  # float32: mib MiB
    return call


def test_tiny(benchmark, device, bench_size):
    benchmark.group = "tiny"
    benchmark.extra_info["impl"] = "vqkit"
    set_throughput(benchmark, 8, "things")
    run_pedantic(benchmark, make_alloc(1, str(device)), device=device, rounds=2)
    record_peak_memory(benchmark, make_alloc, mib=64, device=str(device))
"""


@pytest.fixture
def tiny_project(tmp_path):
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name in ("conftest.py", "_timing.py"):
        shutil.copy(BENCH / name, bench / name)
    (bench / "test_tiny.py").write_text(textwrap.dedent(TINY_SUITE), encoding="utf-8")
    return tmp_path


def _pytest(cwd, *args):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VQKIT_BENCH_DEVICE", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_benchmarks_are_skipped_without_the_flag(tiny_project):
    done = _pytest(tiny_project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "passed" not in done.stdout


def test_benchmarks_run_with_the_flag(tiny_project):
    done = _pytest(tiny_project, "--benchmark", "--benchmark-disable", "--bench-size=small")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_benchmark_json_has_timer_device_memory_and_machine(tiny_project):
    out = tiny_project / "out.json"
    done = _pytest(tiny_project, "--benchmark", "--bench-size=small", f"--benchmark-json={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    (bench,) = data["benchmarks"]
    assert bench["options"]["timer"] == "sync_timer"
    assert bench["stats"]["rounds"] == 2
    extra = bench["extra_info"]
    assert extra["device"] == "cpu"
    assert extra["bench_size"] == "small"
    # one call allocates a 64 MiB tensor: the fresh-process peak sees it, and not much more
    assert 60 * MIB <= extra["peak_memory_bytes"] <= 80 * MIB, extra
    machine = data["machine_info"]
    assert machine["bench_size"] == "small"
    assert machine["torch_threads"] >= 1
    for key in ("torch", "cuda", "device_name", "cpu_model", "cudnn_benchmark"):
        assert key in machine
    assert "float32_matmul_precision" in machine


# ----------------------------------------------------------------------------------------------
# One case, one row; the one-command regeneration (issue 19)


def _write(tmp_path, name, benchmarks, **machine):
    data = _run_json(benchmarks)
    data["machine_info"].update(machine)
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_one_case_in_two_runs_is_refused_with_both_sources_named(tmp_path, capsys):
    case = {"side": 32, "batch": 16, "sampler": "fast"}
    full = _write(tmp_path, "full.json", [_bench("sample", "fast", 0.1, case)])
    rerun = _write(tmp_path, "rerun.json", [_bench("sample", "fast", 0.4, case)])
    out = tmp_path / "page.md"
    with pytest.raises(SystemExit) as exc:
        report.main([str(full), str(rerun), "--out", str(out), "--plot", ""])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "one case must give one row" in err
    assert "sample / side=32, batch=16 / fast on cpu has 2 rows" in err
    assert "full.json" in err
    assert "rerun.json" in err
    assert not out.exists()  # nothing written


def test_duplicate_rows_lists_only_repeated_cases(tmp_path):
    same = {"n": 1, "impl": "vqkit"}
    path = _write(
        tmp_path,
        "run.json",
        [
            _bench("g", "vqkit", 1.0, same),
            _bench("g", "vqkit", 2.0, same),  # the same case twice in one file
            _bench("g", "vqp", 3.0, {"n": 1, "impl": "vqp"}),  # another impl: its own row
            _bench("g", "vqkit", 4.0, {"n": 2, "impl": "vqkit"}),  # another case
        ],
    )
    _, rows = report.load_runs([path])
    problems = report.duplicate_rows(rows)
    assert len(problems) == 1
    assert problems[0].startswith("g / n=1 / vqkit on cpu has 2 rows")
    cuda = [_bench("g", "vqkit", 1.0, same)]
    cuda[0]["extra_info"]["device"] = "cuda"
    other = _write(tmp_path, "cuda.json", cuda)
    cpu = _write(tmp_path, "cpu.json", [_bench("g", "vqkit", 1.0, same)])
    _, rows = report.load_runs([cpu, other])
    assert report.duplicate_rows(rows) == []  # one case per device is not a duplicate


PLAIN_SUITE = """
def test_plain(benchmark):
    benchmark.group = "plain"
    benchmark.extra_info["impl"] = "vqkit"
    benchmark.pedantic(sum, args=([1, 2],), rounds=2)
"""


@pytest.fixture
def plain_project(tiny_project):
    """The tiny project with a benchmark that needs no torch work or memory child (fast)."""
    (tiny_project / "benchmarks" / "test_tiny.py").write_text(PLAIN_SUITE, encoding="utf-8")
    return tiny_project


def test_run_mode_runs_the_suite_once_and_renders_that_run(plain_project, tmp_path):
    out = tmp_path / "docs" / "benchmarks.md"
    json_path = tmp_path / "results" / "full.json"
    args = ["--run", "--bench-size=small", "--suite", str(plain_project / "benchmarks")]
    args += ["--json", str(json_path), "--out", str(out), "--plot", ""]
    assert report.main(args) == 0
    data = json.loads(json_path.read_text(encoding="utf-8"))
    machine = data["machine_info"]
    assert machine["run_seconds"] > 0
    assert machine["load_average_start"] is not None
    assert machine["load_average_end"] is not None
    assert [b["group"] for b in data["benchmarks"]] == ["plain"]
    text = out.read_text(encoding="utf-8")
    assert "## plain" in text
    assert "| Run time | " in text
    assert "--run --bench-size=small" in text
    assert not list(json_path.parent.glob("*.partial"))


def test_run_mode_leaves_the_page_alone_when_a_benchmark_fails(plain_project, tmp_path, capsys):
    (plain_project / "benchmarks" / "test_broken.py").write_text(
        "def test_broken(benchmark):\n    benchmark(lambda: 1 / 0)\n", encoding="utf-8"
    )
    out = tmp_path / "benchmarks.md"
    out.write_text("old page\n", encoding="utf-8")
    args = ["--run", "--bench-size=small", "--suite", str(plain_project / "benchmarks")]
    args += ["--json", str(tmp_path / "run.json"), "--out", str(out), "--plot", ""]
    assert report.main(args) == 1
    assert "the benchmark run failed" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "old page\n"


def test_run_mode_takes_no_json_files(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main(["--run", str(tmp_path / "x.json")])
    assert "give no JSON files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main([])
    assert "or --run" in capsys.readouterr().err


# ---- the data table (branch data) -------------------------------------------------------------


def _data_bench(case, wall, **extra):
    bench = _bench("data: train from PNG folder", "vqkit", wall, {"case": case})
    bench["extra_info"].update(extra, case=case, throughput_items=1280, throughput_unit="images")
    return bench


def test_data_group_shows_rates_memory_load_and_cpu_not_wall_time(tmp_path):
    lazy = _data_bench(
        "fits-lazy-2-workers",
        40.0,  # wall time with the folder scan: 32 img/s, which the table must not show
        workers=2,
        images=20000,
        images_per_s=1034.4,
        epoch1_images_per_s=900.2,
        later_images_per_s=1700.6,
        read_images_per_s=3063.4,
        peak_rss_mib=377.8,
        peak_rss_source="VmHWM",
        worker_peak_rss_mib=292.8,
        load_s=1.95,
        train_cpu_ms_per_image=0.954,
        train_sys_ms_per_image=0.06,
        worker_cpu_ms_per_image=0.26,
        minor_faults_per_image=6.3,
        load_average=1.29,
    )
    memory = _data_bench(  # an older JSON: no read-only rate, kernel share, faults, VmHWM
        "fits-memory-0-workers",
        30.0,
        workers=0,
        images=20000,
        images_per_s=1740,
        peak_rss_mib=924.0,
        worker_peak_rss_mib=0.0,
        load_s=4.95,
        train_cpu_ms_per_image=0.574,
        worker_cpu_ms_per_image=0.0,
        load_average=1.48,
    )
    other = _bench("quantize", "vqkit", 0.002, {"n": 4096, "impl": "vqkit"}, 10 * MIB, 4096)
    path = _write(tmp_path, "run.json", [lazy, memory, other])
    out = tmp_path / "page.md"
    assert report.main([str(path), "--out", str(out), "--plot", ""]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    start = lines.index("## data: train from PNG folder")
    header, _, first, second = lines[start + 2 : start + 6]
    assert header == (
        "| Case | Images | Train images/s | Read-only images/s | Peak RSS | Worker peak RSS "
        "| Load time | Train CPU ms/img | Worker CPU ms/img | Faults/img | Load avg |"
    )
    assert first == (
        "| fits-lazy-2-workers | 20,000 | 1034 (epoch 1: 900, later: 1701) | 3063 | 378 MiB "
        "| 293 MiB | 1.95 s "
        "| 0.954 (kernel 0.060) | 0.260 | 6.3 | 1.29 |"
    )
    assert second == (
        "| fits-memory-0-workers | 20,000 | 1740 | - | ≤ 924 MiB | - | 4.95 s | 0.574 | - | - "
        "| 1.48 |"
    )
    assert "32 images/s" not in "\n".join(lines)  # no wall-time throughput for the data runs
    assert any(line.startswith("| n=4096 | vqkit | cpu | 2 ms |") for line in lines)


def test_a_group_is_a_data_group_only_when_every_row_has_a_rate():
    rows = [
        report.Row(None, "g", "a", "vqkit", "cpu", (), 1.0, 0, 1, 1, 1, {"images_per_s": 5}),
        report.Row(None, "g", "b", "vqkit", "cpu", (), 1.0, 0, 1, 1, 1, {}),
    ]
    assert report.is_data_group(rows[:1])
    assert not report.is_data_group(rows)
    assert not report.is_data_group([])
    flag = report.Row(None, "g", "c", "vqkit", "cpu", (), 1.0, 0, 1, 1, 1, {"images_per_s": True})
    assert not report.is_data_group([flag])  # a bool is not a rate
