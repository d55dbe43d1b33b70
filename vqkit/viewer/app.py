"""The Gradio app of ``vqkit view``: the pictures and controls over ``vqkit.viewer.state``.

Tabs:

- **Image**: pick a dataset image (previous / next / random / by index) or upload one; input |
  reconstruction | absolute difference | code indices side by side with PSNR and SSIM; the code
  grid with each cell's code written in it (hover a cell for its code and that code's usage);
  click the code map to paint the chosen code (a brush of n × n cells) and see the decoded image
  update; save the panel as PNG.
- **Codebook**: the usage histogram over the dataset, the code atlas (each code filling the grid,
  decoded) and, for one code, the dataset patches that use it most.
- **Prior**: samples with a temperature and a seed, and completions of the current image's codes
  (the top rows kept, the rest sampled).

Gradio is imported here only, lazily (``pip install "vqkit[viewer]"``); analytics are switched off
before it is imported and nothing is fetched from the network.
"""

from __future__ import annotations

import html
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vqkit.viewer import pictures
from vqkit.viewer.pictures import code_grid_svg, save_png
from vqkit.viewer.state import Analysis, ViewerState, edit_codes

__all__ = ["build_app", "launch", "to_array"]


def _gradio() -> Any:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gradio as gr
    except ImportError as exc:
        raise ImportError(
            'the viewer needs the optional package gradio: pip install "vqkit[viewer]"',
            name="gradio",
        ) from exc
    return gr


def to_array(image: torch.Tensor, scale: int = 1) -> Any:
    """An image ``(C, H, W)`` in [0, 1] as a uint8 ``(H·s, W·s, 3)`` numpy array (grey → RGB)."""
    import numpy as np

    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if scale > 1:
        image = image.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _need(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        raise ValueError("pick a dataset image or upload one first")
    return record


def _whole(value: Any, name: str) -> int:
    """A number box's value as an int, or a message naming the box."""
    if value is None or float(value) != int(float(value)):
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    return int(float(value))


def _pil_array(picture: Any) -> Any:
    import numpy as np

    return np.asarray(picture.convert("RGB"))


class _Views:
    """The app's callbacks: each takes the session's image record and returns what to show."""

    def __init__(self, state: ViewerState, out_dir: Path) -> None:
        self.state = state
        self.out_dir = out_dir
        self.scale = state.display_scale()

    def record(self, x: torch.Tensor, index: int | None) -> dict[str, Any]:
        return {"index": index, "x": x, "codes": self.state.encode(x)}

    def show(self, record: dict[str, Any]) -> tuple[Any, ...]:
        """The four panels, the figures line and the hoverable code grid of a record."""
        s = self.state
        analysis = s.analyse(record["x"], record["codes"])
        usage = s.usage() if s.data is not None else None
        where = f"image {record['index']} of {len(s)}" if record["index"] is not None else "upload"
        cells = "cell" if analysis.edited == 1 else "cells"
        edited = f" · **{analysis.edited}** {cells} edited" if analysis.edited else ""
        figures = (
            f"{where} · PSNR **{analysis.psnr:.2f} dB** · SSIM **{analysis.ssim:.3f}**{edited}"
        )
        cell = max(18, min(48, 360 // max(s.latent_size)))
        svg = code_grid_svg(analysis.indices, s.codebook_size, usage, cell=cell)
        return (
            to_array(analysis.input, self.scale),
            to_array(analysis.reconstruction, self.scale),
            to_array(analysis.difference, self.scale),
            to_array(pictures.code_map(s, analysis.indices, self.scale)),
            figures,
            f'<div id="code-grid-box">{svg}</div>',
        )

    def dataset_image(self, index: Any) -> tuple[Any, ...]:
        n = len(self.state)
        if n == 0:
            raise ValueError("no dataset: upload an image")
        i = _whole(index, "image index") % n
        record = self.record(self.state.image(i), i)
        return (record, i, *self.show(record))

    def step(self, record: dict[str, Any], delta: int) -> tuple[Any, ...]:
        current = record["index"] if record and record["index"] is not None else -delta
        return self.dataset_image(current + delta)

    def random_image(self) -> tuple[Any, ...]:
        return self.dataset_image(random.randrange(len(self.state)))

    def upload(self, picture: Any, record: dict[str, Any]) -> tuple[Any, ...]:
        index = (record or {}).get("index") or 0
        if picture is None:
            return (record, index, *self.show(_need(record)))
        new = self.record(self.state.prepare_upload(picture), None)
        return (new, index, *self.show(new))

    def paint(
        self, record: dict[str, Any], code: Any, brush: Any, xy: list[float]
    ) -> tuple[Any, ...]:
        record = _need(record)
        s = self.state
        _, height, width = s.image_shape
        row, col = s.cell_at(float(xy[0]), float(xy[1]), (height * self.scale, width * self.scale))
        size = max(1, int(brush))
        top, left = max(0, row - (size - 1) // 2), max(0, col - (size - 1) // 2)
        paint = _whole(code, "code to paint")
        codes = edit_codes(
            record["codes"], top, left, paint, s.codebook_size, height=size, width=size
        )
        new = {**record, "codes": codes}
        return (new, *self.show(new))

    def reset(self, record: dict[str, Any]) -> tuple[Any, ...]:
        record = _need(record)
        new = {**record, "codes": self.state.encode(record["x"])}
        return (new, *self.show(new))

    def save(self, record: dict[str, Any]) -> str:
        record = _need(record)
        analysis: Analysis = self.state.analyse(record["x"], record["codes"])
        where = f"image{record['index']}" if record["index"] is not None else "upload"
        edited = "-edited" if analysis.edited else ""
        path = self.out_dir / f"{self.state.name}-{where}{edited}.png"
        return str(save_png(pictures.panel(self.state, analysis), path))

    def patches(self, code: Any) -> tuple[Any, Any]:
        s = self.state
        k = _whole(code, "code")
        decoded = pictures.grid_picture(
            s, s.code_images([k]), title=f"code {k} filling the grid", nrow=1
        )
        found = s.top_patches(k, 8)
        if not found:
            return _pil_array(decoded), None
        patches = torch.stack([_pad_to(p["patch"], found) for p in found])
        where = ", ".join(f"#{p['image']}" for p in found)
        title = f"code {k}: its cell and neighbours in images {where}"
        picture = pictures.grid_picture(s, patches, title=title, target=72)
        return _pil_array(decoded), _pil_array(picture)

    def samples(self, temperature: Any, seed: Any, num: Any) -> Any:
        seed = _whole(seed, "seed")
        _, images = self.state.sample(int(num), temperature=float(temperature), seed=seed)
        title = f"prior samples, temperature {float(temperature):g}, seed {seed}"
        return _pil_array(pictures.grid_picture(self.state, images, title=title))

    def completions(self, record: dict[str, Any], keep: Any, temperature: Any, seed: Any) -> Any:
        record = _need(record)
        s = self.state
        _, images = s.complete(
            record["codes"],
            7,
            keep_rows=int(keep),
            temperature=float(temperature),
            seed=_whole(seed, "seed"),
        )
        kept = s.decode(record["codes"])
        title = f"the image's codes (left), then 7 completions keeping its top {int(keep)} rows"
        return _pil_array(pictures.grid_picture(s, torch.cat([kept[None], images]), title=title))


def _pad_to(patch: torch.Tensor, found: list[dict[str, Any]]) -> torch.Tensor:
    """``patch`` padded (white) to the largest patch size in ``found`` (border cells are cut)."""
    height = max(p["patch"].shape[1] for p in found)
    width = max(p["patch"].shape[2] for p in found)
    out = torch.ones(patch.shape[0], height, width)
    out[:, : patch.shape[1], : patch.shape[2]] = patch
    return out


def build_app(state: ViewerState, *, out_dir: str | Path | None = None) -> Any:
    """The Gradio ``Blocks`` app of ``state``.

    Args:
        state: the model and dataset to show.
        out_dir: where "save panel as PNG" writes (default: a new temporary folder).
    """
    gr = _gradio()
    folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="vqkit-view-"))
    views = _Views(state, folder)
    k = state.codebook_size
    h, w = state.latent_size
    has_data = len(state) > 0
    has_prior = state.model.prior is not None
    first = views.record(state.image(0), 0) if has_data else None
    shown = views.show(first) if first is not None else (None,) * 6
    title = f"vqkit view: {state.name}"
    info = state.describe()
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        record = gr.State(first)
        gr.Markdown(
            f"## {title}\n{info['class']} · K = {k} codes · latent grid {h}×{w} · images "
            f"{'×'.join(str(v) for v in state.image_shape)} · data {info['dataset']} "
            f"({len(state)} images) · prior {info['prior']}"
        )
        with gr.Tab("Image"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=4):
                    with gr.Row():
                        index = gr.Number(
                            value=0,
                            precision=0,
                            label="image index",
                            minimum=0,
                            elem_id="image-index",
                        )
                        go = gr.Button("show", elem_id="go-button")
                    with gr.Row():
                        prev = gr.Button("◀ previous", elem_id="prev-button")
                        nxt = gr.Button("next ▶", elem_id="next-button")
                        rnd = gr.Button("random", elem_id="random-button")
                upload = gr.Image(
                    type="pil",
                    label="or upload an image (resized to the model's size)",
                    sources=["upload"],
                    height=150,
                    scale=1,
                    elem_id="upload",
                )
            panels = []
            with gr.Row():
                for value, label, elem in zip(
                    shown[:4],
                    [
                        "input",
                        "reconstruction (decoded codes)",
                        "|input − reconstruction|",
                        "code indices: click a cell to paint",
                    ],
                    ["panel-input", "panel-reconstruction", "panel-difference", "panel-codes"],
                    strict=True,
                ):
                    with gr.Column(min_width=160):
                        gr.HTML(f"<b>{html.escape(label)}</b>")
                        panels.append(
                            gr.Image(
                                value=value,
                                show_label=False,
                                interactive=False,
                                elem_id=elem,
                                format="png",
                            )
                        )
            figures = gr.Markdown(shown[4], elem_id="figures")
            with gr.Row():
                grid = gr.HTML(shown[5], label="codes (hover a cell)", elem_id="code-grid-html")
                with gr.Column():
                    code = gr.Number(
                        value=0,
                        precision=0,
                        minimum=0,
                        maximum=k - 1,
                        label=f"code to paint (0 to {k - 1})",
                        elem_id="paint-code",
                    )
                    brush = gr.Slider(
                        1, max(h, w), value=1, step=1, label="brush (cells)", elem_id="brush"
                    )
                    reset = gr.Button("undo all edits", elem_id="reset-button")
                    save = gr.Button("save panel as PNG", elem_id="save-button")
                    saved = gr.File(label="saved panel", height=90, elem_id="saved-file")
        outputs = [record, index, *panels, figures, grid]
        go.click(views.dataset_image, [index], outputs)
        index.submit(views.dataset_image, [index], outputs)
        prev.click(lambda r: views.step(r, -1), [record], outputs)
        nxt.click(lambda r: views.step(r, 1), [record], outputs)
        rnd.click(views.random_image, [], outputs)
        upload.upload(views.upload, [upload, record], outputs)

        def on_select(r: dict[str, Any], c: Any, b: Any, evt: Any) -> tuple[Any, ...]:
            return views.paint(r, c, b, list(evt.index))

        # Gradio passes the click's coordinates to a parameter annotated SelectData; the
        # annotation is set on the object because this module's annotations are strings.
        on_select.__annotations__["evt"] = gr.SelectData
        panels[3].select(on_select, [record, code, brush], [record, *panels, figures, grid])
        reset.click(views.reset, [record], [record, *panels, figures, grid])
        save.click(views.save, [record], [saved])

        with gr.Tab("Codebook"):
            if has_data:
                gr.Image(
                    _pil_array(pictures.usage_histogram(state)),
                    label="codebook usage",
                    interactive=False,
                    elem_id="usage-histogram",
                )
            gr.Image(
                _pil_array(pictures.atlas_picture(state)),
                label="code atlas",
                interactive=False,
                elem_id="atlas",
            )
            if has_data:
                with gr.Row():
                    atlas_code = gr.Number(
                        value=int(state.usage().argmax()),  # the most used code
                        precision=0,
                        minimum=0,
                        maximum=k - 1,
                        label="code",
                        scale=1,
                    )
                    show_code = gr.Button("show its patches", elem_id="patches-button")
                with gr.Row():
                    decoded = gr.Image(
                        label="the code decoded", interactive=False, elem_id="decoded"
                    )
                    patches = gr.Image(show_label=False, interactive=False, elem_id="patches")
                show_code.click(views.patches, [atlas_code], [decoded, patches])
        with gr.Tab("Prior"):
            if not has_prior:
                gr.Markdown(f"{info['class']} was trained without a prior: nothing to sample.")
            else:
                with gr.Row():
                    temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature")
                    seed = gr.Number(value=0, precision=0, minimum=0, label="seed")
                    num = gr.Slider(1, 64, value=16, step=1, label="samples")
                    sample = gr.Button("sample", elem_id="sample-button")
                drawn = gr.Image(label="samples", interactive=False, elem_id="samples")
                sample.click(views.samples, [temperature, seed, num], [drawn])
                with gr.Row():
                    keep = gr.Slider(0, h, value=h // 2, step=1, label="rows of codes kept")
                    complete = gr.Button("complete the current image", elem_id="complete-button")
                completed = gr.Image(label="completions", interactive=False, elem_id="completed")
                complete.click(views.completions, [record, keep, temperature, seed], [completed])
    return app


def launch(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (no share link, no browser, no analytics).

    ``on_ready`` is called once the server listens (a port in use raises ``OSError`` before).
    With ``block=False`` it returns at once (close the server with ``app.close()``); otherwise
    it serves until Ctrl-C.
    """
    import inspect

    _gradio()
    options: dict[str, Any] = {}
    if "_frontend" in inspect.signature(app.launch).parameters:
        # Gradio's own reachability check gives up after one 3 s request, which a loaded machine
        # can exceed; the patient check below replaces it.
        options["_frontend"] = False
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        **options,
    )
    _wait_until_served(app, timeout=120.0)
    if on_ready is not None:
        on_ready()
    if block:
        app.block_thread()


def _wait_until_served(app: Any, *, timeout: float) -> None:
    """Return once the app's page answers on its local URL; ``OSError`` after ``timeout``."""
    import time
    import urllib.request

    url = app.local_url
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + timeout
    while True:
        try:
            with direct.open(url, timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            app.close()
            raise OSError(f"the viewer started but {url} did not answer within {timeout:g} s")
        time.sleep(0.25)
