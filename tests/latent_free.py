"""A third-party family with only the required protocol and an exact likelihood: no latent space, no encoder.

``PixelTable`` models every pixel as an independent Bernoulli variable (one table of logits, one per class when
class-conditional). It implements ``compute_loss``, ``sample`` and ``log_likelihood`` and nothing else, so a
consumer that still assumes a latent space (``latent_dim``, ``decode_latents``) fails on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vaegan import GenerativeModel
from vaegan.models.conditioning import ClassLabels

__all__ = ["PixelTable"]


class PixelTable(GenerativeModel):
    """Independent Bernoulli pixels; an exact log-likelihood, no latent space."""

    family = "pixel-table"

    @register_to_config
    def __init__(self, image_size: int = 28, in_channels: int = 1, num_classes: int | None = None):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_classes or 1, in_channels, image_size, image_size))

    def _table(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        return self.logits[0].expand(n, -1, -1, -1) if labels is None else self.logits[labels]

    def log_likelihood(self, images: torch.Tensor, class_labels: ClassLabels | None = None) -> torch.Tensor:
        labels = self.prepare_class_labels(class_labels, len(images))
        logits = self._table(labels, len(images))
        return -F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"loss": -self.log_likelihood(images, class_labels).mean()}

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               class_labels: ClassLabels | None = None) -> torch.Tensor:
        labels = self.prepare_class_labels(class_labels, num_samples, generator, draw_missing=True)
        logits = self._table(labels, num_samples)
        probs = torch.sigmoid(logits / temperature) if temperature > 0 else (logits > 0).to(logits.dtype)
        return torch.bernoulli(probs, generator=generator)
