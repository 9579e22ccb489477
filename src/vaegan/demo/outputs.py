"""Result pictures for the page: display sizes, pictures sent inline, and files that are written once and never
rewritten.

Small pictures (every PNG of the 28x28 models) travel inside the result message as a data URL
(:class:`InlinePNG`, shown by :func:`inline_image`): the page has the picture as soon as the result arrives,
without a second request to download it, and gradio's file cache is not involved. Under a crowd of Sample
requests this saves about 30% of the server's CPU per request, and more of its latency (benchmarks/README.md).

Why files for the rest (GIFs, large pictures): gradio saves a returned PIL image to
``<cache>/<hash of the bytes>/image.png`` by truncating and rewriting that file
(``gradio.processing_utils.save_pil_to_cache``), even when it already holds the same bytes. Identical results
(every visitor starts with seed 0) map to the same file, so one request rewrites the file while another request's
download is reading it, and that download ends early ("peer closed connection without sending complete message
body"). A returned *path* takes gradio's other route, ``save_file_to_cache``, which copies to a staging name and
renames into place, and leaves an existing identical copy alone. So every file result here is written to a fresh
file that nothing rewrites, and handed to gradio by path.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from gradio.data_classes import ImageData
from PIL import Image

from ..images import make_grid, save_gif

GRID_PAD_VALUE = 0.2  # dark grey lines between the white-on-black digits
INLINE_LIMIT = 256 * 1024  # PNG bytes up to which a picture is sent inline rather than as a file
PNG_DATA_URL = "data:image/png;base64,"


def display_scale(width: int, target: int = 360, limit: int = 1400) -> int:
    """Integer factor that brings a picture ``width`` pixels wide near ``target`` without passing ``limit``."""
    return max(1, min(8, math.ceil(target / max(1, width)), limit // max(1, width)))


def enlarged(images: torch.Tensor, target: int) -> Image.Image:
    """One image ``(1, C, H, W)`` (or a tile of several, no padding) scaled up with crisp pixels to ~``target``."""
    return make_grid(images, nrow=len(images), padding=0, scale=display_scale(images.shape[-1] * len(images),
                                                                                target=target))


def sample_grid(images: torch.Tensor, nrow: int | None = None) -> Image.Image:
    """Images at their own resolution with thin grey lines between them (the page scales the grid up)."""
    return make_grid(images, nrow=nrow or math.ceil(math.sqrt(len(images))), pad_value=GRID_PAD_VALUE)


def encode_png(picture: Image.Image) -> bytes:
    """``picture`` encoded as PNG bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class InlinePNG:
    """An encoded PNG result that an :func:`inline_image` sends inside the result message."""

    data: bytes
    filename: str

    def data_url(self) -> str:
        return PNG_DATA_URL + base64.b64encode(self.data).decode("ascii")


def inline_image(value: InlinePNG | str | None = None, **kwargs: Any) -> gr.Image:
    """A ``gr.Image`` output that also shows :class:`InlinePNG` results (and an initial ``value``), as data URLs.

    API clients get such a picture in the result's ``url`` (see :func:`open_picture`); paths and PIL images are
    handled by ``gr.Image`` as usual. The conversion is set on the instance rather than in a ``gr.Image``
    subclass: gradio writes a ``.pyi`` stub next to the module of every component subclass when it is imported.
    """
    image = gr.Image(None if isinstance(value, InlinePNG) else value, **kwargs)
    plain = image.postprocess

    def postprocess(result: Any) -> ImageData | None:
        if isinstance(result, InlinePNG):
            return ImageData(url=result.data_url(), orig_name=result.filename, mime_type="image/png",
                             size=len(result.data))
        return plain(result)

    image.postprocess = postprocess
    if isinstance(value, InlinePNG):
        image.value = postprocess(value).model_dump()
    return image


def open_picture(value: Any) -> Image.Image:
    """A picture result of the demo as a PIL image: from its API (``gradio_client`` returns a file path, or a
    ``FileData`` dict with an inline ``url``, ``data:image/png;base64,...``), or from an endpoint called in
    Python (an :class:`InlinePNG` or a path)."""
    if isinstance(value, InlinePNG):
        return Image.open(io.BytesIO(value.data))
    if isinstance(value, dict):
        if isinstance(value.get("path"), str):
            value = value["path"]
        elif isinstance(value.get("url"), str) and value["url"].startswith(PNG_DATA_URL):
            try:
                return Image.open(io.BytesIO(base64.b64decode(value["url"][len(PNG_DATA_URL):], validate=True)))
            except binascii.Error as err:
                raise ValueError(f"the picture's data URL is not valid base64: {err}") from None
        else:
            raise ValueError(f"not a picture result (no path and no PNG data URL): keys {sorted(value)}")
    if isinstance(value, str | os.PathLike):
        return Image.open(value)
    raise TypeError(f"not a picture result: {type(value).__name__}")


class ResultFiles:
    """Makes results: small PNGs inline (:class:`InlinePNG`), anything else a fresh file in a private folder;
    files older than ``max_age_s`` are removed.

    gradio copies a returned file into its own cache when the request finishes, so a result only has to outlive
    its request; ``max_age_s`` leaves a wide margin. The folder is removed with this object.
    """

    def __init__(self, max_age_s: float = 600.0, prune_every_s: float = 30.0, inline_limit: int = INLINE_LIMIT):
        self.root = Path(tempfile.mkdtemp(prefix="vaegan-demo-"))
        self.inline_limit = inline_limit
        self.max_age_s = max_age_s
        self.prune_every_s = prune_every_s
        self._last_prune = time.monotonic()
        self._lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def png(self, picture: Image.Image, name: str) -> InlinePNG | str:
        """``picture`` as the result ``NAME.png``: see :meth:`png_bytes`."""
        return self.png_bytes(encode_png(picture), f"{name}.png")

    def png_bytes(self, data: bytes, filename: str) -> InlinePNG | str:
        """An encoded PNG as a result: inline up to ``inline_limit`` bytes, else the path of a fresh file."""
        if len(data) <= self.inline_limit:
            return InlinePNG(data, filename)
        return self.write_bytes(data, filename)

    def write_bytes(self, data: bytes, filename: str) -> str:
        """Write ``data`` (an encoded picture) as ``filename`` in a new folder; returns the path."""
        path = self._fresh(filename)
        path.write_bytes(data)
        return str(path)

    def gif(self, frames: torch.Tensor, name: str, duration_ms: int, scale: int) -> str:
        """Write ``frames`` as an animated ``NAME.gif`` (played forth and back) in a new folder; returns the path."""
        return str(save_gif(frames, self._fresh(f"{name}.gif"), duration_ms=duration_ms, scale=scale))

    def _fresh(self, name: str) -> Path:
        self._prune()
        return Path(tempfile.mkdtemp(dir=self.root)) / name

    def _prune(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune < self.prune_every_s:
                return
            self._last_prune = now
        cutoff = time.time() - self.max_age_s
        for folder in self.root.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:  # removed meanwhile
                pass
