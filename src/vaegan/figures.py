"""Sample grids and interpolation strips written by the trainer and the CLI."""

from __future__ import annotations

from pathlib import Path

import torch

from .images import make_grid, save_gif
from .models.base import GenerativeModel


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def save_sample_grid(model: GenerativeModel, path: str | Path, num_samples: int = 64, seed: int = 0,
                     temperature: float = 1.0, nrow: int | None = None) -> Path:
    """Sample ``num_samples`` images with a fixed seed and write them as one PNG grid."""
    images = model.sample(num_samples, generator=seeded(seed), temperature=temperature)
    return _save(make_grid(images.float().cpu(), nrow=nrow), path)


def interpolation_frames(model: GenerativeModel, steps: int = 10, seed: int = 0, mode: str = "slerp",
                         start: torch.Tensor | None = None, end: torch.Tensor | None = None) -> torch.Tensor:
    """Images between ``start`` and ``end`` (images or latents); two prior draws from ``seed`` when omitted."""
    if start is None or end is None:
        start, end = model.prior_latents(2, generator=seeded(seed))
    return model.interpolate(start, end, steps=steps, mode=mode)


def save_interpolation(model: GenerativeModel, path: str | Path, steps: int = 10, seed: int = 0,
                       mode: str = "slerp", start: torch.Tensor | None = None, end: torch.Tensor | None = None,
                       gif: str | Path | None = None) -> Path:
    """Write the interpolation as one PNG strip (and optionally an animated GIF)."""
    frames = interpolation_frames(model, steps, seed, mode, start, end).float().cpu()
    if gif is not None:
        Path(gif).parent.mkdir(parents=True, exist_ok=True)
        save_gif(frames, gif)
    return _save(make_grid(frames, nrow=len(frames)), path)


def _save(image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
