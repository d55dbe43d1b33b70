"""End to end in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The viewer is served on localhost for a small model saved to tmp_path; the test moves to the next
image, paints one code cell and checks that the reconstruction the page shows changes to exactly
``decode_indices`` of the edited grid; then it opens a run's ``report.html``: no console error,
every picture loaded. Screenshots go to tmp_path, and to ``$VQKIT_SCREENSHOT_DIR`` when set.

Skipped (with the reason) when gradio, playwright or chromium are missing, unless
``VQKIT_REQUIRE_BROWSER=1`` (CI sets it), which turns each skip into a failure.
``VQKIT_VIEWER_SOURCE`` (a run folder) shows that run instead of the random model (the docs'
screenshots are taken so).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CHROMIUM = os.environ.get("VQKIT_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("VQKIT_REQUIRE_BROWSER") == "1"


def _missing() -> str | None:
    for module in ("gradio", "playwright", "matplotlib"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def _require() -> None:
    reason = _missing()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"VQKIT_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _screenshot(page, tmp_path: Path, name: str, **options) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), **options)
    folder = os.environ.get("VQKIT_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / name)
    return path


@pytest.fixture(scope="module")
def browser():
    _require()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    _require()
    from viewer_helpers import tiny_vqvae

    from vqkit.viewer import load_viewer_state
    from vqkit.viewer.app import build_app, launch

    torch.set_num_threads(1)
    source = os.environ.get("VQKIT_VIEWER_SOURCE")
    if source:
        state = load_viewer_state(source)
    else:
        folder = tmp_path_factory.mktemp("viewer-model") / "model"
        tiny_vqvae().save_pretrained(str(folder))
        state = load_viewer_state(folder, "digits")
    app = build_app(state, out_dir=tmp_path_factory.mktemp("viewer-saved"))
    port = _free_port()
    launch(app, host="127.0.0.1", port=port, block=False)
    yield state, f"http://127.0.0.1:{port}/"
    app.close()


def _image_bytes(page, selector: str) -> bytes:
    src = page.eval_on_selector(selector, "img => img.src")
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    response = page.request.get(src)
    assert response.ok, f"{src}: HTTP {response.status}"
    return response.body()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_next_image_edit_a_code_and_see_the_reconstruction_change(browser, served, tmp_path):
    from vqkit.viewer.app import to_array

    state, url = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []  # the app must never reach the network
    local = (url.rstrip("/"), "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    page.goto(url)
    recon = "#panel-reconstruction img"
    page.wait_for_selector(recon, timeout=30000)
    page.click("#next-button")
    page.wait_for_function(
        "() => document.querySelector('#figures').innerText.includes('image 1 of')",
        timeout=30000,
    )
    page.wait_for_timeout(300)  # the image elements update with the text
    before = _image_bytes(page, recon)
    scale = state.display_scale()
    codes = state.encode(state.image(1))
    assert np.array_equal(_pixels(before), to_array(state.decode(codes), scale))
    new_code = (int(codes[0, 0]) + 1) % state.codebook_size
    page.fill("#paint-code input", str(new_code))
    page.press("#paint-code input", "Tab")
    page.wait_for_timeout(300)
    box = page.locator("#panel-codes img").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 3, box["y"] + 3)  # the top-left cell
    page.wait_for_function(
        "() => document.querySelector('#figures').innerText.includes('1 cell edited')",
        timeout=30000,
    )
    page.wait_for_timeout(300)
    after = _image_bytes(page, recon)
    assert after != before
    edited = codes.clone()
    edited[0, 0] = new_code
    assert np.array_equal(_pixels(after), to_array(state.decode(edited), scale))
    title = page.eval_on_selector(
        "#code-grid g[data-row='0'][data-col='0'] title", "t => t.textContent"
    )
    assert title.startswith(f"row 0, column 0: code {new_code} (used ")
    _screenshot(page, tmp_path, "viewer.png", full_page=True)
    assert outside == []
    page.get_by_role("tab", name="Codebook").click()
    page.wait_for_selector("#atlas img", timeout=30000)
    page.click("#patches-button")
    page.wait_for_selector("#patches img", timeout=30000)
    page.wait_for_timeout(300)
    _screenshot(page, tmp_path, "viewer-codebook.png", full_page=True)
    if state.model.prior is not None:
        page.get_by_role("tab", name="Prior").click()
        page.click("#sample-button")
        page.wait_for_selector("#samples img", timeout=30000)
        page.click("#complete-button")
        page.wait_for_selector("#completed img", timeout=30000)
        page.wait_for_timeout(300)
        _screenshot(page, tmp_path, "viewer-prior.png", full_page=True)
    page.close()


def test_report_html_opens_without_errors_and_shows_every_picture(browser, request, tmp_path):
    source = os.environ.get("VQKIT_VIEWER_SOURCE")
    tiny_run = Path(source) if source else request.getfixturevalue("tiny_run")
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto((tiny_run / "report.html").as_uri())
    page.wait_for_load_state("load")
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
    pictures = list(tiny_run.glob("*.png"))
    assert len(widths) == len(pictures) >= 4
    assert all(isinstance(w, int) and w > 0 for w in widths), widths
    assert errors == []
    _screenshot(page, tmp_path, "report.png", full_page=True)
    page.close()
