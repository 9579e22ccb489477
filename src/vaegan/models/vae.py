"""The variational autoencoder (Kingma & Welling, 2013), its loss and its likelihood bounds (ELBO, IWAE)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import AutoencoderKLOutput

from . import conditioning
from .autoencoder import RECONSTRUCTION_LOSSES, Autoencoder, reconstruction_loss
from .outputs import latent_gaussian_class
from .validation import check_choice, check_float, check_int

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DecoderOutput

PRIORS = ("standard", "gmm", "flow")
_LOG_2PI = math.log(2 * math.pi)
#: Upper bound on decoder passes in one forward of :meth:`VAE.likelihood_bounds` (images x posterior draws).
MAX_DECODER_PASSES = 2000


def __getattr__(name: str) -> Any:
    if name == "LatentGaussian":  # built on first use: see vaegan.models.outputs
        return latent_gaussian_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def decoder_log_likelihood(logits: torch.Tensor, images: torch.Tensor, kind: str, mse_weight: float) -> torch.Tensor:
    """``log p(x|z)`` of each row of ``images`` in [0, 1] given the decoder's ``logits``, summed over pixels (nats).

    ``kind="bce"``: Bernoulli over pixel intensities (as in the VAE literature on grey MNIST; not a normalised
    density for non-binary pixels); ``"mse"``: the Gaussian whose negative log-likelihood is the training loss
    ``mse_weight * mean squared error`` plus a constant (variance ``C * H * W / (2 * mse_weight)``).
    """
    if kind == "bce":
        return -F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
    dims = images[0].numel()
    variance = dims / (2.0 * mse_weight)
    squared = (torch.sigmoid(logits) - images).pow(2).flatten(1).sum(1)
    return -squared / (2 * variance) - 0.5 * dims * (_LOG_2PI + math.log(variance))


class VAE(Autoencoder):
    r"""Variational autoencoder with a standard-normal prior.

    The encoder predicts ``mu`` and ``log_var``; ``z = mu + exp(log_var / 2) * eps``. The loss is the
    reconstruction term (Bernoulli ``"bce"`` or weighted Gaussian ``"mse"``) plus
    ``beta * KL(q(z|x) || N(0, I))``, with the KL weight warmed up linearly over ``kl_warmup_steps``.
    The default configuration is the textbook conv VAE for 28x28 MNIST with a 2-D latent.

    ``prior="standard"`` samples from ``N(0, I)``; ``prior="gmm"`` fits a mixture of ``prior_components``
    full-covariance Gaussians to the training latents after training (ex-post density estimation, Ghosh et
    al., 2020; :mod:`vaegan.priors`) and samples from it, covering the codes the encoder actually
    uses instead of the whole of ``N(0, I)``; ``prior="flow"`` fits a RealNVP flow instead (``prior_flow_layers``,
    ``prior_flow_hidden_dim``). Training is the same for all three.

    With ``num_classes`` set it is a conditional VAE (Sohn et al. 2015): the label enters encoder and decoder, so
    the latent carries the *style* and the label the *content*; ``class_names`` (optional) names the labels.
    """

    family = "vae"

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
        reconstruction_loss: str = "bce",
        mse_weight: float = 1000.0,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        prior: str = "standard",
        prior_components: int = 10,
        prior_flow_layers: int = 6,
        prior_flow_hidden_dim: int = 64,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ):
        super().__init__()
        check_choice("reconstruction_loss", reconstruction_loss, RECONSTRUCTION_LOSSES)
        check_float("mse_weight", mse_weight, minimum=1e-12)
        check_float("beta", beta)
        check_int("kl_warmup_steps", kl_warmup_steps, minimum=0, maximum=10**9)
        check_choice("prior", prior, PRIORS)
        self._init_autoencoder(
            image_size=image_size, in_channels=in_channels, latent_dim=latent_dim, architecture=architecture,
            block_out_channels=block_out_channels, strides=strides, kernel_size=kernel_size,
            decoder_block_out_channels=decoder_block_out_channels, hidden_dims=hidden_dims,
            activation=activation, batch_norm=batch_norm, dropout=dropout, encoder_outputs=2 * latent_dim,
            num_classes=num_classes, class_names=class_names,
        )
        self._init_prior(prior, latent_dim, prior_components, prior_flow_layers, prior_flow_hidden_dim)

    def encode(self, images: torch.Tensor, return_dict: bool = True,
               class_labels: conditioning.ClassLabels | None = None) -> AutoencoderKLOutput | tuple:
        """Images in [0, 1] -> ``AutoencoderKLOutput(latent_dist=...)``, a diagonal Gaussian over latents."""
        dist = latent_gaussian_class()(conditioning.call(self.encoder, images, self._labels_for(class_labels, images)))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None, return_dict: bool = True,
                class_labels: conditioning.ClassLabels | None = None) -> DecoderOutput | tuple:
        """Reconstruct ``sample``: posterior mode, or a posterior draw with ``sample_posterior=True``.

        A class-conditional VAE needs the images' ``class_labels``.
        """
        labels = self._labels_for(class_labels, sample)
        dist = self.encode(sample, class_labels=labels).latent_dist
        latents = dist.sample(generator=generator) if sample_posterior else dist.mode()
        return self.decode(latents, return_dict=return_dict, class_labels=labels)

    def encode_images(self, images: torch.Tensor,
                      class_labels: conditioning.ClassLabels | None = None) -> torch.Tensor:
        return self.encode(images, class_labels=class_labels).latent_dist.mode()

    def kl_weight(self, step: int) -> float:
        """``beta``, scaled by the linear warm-up factor ``min(1, step / kl_warmup_steps)``."""
        warmup = self.config.kl_warmup_steps
        return self.config.beta * (min(1.0, step / warmup) if warmup else 1.0)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        dist = latent_gaussian_class()(conditioning.call(self.encoder, images, class_labels))
        logits = conditioning.call(self.decoder, dist.sample(), class_labels)
        recon = reconstruction_loss(logits, images, self.config.reconstruction_loss, self.config.mse_weight)
        kl = dist.kl().mean()
        return {"loss": recon + self.kl_weight(step) * kl, "reconstruction": recon.detach(), "kl": kl.detach()}

    def likelihood_bounds(self, images: torch.Tensor, k: int = 1000, generator: torch.Generator | None = None,
                          class_labels: conditioning.ClassLabels | None = None) -> dict[str, torch.Tensor]:
        """Per-image lower bounds on ``log p(x)`` of ``images`` ``(B, C, H, W)`` in [0, 1], nats: ``{"elbo": (B,),
        "iwae": (B,)}``.

        * ``elbo``: ``E_q[log p(x|z)] - KL(q(z|x) || N(0, I))``, the expectation over ``k`` posterior draws and the
          KL analytic;
        * ``iwae``: the importance-weighted bound of Burda et al. (2016), ``log (1/k) sum_i p(x, z_i) / q(z_i|x)``
          over the same draws ``z_i ~ q(z|x)``; tighter than the ELBO, approaching ``log p(x)`` as ``k`` grows.

        ``p(x|z)`` is the decoder likelihood of the training loss (:func:`decoder_log_likelihood`) and ``p(z)`` the
        standard normal the VAE was trained against (also with ``prior="gmm"`` or ``"flow"``, which only change
        sampling). A class-conditional VAE needs the images' ``class_labels`` (the bounds are then on
        ``log p(x | y)``). The draws come from ``generator`` in chunks of at most :data:`MAX_DECODER_PASSES` decoder
        passes.
        """
        if k < 1:
            raise ValueError(f"the IWAE bound needs k >= 1 posterior samples, got {k}.")
        labels = self.prepare_class_labels(class_labels, len(images))
        kind, weight = self.config.reconstruction_loss, self.config.mse_weight
        with self._eval_mode():
            x = images.to(self.device, self.dtype)
            dist = latent_gaussian_class()(conditioning.call(self.encoder, x, labels))
            mean, std, logvar = dist.mean, dist.std, dist.logvar
            chunk = max(1, MAX_DECODER_PASSES // len(x))
            log_weights, log_px_sum = [], torch.zeros(len(x), dtype=torch.float64, device=x.device)
            for start in range(0, k, chunk):
                n = min(chunk, k - start)
                eps = torch.randn((n, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
                z = mean + std * eps  # (n, B, d)
                logits = conditioning.call(self.decoder, z.reshape(-1, z.shape[-1]),
                                           None if labels is None else labels.repeat(n))
                log_px = decoder_log_likelihood(logits, x.repeat(n, *([1] * (x.ndim - 1))), kind, weight).view(n, -1)
                log_pz = -0.5 * (_LOG_2PI + z.pow(2)).sum(-1)
                log_qz = -0.5 * (_LOG_2PI + logvar + eps.pow(2)).sum(-1)
                log_weights.append((log_px + log_pz - log_qz).double())
                log_px_sum += log_px.double().sum(0)
            iwae = torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)
            elbo = log_px_sum / k - dist.kl().double()
        return {"elbo": elbo, "iwae": iwae}

    # ------------------------------------------------------------------ the ex-post prior (prior="gmm" / "flow")
    def unfitted_prior_message(self) -> str:
        kind = "Gaussian-mixture" if self.latent_prior.name == "gmm" else self.latent_prior.name
        return (f"This VAE's {kind} prior is not fitted yet, so it cannot sample. Call "
                "vae.fit_prior(latents) with the latents of its training images (vaegan's trainer does this at "
                "the end of training), or use prior='standard'.")
