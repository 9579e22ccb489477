"""The plain autoencoder, its MSE loss and the latent prior fitted after training (a Gaussian, a mixture, a flow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from diffusers.configuration_utils import register_to_config

from ..errors import ConfigError
from . import conditioning
from .autoencoder import RECONSTRUCTION_LOSSES, Autoencoder, reconstruction_loss
from .outputs import encoder_output
from .validation import MAX_PARAMETERS, check_choice, check_int

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DecoderOutput, EncoderOutput

PRIORS = ("gaussian", "gmm", "flow")


class AE(Autoencoder):
    """Deterministic autoencoder trained with a reconstruction loss (MSE by default).

    An AE has no prior: after training, :meth:`fit_prior` stores a density fitted to the training
    latents inside the model (saved with it) so that :meth:`sample` works. ``prior="gaussian"`` fits one
    full-covariance Gaussian — and shows why an AE is a poor generator: its latent space has holes the
    Gaussian does not know about; ``prior="gmm"`` fits a mixture of ``prior_components`` Gaussians
    (Ghosh et al., 2020, :mod:`vaegan.priors`), which follows the clusters of the codes; ``prior="flow"`` fits a
    RealNVP flow of ``prior_flow_layers`` coupling layers (MLPs of ``prior_flow_hidden_dim`` units), which also
    follows curved, non-Gaussian clusters.

    With ``num_classes`` set it is class-conditional: the label enters encoder and decoder (as in a CVAE), and
    ``class_names`` (optional) names the labels.
    """

    family = "ae"

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        latent_dim: int = 2,
        architecture: str = "conv",
        block_out_channels: Sequence[int] = (32, 64, 64, 64),
        strides: Sequence[int] = (1, 2, 2, 1),
        kernel_size: int = 3,
        decoder_block_out_channels: Sequence[int] | None = None,
        hidden_dims: Sequence[int] = (512, 256),
        activation: str = "leaky_relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        reconstruction_loss: str = "mse",
        prior: str = "gaussian",
        prior_components: int = 10,
        prior_flow_layers: int = 6,
        prior_flow_hidden_dim: int = 64,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ):
        super().__init__()
        check_choice("reconstruction_loss", reconstruction_loss, RECONSTRUCTION_LOSSES)
        check_choice("prior", prior, PRIORS)
        if check_int("latent_dim", latent_dim) ** 2 > MAX_PARAMETERS:  # the prior's latent_dim x latent_dim buffer
            raise ConfigError(f"latent_dim={latent_dim} is too large for an AE: its fitted prior stores a "
                              f"latent_dim x latent_dim covariance factor ({latent_dim**2:,} values, more than the "
                              f"{MAX_PARAMETERS:,} vaegan allows); use a smaller latent_dim.")
        self._init_autoencoder(
            image_size=image_size, in_channels=in_channels, latent_dim=latent_dim, architecture=architecture,
            block_out_channels=block_out_channels, strides=strides, kernel_size=kernel_size,
            decoder_block_out_channels=decoder_block_out_channels, hidden_dims=hidden_dims,
            activation=activation, batch_norm=batch_norm, dropout=dropout, encoder_outputs=latent_dim,
            num_classes=num_classes, class_names=class_names,
        )
        # Fitted after training; buffers, so save_pretrained stores it with the weights.
        self._init_prior(prior, latent_dim, prior_components, prior_flow_layers, prior_flow_hidden_dim)

    def encode(self, images: torch.Tensor, return_dict: bool = True,
               class_labels: conditioning.ClassLabels | None = None) -> EncoderOutput | tuple:
        """Images in [0, 1] -> ``EncoderOutput(latent=(B, latent_dim))``."""
        latents = conditioning.call(self.encoder, images, self._labels_for(class_labels, images))
        return encoder_output(latents) if return_dict else (latents,)

    def forward(self, sample: torch.Tensor, return_dict: bool = True,
                class_labels: conditioning.ClassLabels | None = None) -> DecoderOutput | tuple:
        """Reconstruct ``sample`` (with its ``class_labels`` for a class-conditional AE)."""
        labels = self._labels_for(class_labels, sample)
        return self.decode(self.encode(sample, class_labels=labels).latent, return_dict=return_dict,
                           class_labels=labels)

    def encode_images(self, images: torch.Tensor,
                      class_labels: conditioning.ClassLabels | None = None) -> torch.Tensor:
        return self.encode(images, class_labels=class_labels).latent

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        latents = conditioning.call(self.encoder, images, class_labels)
        logits = conditioning.call(self.decoder, latents, class_labels)
        return {"loss": reconstruction_loss(logits, images, self.config.reconstruction_loss)}

    # ------------------------------------------------------------------ the fitted prior
    @property
    def has_prior(self) -> bool:
        """Whether the latent prior has been fitted (an AE samples only after that)."""
        return self.latent_prior.is_fitted

    def unfitted_prior_message(self) -> str:
        return ("This AE has no latent prior yet (an autoencoder's prior is fitted to its latent codes after "
                "training), so it cannot generate samples: call fit_prior(latents) with the latents of its training "
                "images (vaegan's trainer does this at the end of training), or use a VAE, whose standard-normal "
                "prior is built in.")
