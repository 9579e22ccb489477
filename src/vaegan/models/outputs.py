"""diffusers' autoencoder output types, imported on first use.

``DecoderOutput``, ``EncoderOutput`` and ``DiagonalGaussianDistribution`` live in
``diffusers.models.autoencoders.vae``; importing it runs the ``diffusers.models.autoencoders`` package,
which imports every diffusers autoencoder, the UNet blocks, the transformers and scipy (several times
the cost of ``ModelMixin`` itself). ``import vaegan`` must not pay that, so the model code asks for
these classes here, when it first encodes or decodes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch


def decoder_output(sample: torch.Tensor) -> Any:
    """``diffusers.models.autoencoders.vae.DecoderOutput(sample=sample)``."""
    from diffusers.models.autoencoders.vae import DecoderOutput

    return DecoderOutput(sample=sample)


def encoder_output(latent: torch.Tensor) -> Any:
    """``diffusers.models.autoencoders.vae.EncoderOutput(latent=latent)``."""
    from diffusers.models.autoencoders.vae import EncoderOutput

    return EncoderOutput(latent=latent)


@functools.cache
def latent_gaussian_class() -> type:
    """``LatentGaussian``: diffusers' ``DiagonalGaussianDistribution`` for flat ``(B, latent_dim)`` latents.

    KL and NLL sum over every latent dimension (diffusers' sum over dims 1-3 of image-shaped latents).
    """
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    class LatentGaussian(DiagonalGaussianDistribution):
        """diffusers' diagonal Gaussian for flat ``(B, latent_dim)`` latents: KL and NLL sum over every latent dim."""

        def kl(self, other: DiagonalGaussianDistribution | None = None) -> torch.Tensor:
            if other is None:
                terms = self.mean.pow(2) + self.var - 1.0 - self.logvar
            else:
                terms = (self.mean - other.mean).pow(2) / other.var + self.var / other.var - 1.0 - self.logvar \
                    + other.logvar
            return 0.5 * terms.flatten(1).sum(1)

        def nll(self, sample: torch.Tensor, dims: Sequence[int] | None = None) -> torch.Tensor:
            log_two_pi = torch.log(torch.tensor(2.0 * torch.pi, dtype=self.mean.dtype))
            terms = log_two_pi + self.logvar + (sample - self.mean).pow(2) / self.var
            return 0.5 * terms.flatten(1).sum(1)

    LatentGaussian.__module__ = "vaegan.models.vae"
    LatentGaussian.__qualname__ = "LatentGaussian"
    return LatentGaussian
