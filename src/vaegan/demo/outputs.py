"""Result pictures for the page: display sizes, and files that are written once and never rewritten.

Why files: gradio saves a returned PIL image to ``<cache>/<hash of the bytes>/image.png`` by truncating and
rewriting that file (``gradio.processing_utils.save_pil_to_cache``), even when it already holds the same bytes.
Identical results (every visitor starts with seed 0) map to the same file, so one request rewrites the file while
another request's download is reading it, and that download ends early ("peer closed connection without sending
complete message body"). A returned *path* takes gradio's other route, ``save_file_to_cache``, which copies to a
staging name and renames into place, and leaves an existing identical copy alone. So every result here is written
to a fresh file that nothing rewrites, and handed to gradio by path.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

import torch
from PIL import Image

from ..images import make_grid, save_gif

GRID_PAD_VALUE = 0.2  # dark grey lines between the white-on-black digits


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


class ResultFiles:
    """Writes each result to a fresh file in a private folder; files older than ``max_age_s`` are removed.

    gradio copies a returned file into its own cache when the request finishes, so a result only has to outlive
    its request; ``max_age_s`` leaves a wide margin. The folder is removed with this object.
    """

    def __init__(self, max_age_s: float = 600.0, prune_every_s: float = 30.0):
        self.root = Path(tempfile.mkdtemp(prefix="vaegan-demo-"))
        self.max_age_s = max_age_s
        self.prune_every_s = prune_every_s
        self._last_prune = time.monotonic()
        self._lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def png(self, picture: Image.Image, name: str) -> str:
        """Save ``picture`` as ``NAME.png`` in a new folder; returns the path."""
        path = self._fresh(f"{name}.png")
        picture.save(path, format="PNG")
        return str(path)

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
