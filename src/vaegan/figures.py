"""Sample grids and interpolation strips written by the trainer and the CLI.

Grids use ``model.sample`` (every family has it); interpolations need the ``latent_space`` capability.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .files import write_file
from .images import make_grid, save_gif
from .models.base import GenerativeModel
from .models.conditioning import ClassLabels


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def save_sample_grid(model: GenerativeModel, path: str | Path, num_samples: int = 64, seed: int = 0,
                     temperature: float | None = None, nrow: int | None = None,
                     class_labels: ClassLabels | None = None) -> Path:
    """Sample ``num_samples`` images with a fixed seed (and ``class_labels``; ``temperature`` default: the model's
    ``default_temperature``) and write them as one PNG grid."""
    images = model.sample(num_samples, generator=seeded(seed), temperature=model.resolve_temperature(temperature),
                          class_labels=class_labels)
    return _save(make_grid(images.float().cpu(), nrow=nrow), path)


def class_grid_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """Labels ``0 .. 0, 1 .. 1, ...`` (``per_class`` each): a grid with ``nrow=per_class`` has one class a row."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def class_grid(model: GenerativeModel, per_class: int = 8, seed: int = 0,
               temperature: float | None = None) -> torch.Tensor:
    """``per_class`` samples of every class of a class-conditional model, class-major ``(K * per_class, C, H, W)``."""
    if model.num_classes is None:
        raise ValueError(f"This {type(model).__name__} is unconditional (num_classes is None); a class grid needs a "
                         "class-conditional model.")
    labels = class_grid_labels(model.num_classes, per_class)
    return model.sample(len(labels), generator=seeded(seed), temperature=model.resolve_temperature(temperature),
                        class_labels=labels)


def save_class_grid(model: GenerativeModel, path: str | Path, per_class: int = 8, seed: int = 0,
                    temperature: float | None = None) -> Path:
    """Write :func:`class_grid` as one PNG: one row per class, ``per_class`` samples a row."""
    images = class_grid(model, per_class, seed, temperature)
    return _save(make_grid(images.float().cpu(), nrow=per_class), path)


def interpolation_frames(model: GenerativeModel, steps: int = 10, seed: int = 0, mode: str = "slerp",
                         start: torch.Tensor | None = None, end: torch.Tensor | None = None,
                         class_labels: ClassLabels | None = None) -> torch.Tensor:
    """Images between ``start`` and ``end`` (images or latents); two prior draws from ``seed`` when omitted.

    A class-conditional model without ``class_labels`` draws one label for the whole path from ``seed``. Only a
    model with a latent space (``model.has_latent_space``) interpolates; others raise NotImplementedError.
    """
    if not model.has_latent_space:
        raise NotImplementedError(f"{type(model).__name__} has no latent space (decode_latents), so it has no "
                                  "interpolation; draw samples instead (vaegan sample).")
    generator = seeded(seed)
    if start is None or end is None:
        start, end = model.prior_latents(2, generator=generator)
    if class_labels is None and model.num_classes is not None:
        class_labels = int(model.prepare_class_labels(None, 1, generator, draw_missing=True)[0])
    return model.interpolate(start, end, steps=steps, mode=mode, class_labels=class_labels)


def save_interpolation(model: GenerativeModel, path: str | Path, steps: int = 10, seed: int = 0,
                       mode: str = "slerp", start: torch.Tensor | None = None, end: torch.Tensor | None = None,
                       gif: str | Path | None = None, class_labels: ClassLabels | None = None) -> Path:
    """Write the interpolation as one PNG strip (and optionally an animated GIF)."""
    frames = interpolation_frames(model, steps, seed, mode, start, end, class_labels).float().cpu()
    if gif is not None:
        Path(gif).parent.mkdir(parents=True, exist_ok=True)
        save_gif(frames, gif)
    return _save(make_grid(frames, nrow=len(frames)), path)


def _save(image, path: str | Path) -> Path:
    return write_file(path, image.save)  # never a half-written picture (a full disk)
