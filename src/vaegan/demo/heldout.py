"""Held-out digits for the Interpolate, Explore and Complete tabs, adapted (and cached) for each model's image
shape."""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger("vaegan.demo")


class HeldOut:
    """Held-out images and labels from a ``vaegan.data`` source name, a dataset of ``(image, label)``, or None."""

    def __init__(self, source: Any):
        self.source = source
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._base: tuple[torch.Tensor, torch.Tensor] | None = None
        self._error: str | None = None if source is not None else "no held-out data was configured"
        self._lock = threading.Lock()

    def get(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, C, H, W) in [0, 1], labels (N,))``; ``ValueError`` when there is no held-out data."""
        with self._lock:
            if shape not in self._cache and self._error is None:
                try:
                    self._cache[shape] = self._load(shape)
                except Exception as err:  # missing optional dependency, unreadable source ...
                    log.warning("held-out data unavailable: %s", err)
                    self._error = f"{type(err).__name__}: {err}"
            if shape not in self._cache:
                raise ValueError(f"The held-out digits are not available in this Space ({self._error}); use "
                                 "seeds or your own images instead.")
            return self._cache[shape]

    def example(self, shape: tuple[int, int, int], digit: Any, example: int, label: str = "Digit") -> torch.Tensor:
        """Example ``example`` (cycling) of ``digit`` (0 to 9; ``label`` names it in errors), ``(C, H, W)``."""
        digit = check_digit(digit, label)
        images, labels = self.get(shape)
        matches = torch.nonzero(labels == digit).flatten()
        if len(matches) == 0:
            raise ValueError(f"The held-out data has no digit {digit}.")
        return images[int(matches[example % len(matches)])]

    def _load(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        channels, height, width = shape
        if isinstance(self.source, str):
            from ..data import load_image_dataset

            dataset = load_image_dataset(self.source, image_size=height, channels=channels, split="test")
            return _stack(dataset)
        if self._base is None:
            self._base = _stack(self.source)
        images, labels = self._base
        if images.shape[1] != channels:
            images = images.mean(1, keepdim=True).expand(-1, channels, -1, -1) if channels != 1 \
                else images.mean(1, keepdim=True)
        if tuple(images.shape[2:]) != (height, width):
            images = F.interpolate(images, size=(height, width), mode="bilinear", antialias=True,
                                   align_corners=False)
        return images.clamp(0, 1).contiguous(), labels


def check_digit(digit: Any, label: str) -> int:
    """``digit`` (an int or its text) as an int from 0 to 9, else a ``ValueError`` naming ``label``."""
    try:
        value = int(digit)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a digit from 0 to 9, got {digit!r}.") from None
    if not 0 <= value <= 9:
        raise ValueError(f"{label} must be a digit from 0 to 9, got {value}.")
    return value


def _stack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError("the held-out dataset is empty")
    images = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    labels = torch.tensor([int(y) for _, y in items], dtype=torch.long)
    return images, labels
