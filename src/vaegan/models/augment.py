"""DiffAugment (Zhao et al., 2020): differentiable augmentations for data-efficient GAN training.

The same random transformations are applied to real and generated images before every discriminator
call (in the discriminator's and the generator's passes), so the discriminator cannot memorise a small
training set while the generator still learns the un-augmented distribution: every operation below is
differentiable with respect to the images. Policies, combined with commas (``"color,translation,cutout"``):

* ``color`` — random brightness (``+U(-0.5, 0.5)``), saturation (``x U(0, 2)`` around the channel mean)
  and contrast (``x U(0.5, 1.5)`` around the image mean);
* ``translation`` — integer shifts of up to 1/8 of the image size in each direction, zero padded;
* ``cutout`` — a zeroed square of half the image size at a random position (clipped at the border).

Images are ``(B, C, H, W)`` in [-1, 1]; each image draws its own parameters, all at once (no Python loop
over the batch). Pass a seeded ``torch.Generator`` for reproducible draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"color, cutout"`` (or a list of names) -> ``("color", "cutout")``; ``None`` or ``""`` -> ``()``.

    Unknown names raise :class:`~vaegan.errors.ConfigError`.
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        policy = policy.split(",")
    if not isinstance(policy, Sequence) or not all(isinstance(name, str) for name in policy):
        raise ConfigError(f"diff_augment must be a comma-separated string such as 'translation,cutout', "
                          f"got {policy!r}.")
    names = tuple(name.strip() for name in policy if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ConfigError(f"diff_augment: unknown policy {unknown[0]!r}; choose a comma-separated subset of "
                          f"{', '.join(POLICIES)} (e.g. 'color,translation,cutout'), or leave it empty to switch "
                          "it off.")
    if len(set(names)) != len(names):
        raise ConfigError(f"diff_augment lists a policy twice: {', '.join(names)}.")
    return names


def diff_augment(images: torch.Tensor, policy: str | Sequence[str] | None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the DiffAugment ``policy`` to ``images`` ``(B, C, H, W)``; the identity when the policy is empty."""
    for name in parse_policy(policy):
        images = _OPS[name](images, generator)
    return images


def _uniform(images: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    """``U(0, 1)`` of ``shape``, drawn on the generator's device and moved to the images' device and dtype."""
    device = generator.device if generator is not None else images.device
    return torch.rand(*shape, generator=generator, device=device).to(images.device, images.dtype)


def _randint(images: torch.Tensor, generator: torch.Generator | None, low: int, high: int, size: int) -> torch.Tensor:
    device = generator.device if generator is not None else images.device
    return torch.randint(low, high, (size,), generator=generator, device=device).to(images.device)


def color(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, saturation and contrast per image."""
    batch = len(images)
    images = images + (_uniform(images, generator, batch, 1, 1, 1) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(images, generator, batch, 1, 1, 1) * 2) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(images, generator, batch, 1, 1, 1) + 0.5) + mean


def translation(images: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size in each direction; zeros move in."""
    height, width = images.shape[-2:]
    return shift(images, int(height * ratio + 0.5), int(width * ratio + 0.5), generator)


def shift(images: torch.Tensor, max_dy: int, max_dx: int | None = None,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in ``[-max_dy, max_dy]`` x ``[-max_dx, max_dx]``
    (``max_dx`` defaults to ``max_dy``); zeros move in."""
    batch, _, height, width = images.shape
    max_dx = max_dy if max_dx is None else max_dx
    dy = _randint(images, generator, -max_dy, max_dy + 1, batch)
    dx = _randint(images, generator, -max_dx, max_dx + 1, batch)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx) of the image padded by one zero on each side.
    rows = (torch.arange(height, device=images.device)[None, :] - dy[:, None] + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=images.device)[None, :] - dx[:, None] + 1).clamp(0, width + 1)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indexing (B, H, W) on dims 0, 2, 3 of (B, C, H+2, W+2) puts the channels last: (B, H, W, C).
    return padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size per image, centred anywhere in the image."""
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = _randint(images, generator, 0, height, batch) - size_y // 2
    left = _randint(images, generator, 0, width, batch) - size_x // 2
    rows = torch.arange(height, device=images.device)[None, :] - top[:, None]  # (B, H): row offset in the square
    cols = torch.arange(width, device=images.device)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size_y))[:, :, None] & ((cols >= 0) & (cols < size_x))[:, None, :]
    return images * (~inside)[:, None].to(images.dtype)


_OPS = {"color": color, "translation": translation, "cutout": cutout}
