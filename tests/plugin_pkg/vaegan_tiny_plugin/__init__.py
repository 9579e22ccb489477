"""A third-party vaegan model family: a linear autoencoder with a standard-normal prior."""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from vaegan import GenerativeModel
from vaegan.models.validation import check_int

__all__ = ["TinyAE"]


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
