"""Turn pytest-benchmark JSON into ``docs/benchmarks.md`` and a PNG plot.

    python benchmarks/report.py --run [--bench-size full] [--json benchmarks/results/full.json]
    python benchmarks/report.py out.json [more.json ...] \
        [--out docs/benchmarks.md] [--plot docs/img/benchmarks.png]

``--run`` is the one command that regenerates the page: it runs the whole suite once
(``python -m pytest benchmarks --benchmark --benchmark-json=JSON``), adds the wall time of that
run to the JSON, and renders the page from that file alone. The page is only written when every
benchmark passed. Otherwise each JSON file is one run given on the command line. The page has a
section on the machine of each run (CPU, threads, packages, commit, the load average at the start
and end of the run and the highest seen by any benchmark), a summary of the ratios, and one table
per benchmark group: median time, IQR, rounds, throughput and peak memory (from ``extra_info``).
A group whose every row reports ``images_per_s`` (the data benchmark, ``benchmarks/test_data.py``)
gets a data table instead: training images/s, read-only images/s, peak RSS of the training process
and of its largest worker, load time and CPU time per image, all from ``extra_info``; its median
would be wall time including the folder scan.

One case gives one row: two rows with the same group, device, case and implementation (the same
benchmark in two JSON files, say a full run and a rerun of one case) are refused with both
sources named, so a page never shows two conflicting figures for one case.

Ratios are taken only inside one run, between rows of the same group, device and case (the
parameters other than the implementation): ``vqkit`` against every other implementation, ``fast``
against ``naive``, or any row against the implementation named in its ``extra_info["baseline"]``.
A ratio below 1 means the first implementation takes less time (or memory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks.md"
DEFAULT_PLOT = ROOT / "docs" / "img" / "benchmarks.png"
DEFAULT_RUN_JSON = ROOT / "benchmarks" / "results" / "full.json"

# Subject implementation -> the implementation it is compared with ("*": every other one).
DEFAULT_BASELINES = {"vqkit": "*", "fast": "naive"}
IMPL_PARAM = "impl"
# A 1-minute load average above this many runnable threads per core marks a busy machine (the
# benchmark itself accounts for about one per core).
BUSY_LOAD_PER_CORE = 1.5
MIB = 2**20


@dataclass
class Run:
    """One pytest-benchmark JSON file."""

    index: int
    path: Path
    machine: dict
    commit: dict
    date: str
    version: str

    @property
    def has_cuda(self) -> bool:
        return str(self.machine.get("bench_device", "cpu")).startswith("cuda")

    @property
    def cores(self) -> int:
        m = self.machine
        return int(m.get("cpu_affinity") or m.get("cpu_count") or 1)

    def max_load(self, rows: list[Row]) -> float | None:
        """Highest 1-minute load average seen before, during or after the run."""
        loads = [self.machine.get("load_average_start"), self.machine.get("load_average_end")]
        loads += [r.extra.get("load_average") for r in rows if r.run is self]
        loads = [float(x) for x in loads if isinstance(x, (int, float))]
        return max(loads) if loads else None

    def busy(self, rows: list[Row]) -> bool:
        """More runnable threads than 1.5x the cores at some point: CPU timings are distorted."""
        load = self.max_load(rows)
        return load is not None and load > BUSY_LOAD_PER_CORE * self.cores

    @property
    def label(self) -> str:
        return f"run {self.index + 1} ({self.machine.get('bench_device', '?')})"


@dataclass
class Row:
    """One benchmark of one run."""

    run: Run
    group: str
    name: str
    impl: str
    device: str
    case: tuple[tuple[str, str], ...]
    median: float
    iqr: float
    q1: float
    q3: float
    rounds: int
    extra: dict = field(default_factory=dict)

    @property
    def case_label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.case) or "-"

    @property
    def memory(self) -> int | None:
        value = self.extra.get("peak_memory_bytes")
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def throughput(self) -> tuple[float, str] | None:
        items, unit = self.extra.get("throughput_items"), self.extra.get("throughput_unit")
        if not items or not unit or self.median <= 0:
            return None
        return items / self.median, unit

    def key(self) -> tuple:
        """Rows with the same key measure the same work with different implementations."""
        return (self.run.index, self.group, self.device, self.case)


@dataclass
class Comparison:
    subject: Row
    baseline: Row

    @property
    def time_ratio(self) -> float:
        return self.subject.median / self.baseline.median

    @property
    def memory_ratio(self) -> float | None:
        a, b = self.subject.memory, self.baseline.memory
        if a is None or not b:
            return None
        return a / b


# ----------------------------------------------------------------------------------------------
# Loading


def _case(params: dict | None, impl: str) -> tuple[tuple[str, str], ...]:
    """The parameters that describe the work, without the one naming the implementation."""
    items = []
    for name, value in (params or {}).items():
        if name == IMPL_PARAM or value == impl:
            continue
        items.append((str(name), str(value)))
    return tuple(items)


def load_runs(paths: list[Path]) -> tuple[list[Run], list[Row]]:
    """Read pytest-benchmark JSON files into runs and rows (rows keep the files' order)."""
    runs, rows = [], []
    for index, path in enumerate(paths):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "benchmarks" not in data or "machine_info" not in data:
            raise ValueError(
                f"{path} is not pytest-benchmark JSON (no 'benchmarks'/'machine_info')"
            )
        run = Run(
            index=index,
            path=Path(path),
            machine=data["machine_info"],
            commit=data.get("commit_info") or {},
            date=data.get("datetime", ""),
            version=data.get("version", ""),
        )
        runs.append(run)
        for bench in data["benchmarks"]:
            extra = bench.get("extra_info") or {}
            params = bench.get("params") or {}
            impl = str(extra.get("impl", params.get(IMPL_PARAM, "vqkit")))
            stats = bench["stats"]
            rows.append(
                Row(
                    run=run,
                    group=bench.get("group") or "ungrouped",
                    name=bench["name"],
                    impl=impl,
                    device=str(extra.get("device", run.machine.get("bench_device", "cpu"))),
                    case=_case(params, impl),
                    median=float(stats["median"]),
                    iqr=float(stats.get("iqr", 0.0)),
                    q1=float(stats.get("q1", stats["median"])),
                    q3=float(stats.get("q3", stats["median"])),
                    rounds=int(stats.get("rounds", 0)),
                    extra=extra,
                )
            )
    return runs, rows


def duplicate_rows(rows: list[Row]) -> list[str]:
    """One message per case measured more than once (same group, device, case and
    implementation, in one or several runs); empty when every case has one row."""
    seen: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        seen[(row.group, row.device, row.case, row.impl)].append(row)
    problems = []
    for (group, device, _, impl), same in seen.items():
        if len(same) < 2:
            continue
        where = ", ".join(f"{r.name} in {r.run.path.name}" for r in same)
        problems.append(
            f"{group} / {same[0].case_label} / {impl} on {device} has {len(same)} rows ({where})"
        )
    return problems


def compare(rows: list[Row]) -> list[Comparison]:
    """Pair rows of the same run, group, device and case by implementation (see module doc)."""
    by_key: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        by_key[row.key()].append(row)
    out = []
    for same in by_key.values():
        for subject in same:
            wanted = subject.extra.get("baseline", DEFAULT_BASELINES.get(subject.impl))
            if wanted is None:
                continue
            for baseline in same:
                if baseline.impl == subject.impl or baseline.median <= 0:
                    continue
                if wanted in ("*", baseline.impl):
                    out.append(Comparison(subject, baseline))
    return out


# ----------------------------------------------------------------------------------------------
# Formatting


def _sig(value: float) -> str:
    """Three significant digits without scientific notation (999.7 -> "1000", not "1e+03")."""
    return f"{value:.3g}" if abs(value) < 999.5 else f"{value:.0f}"


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{_sig(seconds / scale)} {unit}"
    return f"{_sig(seconds / 1e-9)} ns"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{_sig(n / scale)} {unit}"
    return f"{n} B"


def fmt_rate(rate: float, unit: str) -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{_sig(rate / scale)}{prefix} {unit}/s"
    return f"{_sig(rate)} {unit}/s"


def fmt_ratio(ratio: float) -> str:
    return f"{_sig(ratio)}×"


def _speed(ratio: float) -> str:
    if abs(ratio - 1) < 0.005:
        return "same"
    return f"{_sig(1 / ratio)}× faster" if ratio < 1 else "slower"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return lines


def _date(run: Run) -> str:
    try:
        return datetime.fromisoformat(run.date).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return run.date or "-"


def _load_cell(run: Run, rows: list[Row]) -> str:
    m = run.machine
    start, end, top = m.get("load_average_start"), m.get("load_average_end"), run.max_load(rows)
    if top is None:
        return "-"
    parts = [f"{name} {value:.2f}" for name, value in (("start", start), ("end", end)) if value]
    return f"max {top:.2f} ({', '.join(parts)}) on {run.cores} cores" + (
        ": busy" if run.busy(rows) else ""
    )


def _run_time(run: Run) -> str:
    seconds = run.machine.get("run_seconds")
    if not isinstance(seconds, (int, float)):
        return "-"
    return f"{seconds / 60:.1f} min (`{run.machine.get('run_command', 'pytest benchmarks')}`)"


def machine_section(run: Run, rows: list[Row]) -> list[str]:
    m = run.machine
    cpu = m.get("cpu_model") or (m.get("cpu") or {}).get("brand_raw") or m.get("processor") or "?"
    cores = m.get("cpu_count") or (m.get("cpu") or {}).get("count")
    affinity = m.get("cpu_affinity")
    cpu_cell = f"{cpu}, {cores} logical cores" + (
        f" ({affinity} usable)" if affinity and affinity != cores else ""
    )
    if m.get("memory_total_gib"):
        cpu_cell += f", {m['memory_total_gib']} GiB RAM"
    gpu = m.get("gpu_name")
    if gpu:
        gpu_cell = f"{gpu}, {m.get('gpu_memory_gib', '?')} GiB, compute {m.get('gpu_capability')}"
    else:
        gpu_cell = "none (CPU only)"
    tf32 = (
        f"matmul {m.get('cuda_matmul_fp32_precision', '-')} "
        f"(allow_tf32={m.get('cuda_matmul_allow_tf32')}), "
        f"cuDNN {m.get('cudnn_fp32_precision', '-')} (allow_tf32={m.get('cudnn_allow_tf32')}), "
        f"float32_matmul_precision={m.get('float32_matmul_precision')}"
    )
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)
    commit = str(run.commit.get("id") or "-")
    if len(commit) == 40:  # a git sha
        commit = commit[:10] + (" (uncommitted changes)" if run.commit.get("dirty") else "")
    body = [
        ["Date", _date(run)],
        ["Benchmark device", str(m.get("bench_device", "?"))],
        ["CPU", cpu_cell],
        ["GPU", gpu_cell],
        [
            "Threads",
            f"torch {m.get('torch_threads', '?')} intra-op, "
            f"{m.get('torch_interop_threads', '?')} inter-op",
        ],
        ["torch", str(m.get("torch", "?"))],
        ["CUDA / cuDNN", f"{m.get('cuda') or '-'} / {m.get('cudnn') or '-'}"],
        ["TF32", tf32],
        ["cudnn.benchmark", str(m.get("cudnn_benchmark", "?"))],
        [
            "Python / OS",
            f"{m.get('python_version', '?')} / {m.get('system', '?')} {m.get('release', '')}",
        ],
        ["Packages", packages or "-"],
        ["Load average (1 min)", _load_cell(run, rows)],
        ["Run time", _run_time(run)],
        ["Size preset", f"--bench-size={m.get('bench_size', '?')}"],
        ["Commit", commit],
        ["JSON", f"`{run.path.name}` (pytest-benchmark {run.version})"],
    ]
    return _table(["", run.label], body)


def render_markdown(
    runs: list[Run], rows: list[Row], comparisons: list[Comparison], plot: str | None = None
) -> str:
    """The whole page (markdown, mkdocs-material admonitions)."""
    out = ["# Benchmarks", ""]
    out += [
        "Generated by `python benchmarks/report.py` from "
        + ", ".join(f"`{r.path.name}`" for r in runs)
        + ". How to run them yourself: `benchmarks/README.md`. Times are medians over the timed "
        "rounds; IQR is the spread between the first and third quartiles; peak memory is one "
        "call's peak above what its setup holds (CUDA: `max_memory_allocated`; CPU: peak RSS of "
        "a fresh process). Ratios compare implementations measured in the same run only.",
        "",
    ]
    if not any(r.has_cuda for r in runs) and not any(r.device.startswith("cuda") for r in rows):
        out += [
            '!!! warning "CUDA figures are missing"',
            "    Every figure on this page was measured on a CPU: no GPU was available for these "
            "runs. Run `pytest benchmarks --benchmark --benchmark-json=cuda.json` on a CUDA "
            "machine and pass that file to `benchmarks/report.py` beside this one.",
            "",
        ]
    busy = [run for run in runs if run.busy(rows)]
    if busy:
        out += [
            '!!! danger "Busy machine"',
            "    "
            + ", ".join(run.label for run in busy)
            + " ran while other work loaded the machine (1-minute load average above "
            f"{BUSY_LOAD_PER_CORE:g}× the cores; see Machine). Oversubscribed CPU threads can "
            "slow a step ten times or more, unevenly: treat these timings and ratios as a check "
            "that the pipeline works, not as figures.",
            "",
        ]
    elif any(not r.has_cuda for r in runs):
        out += [
            "!!! note",
            "    CPU timings depend on the load of the machine; a wide IQR means a noisy run.",
            "",
        ]

    out += ["## Machine", ""]
    for run in runs:
        out += [*machine_section(run, rows), ""]

    if comparisons:
        out += ["## Ratios", ""]
        out += [
            "Time and memory of the first implementation divided by the second's, same run, "
            "same case.",
            "",
        ]
        body = []
        for c in comparisons:
            mem = c.memory_ratio
            body.append(
                [
                    c.subject.group,
                    c.subject.case_label,
                    c.subject.device,
                    f"{c.subject.impl} / {c.baseline.impl}",
                    f"{fmt_ratio(c.time_ratio)} ({_speed(c.time_ratio)})",
                    "-" if mem is None else fmt_ratio(mem),
                ]
            )
        out += [*_table(["Group", "Case", "Device", "Pair", "Time", "Peak memory"], body), ""]

    if plot:
        out += ["## Plot", "", f"![Median time per benchmark (log scale)]({plot})", ""]

    by_pair: dict[int, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        by_pair[id(c.subject)].append(c)
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    multi_run = len(runs) > 1
    for group, members in groups.items():
        out += [f"## {group}", ""]
        if is_data_group(members):
            out += [*data_table(members, multi_run), ""]
            continue
        header = ["Case", "Impl", "Device", "Median", "IQR", "Rounds", "Throughput", "Peak memory"]
        header += ["Ratio"] + (["Run"] if multi_run else [])
        body = []
        for row in members:
            rate = row.throughput
            ratio = "<br>".join(
                f"{fmt_ratio(c.time_ratio)} time"
                + ("" if c.memory_ratio is None else f", {fmt_ratio(c.memory_ratio)} memory")
                + f" vs {c.baseline.impl}"
                for c in by_pair.get(id(row), [])
            )
            cells = [
                row.case_label,
                row.impl,
                row.device,
                fmt_time(row.median),
                fmt_time(row.iqr),
                str(row.rounds),
                "-" if rate is None else fmt_rate(*rate),
                fmt_bytes(row.memory),
                ratio or "-",
            ]
            body.append(cells + ([str(row.run.index + 1)] if multi_run else []))
        out += [*_table(header, body), ""]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------
# Data table


def _num(extra: dict, key: str) -> float | None:
    value = extra.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def is_data_group(members: list[Row]) -> bool:
    """Whether every row of a group is a data-path training run (reports ``images_per_s``)."""
    return bool(members) and all(_num(r.extra, "images_per_s") is not None for r in members)


def _cell(value: float | None, fmt) -> str:
    return "-" if value is None else fmt(value)


def _mib(value: float) -> str:
    return fmt_bytes(round(value * MIB))


def _ms(value: float) -> str:
    return f"{value:.3f}"


def data_table(members: list[Row], multi_run: bool = False) -> list[str]:
    """One row per data-path run: rates, memory, load time and CPU per image from ``extra_info``.

    ``Train images/s`` adds the first epoch's rate and the later steps' when the run had more
    than one epoch (a cache filled in epoch 1 changes between). ``Train CPU`` is the training
    process's CPU ms per image (its kernel share in brackets when recorded); ``Workers CPU``
    the DataLoader workers'. A run without workers shows "-" for the worker columns. A peak RSS
    not read from ``VmHWM`` (``peak_rss_source``; older runs recorded ``ru_maxrss``, which Linux
    carries over ``exec`` from the forking pytest process) is only an upper bound: "≤".
    """
    header = [
        "Case",
        "Images",
        "Train images/s",
        "Read-only images/s",
        "Peak RSS",
        "Worker peak RSS",
        "Load time",
        "Train CPU ms/img",
        "Worker CPU ms/img",
        "Faults/img",
        "Load avg",
    ] + (["Run"] if multi_run else [])
    body = []
    for row in members:
        e = row.extra
        workers = _num(e, "workers")
        has_workers = workers is not None and workers > 0
        train_cpu = _cell(_num(e, "train_cpu_ms_per_image"), _ms)
        sys_cpu = _num(e, "train_sys_ms_per_image")
        if sys_cpu is not None and train_cpu != "-":
            train_cpu += f" (kernel {_ms(sys_cpu)})"
        worker_rss = _num(e, "worker_peak_rss_mib")
        worker_cpu = _num(e, "worker_cpu_ms_per_image")
        images = _num(e, "images")
        own_rss = e.get("peak_rss_source") == "VmHWM"
        rate = _cell(_num(e, "images_per_s"), _sig)
        first, later = _num(e, "epoch1_images_per_s"), _num(e, "later_images_per_s")
        if first is not None and later is not None:
            rate += f" (epoch 1: {_sig(first)}, later: {_sig(later)})"
        cells = [
            str(e.get("case") or row.case_label),
            "-" if images is None else f"{int(images):,}",
            rate,
            _cell(_num(e, "read_images_per_s"), _sig),
            _cell(_num(e, "peak_rss_mib"), _mib if own_rss else lambda v: f"≤ {_mib(v)}"),
            _cell(worker_rss if has_workers and worker_rss else None, _mib),
            _cell(_num(e, "load_s"), lambda v: f"{_sig(v)} s"),
            train_cpu,
            _cell(worker_cpu if has_workers and worker_cpu else None, _ms),
            _cell(_num(e, "minor_faults_per_image"), _sig),
            _cell(_num(e, "load_average"), lambda v: f"{v:.2f}"),
        ]
        body.append(cells + ([str(row.run.index + 1)] if multi_run else []))
    return _table(header, body)


# ----------------------------------------------------------------------------------------------
# Plot


def plot_rows(rows: list[Row], path: Path) -> None:
    """One panel per group: median time per case and implementation, IQR as error bars (log)."""
    import matplotlib  # imported here: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    if not groups:
        raise ValueError("no benchmarks to plot")
    heights = [1.0 + 0.22 * len(members) for members in groups.values()]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(9, sum(heights)),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    multi_device = len({row.device for row in rows}) > 1
    impls = list(dict.fromkeys(row.impl for row in rows))
    colours = {impl: plt.get_cmap("tab10")(i % 10) for i, impl in enumerate(impls)}
    for ax, (group, members) in zip(axes[:, 0], groups.items(), strict=True):
        y = list(range(len(members)))[::-1]  # first row on top
        for impl in dict.fromkeys(r.impl for r in members):
            mine = [(yy, r) for yy, r in zip(y, members, strict=True) if r.impl == impl]
            ax.errorbar(
                [r.median for _, r in mine],
                [yy for yy, _ in mine],
                xerr=[
                    [max(r.median - r.q1, 0.0) for _, r in mine],
                    [max(r.q3 - r.median, 0.0) for _, r in mine],
                ],
                fmt="o",
                markersize=4,
                capsize=2,
                color=colours[impl],
                label=impl,
            )
        labels = [r.case_label + (f" ({r.device})" if multi_device else "") for r in members]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(-0.7, len(members) - 0.3)
        ax.set_xscale("log")
        low = min(min(r.q1, r.median) for r in members)
        high = max(max(r.q3, r.median) for r in members)
        ax.set_xlim(max(low, 1e-12) / 3, high * 3)  # at least a decade, so a labelled tick shows
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt_time(value)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_title(group, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("median time per call (error bars: IQR), log scale", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# CLI


def run_suite(json_path: Path, bench_size: str, extra: list[str], suite: Path) -> int:
    """One uninterrupted run of the benchmark suite into ``json_path``; pytest's exit code.

    The wall time and the command are added to the JSON's ``machine_info`` (``run_seconds``,
    ``run_command``), next to the load average the suite's conftest records at start and end.
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    partial = json_path.with_name(json_path.name + ".partial")
    partial.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        "--benchmark",
        f"--bench-size={bench_size}",
        f"--benchmark-json={partial}",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    shown = " ".join(["python", *command[1:]]).replace(str(partial), str(json_path))
    print(f"running: {shown}", file=sys.stderr)
    start = time.perf_counter()
    code = subprocess.call(command, cwd=suite.parent)
    seconds = time.perf_counter() - start
    if not partial.is_file():
        return code or 1
    data = json.loads(partial.read_text(encoding="utf-8"))
    data["machine_info"]["run_seconds"] = round(seconds, 1)
    data["machine_info"]["run_command"] = (
        f"python benchmarks/report.py --run --bench-size={bench_size}"
    )
    partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(partial, json_path)
    print(f"benchmark run took {seconds / 60:.1f} min; JSON in {json_path}", file=sys.stderr)
    return code


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="*", type=Path, help="pytest-benchmark JSON file(s)")
    parser.add_argument(
        "--run",
        action="store_true",
        help="run the whole suite once first (into --json) and render the page from that run",
    )
    parser.add_argument(
        "--json",
        dest="run_json",
        type=Path,
        default=DEFAULT_RUN_JSON,
        help="with --run: the JSON to write",
    )
    parser.add_argument(
        "--bench-size", default="full", choices=("small", "full"), help="with --run"
    )
    parser.add_argument(
        "--suite", type=Path, default=ROOT / "benchmarks", help="with --run: the suite folder"
    )
    parser.add_argument(
        "--pytest-arg",
        action="append",
        default=[],
        help="with --run: one more argument for pytest (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown page to write")
    parser.add_argument(
        "--plot", type=Path, default=DEFAULT_PLOT, help="PNG to write ('' for no plot)"
    )
    args = parser.parse_args(argv)
    if args.run and args.json:
        parser.error("--run renders its own run only; give no JSON files with it")
    if not args.run and not args.json:
        parser.error("give pytest-benchmark JSON file(s), or --run to run the suite first")
    paths = args.json
    if args.run:
        code = run_suite(args.run_json, args.bench_size, args.pytest_arg, args.suite.resolve())
        if code != 0:
            print(
                f"error: the benchmark run failed (pytest exit code {code}); "
                f"{args.out} was not changed",
                file=sys.stderr,
            )
            return 1
        paths = [args.run_json]

    try:
        runs, rows = load_runs(paths)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if not rows:
        parser.error(
            "the JSON holds no timed benchmarks (was it written with --benchmark-disable?)"
        )
    problems = duplicate_rows(rows)
    if problems:
        parser.error(
            "one case must give one row; measured more than once:\n  " + "\n  ".join(problems)
        )
    comparisons = compare(rows)
    plot_link = None
    if str(args.plot) not in ("", "."):
        plot_rows(rows, args.plot)
        plot_link = Path(os.path.relpath(args.plot.resolve(), args.out.resolve().parent)).as_posix()
    _write_atomically(args.out, render_markdown(runs, rows, comparisons, plot_link))
    print(f"wrote {args.out} ({len(rows)} benchmarks, {len(comparisons)} ratios)", file=sys.stderr)
    if plot_link:
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
