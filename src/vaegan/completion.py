"""Image completion as ``vaegan complete`` and the demo's Complete tab offer it: which rows of an image are kept,
and the picture of the kept part followed by the model's completions (models with the ``completion`` capability).
"""

from __future__ import annotations

import torch
from PIL import Image

from .images import make_grid
from .models.base import GenerativeModel
from .models.conditioning import ClassLabels

#: The share of rows (from the top) kept; the rest is redrawn in raster order.
KEEP_CHOICES = {"top-half": 1 / 2, "top-third": 1 / 3, "top-quarter": 1 / 4, "top-two-thirds": 2 / 3}
DEFAULT_KEEP = "top-half"
#: The value of the redrawn pixels in the picture's first image (the kept part): grey.
REDRAWN_GREY = 0.5


def keep_mask(keep: str, height: int, width: int) -> torch.Tensor:
    """The ``known_mask`` of ``keep`` (a key of :data:`KEEP_CHOICES`) for ``height x width`` images: True for the
    kept rows at the top."""
    if keep not in KEEP_CHOICES:
        raise ValueError(f"Keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}.")
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[:round(height * KEEP_CHOICES[keep])] = True
    return mask


def complete_image(model: GenerativeModel, image: torch.Tensor, keep: str, num_completions: int,
                   generator: torch.Generator | None = None, class_labels: ClassLabels | None = None,
                   pad_value: float = 0.0, scale: int = 1) -> Image.Image:
    """``model.complete`` of one image ``(C, H, W)`` in [0, 1] keeping ``keep``, as one row: the kept part (the
    pixels the model kept, e.g. thresholded by a binary model; redrawn pixels grey), then the completions.

    ``pad_value`` and ``scale`` are :func:`~vaegan.images.make_grid`'s.
    """
    mask = keep_mask(keep, *image.shape[-2:])
    completions = model.complete(image[None], mask, generator=generator, num_completions=num_completions,
                                 class_labels=class_labels).float().cpu()
    kept = torch.where(mask, completions[0], torch.full_like(completions[0], REDRAWN_GREY))
    return make_grid(torch.cat([kept[None], completions]), nrow=len(completions) + 1, pad_value=pad_value,
                     scale=scale)
