"""report.html: written by every run, self-contained (every <img> a PNG data URI, no external
asset), every picture of the run folder present, the metrics and config shown; `vqkit report`
and `vqkit view` answer bad input with one line."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from vqkit.cli import main
from vqkit.cli import view as view_cli
from vqkit.train.report import report_html, write_report

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """The parts of a page the checks need: img sources and alts, links, scripts, text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.text: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag in ("script", "link", "iframe") or (tag != "img" and a.get("src")):
            self.external.append(f"{tag} {a}")
        if tag in ("th", "td"):
            self._in_cell = True

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data.strip())


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_every_run_writes_a_self_contained_report(tiny_run):
    page_file = tiny_run / "report.html"
    assert page_file.is_file()
    page = _parse(page_file.read_text())
    assert page.external == []
    pictures = sorted(p.stem for p in tiny_run.glob("*.png"))
    assert {"reconstructions", "samples", "latent_maps", "loss_curves"} <= set(pictures)
    assert sorted(img["alt"].replace(" ", "_") for img in page.images) == pictures
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        data = base64.b64decode(img["src"][len(prefix) :], validate=True)
        assert data.startswith(PNG)
        stem = img["alt"].replace(" ", "_")
        assert data == (tiny_run / f"{stem}.png").read_bytes()  # the run's own picture
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("psnr", "codebook_usage", "bits_per_latent"):
        assert key in page.cells
    assert f"{metrics['psnr']:.4g}" in page.cells
    text = "".join(page.text)
    assert '"vqvae-digits"' in text  # the config, shown as JSON
    assert not list(tiny_run.glob(".report.html*"))  # no temporary left behind


def test_vqkit_report_rewrites_it_with_new_pictures(tiny_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("model", "vqvae", "prior"))
    Image.new("RGB", (10, 6), "red").save(run / "samples-seed3.png")
    assert main(["report", str(run)]) == 0
    assert f"wrote {run / 'report.html'}" in capsys.readouterr().out
    alts = [img["alt"] for img in _parse((run / "report.html").read_text()).images]
    assert "samples-seed3" in alts
    out = tmp_path / "elsewhere" / "page.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert out.read_text() == report_html(run)


def test_a_report_without_metrics_or_pictures(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {"class": "vqvae"}}))
    page = _parse(write_report(tmp_path).read_text())
    assert page.images == []
    assert "No metrics.json yet" in "".join(page.text)
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"fake\.png is not a PNG file"):
        report_html(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "{missing}"], "is not there; expected a run folder"),
        (["report", "{empty}"], "no config.json"),
        (["report", "{run}", "--out", "{run}/r.txt"], "expected an .html file name"),
        (["view", "{missing}"], "no such run or model folder"),
        (["view", "{empty}"], "no config.json"),
        (["view", "{run}", "--port", "0"], "expected a port in [1, 65535]"),
    ],
)
def test_cli_errors_are_one_line(argv, message, tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(view_cli, "viewer_installed", lambda: True)
    places = {"missing": tmp_path / "nope", "empty": tmp_path, "run": tiny_run}
    argv = [a.format(**places) for a in argv]
    with pytest.raises(SystemExit) if "--port" in argv else contextlib.nullcontext():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_vqkit_view_without_the_extra_names_the_install(tiny_run, capsys, monkeypatch):
    monkeypatch.setattr(view_cli, "viewer_installed", lambda: False)
    assert main(["view", str(tiny_run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"vqkit view: error: {view_cli.MISSING}"
    assert 'pip install "vqkit[viewer]"' in err


def test_vqkit_view_builds_the_app_and_serves_it(tiny_run, capsys, monkeypatch):
    pytest.importorskip("gradio")
    import vqkit.viewer.app as app_module

    served = {}

    def fake_launch(app, **kw):
        served.update(kw, app=app)
        kw["on_ready"]()

    monkeypatch.setattr(app_module, "launch", fake_launch)
    assert main(["view", str(tiny_run), "--port", "7999", "--data", "digits"]) == 0
    assert served["host"] == "127.0.0.1"
    assert served["port"] == 7999
    assert served["block"]
    out = capsys.readouterr().out
    assert "http://127.0.0.1:7999" in out
    assert "1797 images" in out
    assert main(["view", str(tiny_run), "--data", "toy:gaussian_ring"]) == 2
    assert "image_size applies to images" in capsys.readouterr().err
