"""``report.html``: one self-contained page per run folder (metrics, pictures, loss curves, config).

The page needs nothing but itself: every picture of the run folder is embedded as a base64
``data:image/png`` URI, the style sheet is inline, and there is no script and no external asset,
so it opens offline, can be mailed or attached to an issue, and a headless browser shows it
exactly as a person does. ``vqkit train`` writes it at the end of every run
(``vqkit.train.recipes``); ``vqkit report RUN`` writes it again for an existing run folder.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["REPORT_FILE", "report_html", "write_report"]

#: The file name of the report inside a run folder.
REPORT_FILE = "report.html"

#: The run's pictures, in the order the page shows them (others follow by name).
_ORDER = ("reconstructions", "latent_maps", "samples", "interpolations")
_CAPTIONS = {
    "reconstructions": "Inputs (top row of each pair) and their reconstructions (below).",
    "latent_maps": "Inputs above their code index maps; the legend names the most used codes.",
    "samples": "Samples: code grids drawn from the prior, decoded.",
    "interpolations": "Interpolations between two encodings, left to right.",
    "loss_curves": "Training and validation loss of every stage.",
}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.2rem 1.2rem 0.2rem 0; border-bottom: 1px solid #eee; }
td.num { text-align: right; }
figure { margin: 1rem 0 2rem 0; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9rem; }
summary { cursor: pointer; color: #333; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
"""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({exc})") from None


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    return html.escape(str(value))


def _pictures(run: Path) -> list[Path]:
    """Every PNG at the top of the run folder, the known pictures first, loss curves last."""
    files = sorted(p for p in run.glob("*.png") if p.is_file() and not p.name.startswith("."))
    rank = {name: i for i, name in enumerate(_ORDER)}

    def key(p: Path) -> tuple[int, str]:
        if p.stem == "loss_curves":
            return (len(_ORDER) + 1, p.name)
        return (rank.get(p.stem, len(_ORDER)), p.name)

    return sorted(files, key=key)


def _data_uri(path: Path) -> str:
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(path: Path) -> str:
    title = path.stem.replace("_", " ")
    caption = _CAPTIONS.get(path.stem, "")
    return (
        f'<figure id="picture-{html.escape(path.stem)}">'
        f'<img src="{_data_uri(path)}" alt="{html.escape(title)}">'
        f"<figcaption><b>{html.escape(path.name)}</b>"
        f"{': ' + html.escape(caption) if caption else ''}</figcaption></figure>"
    )


def report_html(run: str | Path) -> str:
    """The report page of a run folder, as a string (see ``write_report``).

    Raises:
        FileNotFoundError: ``run`` is not a folder or has no ``config.json``.
        ValueError: ``config.json`` / ``metrics.json`` is not valid JSON, or a ``.png`` of the
            folder is not a PNG.
    """
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"no such run folder: {str(run)!r}")
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{str(run)!r} is not a vqkit run folder: no config.json")
    config = _read_json(run / "config.json")
    metrics_file = run / "metrics.json"
    metrics = _read_json(metrics_file) if metrics_file.is_file() else None
    model = config.get("model", {}) if isinstance(config, dict) else {}
    model_name = model.get("name") or model.get("class") if isinstance(model, dict) else None
    data = config.get("data", {}) if isinstance(config, dict) else {}
    data_name = data.get("spec") if isinstance(data, dict) else None
    subtitle = ", ".join(
        part
        for part in (
            f"model {model_name}" if model_name else "",
            f"data {data_name}" if data_name else "",
            f"command <code>{html.escape(config['command'])}</code>"
            if isinstance(config, dict) and isinstance(config.get("command"), str)
            else "",
        )
        if part
    )
    body = [
        f"<h1>vqkit run: {html.escape(run.resolve().name)}</h1>",
        f'<p class="sub">{subtitle}</p>' if subtitle else "",
        '<h2 id="metrics">Metrics</h2>',
    ]
    if isinstance(metrics, dict) and metrics:
        rows = "".join(
            f'<tr><th scope="row">{html.escape(str(k))}</th><td class="num">{_number(v)}</td></tr>'
            for k, v in sorted(metrics.items())
        )
        body.append(f'<table id="metrics-table"><tbody>{rows}</tbody></table>')
    else:
        body.append("<p>No metrics.json yet: the run has not been evaluated.</p>")
    pictures = _pictures(run)
    curves = [p for p in pictures if p.stem == "loss_curves"]
    others = [p for p in pictures if p.stem != "loss_curves"]
    body.append('<h2 id="pictures">Pictures</h2>')
    body.extend([_figure(p) for p in others] or ["<p>No pictures.</p>"])
    body.append('<h2 id="loss-curves">Loss curves</h2>')
    body.extend([_figure(p) for p in curves] or ["<p>No loss curves.</p>"])
    body.append('<h2 id="config">Configuration (config.json)</h2>')
    config_text = json.dumps(config, indent=2, sort_keys=True, default=str)
    body.append(
        f"<details><summary>the resolved settings of the run</summary>"
        f"<pre>{html.escape(config_text)}</pre></details>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>vqkit run {html.escape(run.resolve().name)}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def write_report(run: str | Path, *, out: str | Path | None = None) -> Path:
    """Write the run folder's report page, atomically (a temporary file, then a rename).

    Args:
        run: a run folder written by ``vqkit train``.
        out: where to write it (default ``run/report.html``).

    Returns:
        The path written.
    """
    run = Path(run)
    text = report_html(run)
    path = Path(out) if out is not None else run / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
