"""Two third-party vaegan model families (test fixtures of tests/test_plugins.py and tests/test_contract.py).

* ``TinyAE``: a linear autoencoder with a standard-normal prior, written against vaegan's first protocol (its
  methods take no ``class_labels``; vaegan adapts them).
* ``PixelBernoulli``: a latent-free explicit-density family, every pixel an independent Bernoulli variable. It
  implements only ``compute_loss``, ``sample`` and ``log_likelihood``: no latent space, no encoder.
"""

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vaegan import GenerativeModel
from vaegan.models.validation import check_int

__all__ = ["PixelBernoulli", "TinyAE"]


class TinyAE(GenerativeModel):
    """Linear encoder and decoder; samples decode standard-normal latents (the inherited prior)."""

    family = "tinyae"

    @register_to_config
    def __init__(self, image_size: int = 8, in_channels: int = 1, latent_dim: int = 2):
        super().__init__()
        check_int("image_size", image_size, maximum=64)
        check_int("in_channels", in_channels, maximum=4)
        check_int("latent_dim", latent_dim, maximum=64)
        pixels = in_channels * image_size * image_size
        self.encoder = nn.Linear(pixels, latent_dim)
        self.decoder = nn.Linear(latent_dim, pixels)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.flatten(1))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(latents)).view(-1, *self.image_shape)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(self.decode_latents(self.encode_images(images)), images)}


class PixelBernoulli(GenerativeModel):
    """Independent pixels: ``p(x) = prod_i Bernoulli(x_i; sigmoid(logit_i))`` over images binarized at 0.5."""

    family = "pixelbernoulli"

    @register_to_config
    def __init__(self, image_size: int = 28, in_channels: int = 1):
        super().__init__()
        check_int("image_size", image_size, maximum=256)
        check_int("in_channels", in_channels, maximum=4)
        self.logits = nn.Parameter(torch.zeros(in_channels, image_size, image_size))

    def log_likelihood(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` in nats of each binarized image: ``(B,)``."""
        self.prepare_class_labels(class_labels, len(images))  # the model is unconditional: labels are refused
        binary = (images > 0.5).to(self.logits.dtype)
        logits = self.logits.expand_as(binary)
        return -F.binary_cross_entropy_with_logits(logits, binary, reduction="none").flatten(1).sum(1)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        nll = -self.log_likelihood(images, class_labels).mean()
        return {"loss": nll, "bpd": nll.detach() / (math.log(2) * self.logits.numel())}

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """``num_samples`` binary images ``(N, C, H, W)``; ``temperature`` below 1 sharpens every pixel's odds."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.prepare_class_labels(class_labels, num_samples)
        probs = torch.sigmoid(self.logits / temperature).expand(num_samples, *self.image_shape)
        return torch.bernoulli(probs, generator=generator)
