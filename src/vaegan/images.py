"""Image tensors <-> PIL: single images, grids and animated GIFs.

Tensors are ``(C, H, W)`` (one image) or ``(N, C, H, W)`` (a batch) with values in [0, 1]; one channel
becomes a grayscale ("L") picture, three an "RGB" one (two: "LA", four: "RGBA").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .files import write_file

__all__ = ["make_grid", "save_gif", "to_pil"]

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _as_batch(images: torch.Tensor | np.ndarray | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    elif not isinstance(images, torch.Tensor):
        images = list(images)
        if not images:
            raise ValueError("expected at least one image, got an empty sequence.")
        images = torch.stack([torch.as_tensor(image) for image in images])
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}.")
    if images.shape[1] not in _MODES:
        raise ValueError(f"cannot show images with {images.shape[1]} channels as a picture; expected 1 to 4 "
                         f"channels in (N, C, H, W) order, got shape {tuple(images.shape)}.")
    return images.detach().float().cpu()


def to_pil(image: torch.Tensor) -> Image.Image:
    """One image ``(C, H, W)`` in [0, 1] -> PIL ("L" for one channel, "RGB" for three)."""
    if image.ndim != 3 or image.shape[0] not in _MODES:
        raise ValueError(f"expected one image of shape (C, H, W) with 1 to 4 channels, got {tuple(image.shape)}.")
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))


def make_grid(images: torch.Tensor | np.ndarray | Sequence[torch.Tensor], nrow: int | None = None,
              padding: int = 2, pad_value: float = 0.0, scale: int = 1) -> Image.Image:
    """Tile images ``(N, C, H, W)`` in [0, 1] into one PIL image with ``nrow`` images per row.

    ``nrow`` defaults to a square layout. The result is ``nrow * (W + padding) + padding`` pixels wide and
    ``rows * (H + padding) + padding`` high (like ``torchvision.utils.make_grid``), times ``scale`` (an
    integer nearest-neighbour upscaling, handy for 28x28 digits).
    """
    batch = _as_batch(images)
    n, channels, height, width = batch.shape
    nrow = min(nrow or math.ceil(math.sqrt(n)), n)
    if nrow < 1 or padding < 0 or scale < 1:
        raise ValueError(f"nrow and scale must be >= 1 and padding >= 0, got nrow={nrow}, padding={padding}, "
                         f"scale={scale}.")
    rows = math.ceil(n / nrow)
    grid = torch.full((channels, rows * (height + padding) + padding, nrow * (width + padding) + padding),
                      float(pad_value))
    for index, image in enumerate(batch):
        top, left = padding + (index // nrow) * (height + padding), padding + (index % nrow) * (width + padding)
        grid[:, top:top + height, left:left + width] = image
    picture = to_pil(grid)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return picture


def save_gif(frames: torch.Tensor | Sequence[torch.Tensor] | Sequence[Image.Image], path: str | Path,
             duration_ms: int = 120, scale: int = 4, bounce: bool = True) -> Path:
    """Write frames ``(T, C, H, W)`` in [0, 1] (or PIL images) as a looping animated GIF.

    With ``bounce`` (default) the animation plays forward then back. Tensor frames are upscaled ``scale``
    times (nearest neighbour).
    """
    if isinstance(frames, Sequence) and frames and all(isinstance(f, Image.Image) for f in frames):
        pictures = list(frames)
    else:
        batch = _as_batch(frames)
        pictures = [to_pil(frame).resize((frame.shape[-1] * scale, frame.shape[-2] * scale), Image.NEAREST)
                    for frame in batch]
    sequence = pictures + pictures[-2:0:-1] if bounce else pictures
    return write_file(path, lambda staged: sequence[0].save(staged, format="GIF", save_all=True,
                                                            append_images=sequence[1:], duration=duration_ms,
                                                            loop=0))
