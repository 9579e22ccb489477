"""What the AE and the VAE share: the encoder/decoder pair, its validation, the reconstruction loss and the latent
prior (a :class:`vaegan.priors.LatentPrior`, fitted after training when it needs it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..priors import FlowPrior, GaussianMixturePrior, LatentPrior, build_prior
from . import conditioning
from .base import GenerativeModel
from .nets import ACTIVATIONS, MLP, ConvDecoder, ConvEncoder, conv_start_size
from .outputs import decoder_output
from .validation import MAX_IMAGE_SIZE, MAX_PARAMETERS, check_choice, check_float, check_int, check_int_list

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DecoderOutput

ARCHITECTURES = ("conv", "mlp")
RECONSTRUCTION_LOSSES = ("bce", "mse")


def reconstruction_loss(logits: torch.Tensor, images: torch.Tensor, kind: str, weight: float = 1.0) -> torch.Tensor:
    """Per-sample reconstruction loss, averaged over the batch.

    ``bce``: Bernoulli negative log-likelihood summed over pixels (images in [0, 1] as probabilities);
    ``mse``: ``weight`` times the mean squared error over pixels (a Gaussian likelihood with fixed variance).
    """
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        return per_pixel.flatten(1).sum(1).mean()
    return weight * F.mse_loss(torch.sigmoid(logits), images, reduction="none").flatten(1).mean(1).mean()


#: State-dict keys of the AE's one-Gaussian prior before it became a ``vaegan.priors.GaussianPrior`` (vaegan 0.1).
_LEGACY_PRIOR_KEYS = {"prior_mean": "latent_prior.mean", "prior_scale_tril": "latent_prior.scale_tril",
                      "prior_fitted": "latent_prior.fitted"}


def latent_prior(name: str, latent_dim: int, components: int, flow_layers: int = 6,
                 flow_hidden_dim: int = 64) -> LatentPrior:
    """The unfitted prior ``name`` after checking its options (``prior_components``, ``prior_flow_layers``,
    ``prior_flow_hidden_dim``) and the size of its buffers."""
    if name == FlowPrior.name:
        check_int("prior_flow_layers", flow_layers, maximum=64)
        check_int("prior_flow_hidden_dim", flow_hidden_dim, maximum=4096)
        values = FlowPrior.num_values(latent_dim, flow_layers, flow_hidden_dim)
        if values > MAX_PARAMETERS:
            raise ConfigError(f"prior_flow_layers={flow_layers} and prior_flow_hidden_dim={flow_hidden_dim} with "
                              f"latent_dim={latent_dim} would store {values:,} flow weights, more than the "
                              f"{MAX_PARAMETERS:,} vaegan allows; use fewer layers or a smaller hidden size.")
    if name == GaussianMixturePrior.name:
        check_int("prior_components", components, maximum=1000)
        if components * latent_dim**2 > MAX_PARAMETERS:
            raise ConfigError(f"prior_components={components} with latent_dim={latent_dim} would store "
                              f"{components * latent_dim**2:,} covariance values, more than the {MAX_PARAMETERS:,} "
                              "vaegan allows; use fewer components or a smaller latent_dim.")
    return build_prior(name, latent_dim, components, flow_layers, flow_hidden_dim)


def rename_legacy_prior_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """Rename, in place, the prior buffers of an AE saved by vaegan 0.1 (``prior_mean`` ...) to today's names."""
    for old, new in _LEGACY_PRIOR_KEYS.items():
        if prefix + old in state_dict and prefix + new not in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)


class Autoencoder(GenerativeModel):
    """Encoder/decoder construction shared by :class:`~vaegan.AE` and :class:`~vaegan.VAE`."""

    def _init_autoencoder(self, *, image_size: int, in_channels: int, latent_dim: int, architecture: str,
                          block_out_channels: Sequence[int], strides: Sequence[int], kernel_size: int,
                          decoder_block_out_channels: Sequence[int] | None, hidden_dims: Sequence[int],
                          activation: str, batch_norm: bool, dropout: float, encoder_outputs: int,
                          num_classes: int | None = None, class_names: Sequence[str] | None = None) -> None:
        check_int("image_size", image_size, minimum=4, maximum=MAX_IMAGE_SIZE)
        check_int("in_channels", in_channels, maximum=64)
        check_int("latent_dim", latent_dim)
        check_choice("architecture", architecture, ARCHITECTURES)
        check_choice("activation", activation, tuple(ACTIVATIONS))
        conditioning.check_class_config(num_classes, class_names)
        # A CVAE's encoder reads the label as one more image channel; its decoder reads it beside the latent.
        encoder_channels = in_channels + (1 if num_classes else 0)
        decoder_inputs = latent_dim + (conditioning.embedding_dim(num_classes) if num_classes else 0)
        check_float("dropout", dropout, maximum=1.0, max_inclusive=False)
        if not isinstance(batch_norm, bool):
            raise ConfigError(f"batch_norm must be true or false, got {batch_norm!r}.")
        if architecture == "conv":
            channels = check_int_list("block_out_channels", block_out_channels)
            strides = check_int_list("strides", strides, maximum=8)
            if len(strides) != len(channels):
                raise ConfigError(f"strides has {len(strides)} entries but block_out_channels has "
                                  f"{len(channels)}; give one stride per conv layer.")
            if check_int("kernel_size", kernel_size, maximum=15) % 2 == 0:
                raise ConfigError(f"kernel_size must be odd (3, 5, ...) so strides divide sizes exactly, got "
                                  f"{kernel_size}.")
            conv_start_size(image_size, strides)
            # Textbook mirror: encoder [32, 64, 64, 64] -> decoder [64, 64, 32] + image channels.
            decoder = (list(reversed(channels))[1:] if decoder_block_out_channels is None
                       else check_int_list("decoder_block_out_channels", decoder_block_out_channels,
                                           allow_empty=True))
            if len(decoder) != len(strides) - 1:
                raise ConfigError(f"decoder_block_out_channels needs {len(strides) - 1} entries (one per "
                                  f"transposed conv before the output layer), got {len(decoder)}.")

            def factory() -> dict:
                return {
                    "encoder": ConvEncoder(encoder_channels, image_size, channels, strides, kernel_size,
                                           encoder_outputs, activation, batch_norm, dropout),
                    "decoder": ConvDecoder(decoder_inputs, image_size, in_channels, channels[-1], decoder,
                                           list(reversed(strides)), kernel_size, activation, batch_norm,
                                           dropout),
                }
        else:
            hidden = check_int_list("hidden_dims", hidden_dims)
            pixels = in_channels * image_size * image_size

            def factory() -> dict:
                return {
                    "encoder": MLP(encoder_channels * image_size**2, hidden, encoder_outputs, activation, batch_norm,
                                   dropout),
                    "decoder": MLP(decoder_inputs, list(reversed(hidden)), pixels, activation, batch_norm, dropout,
                                   out_shape=(in_channels, image_size, image_size)),
                }

        if num_classes:
            unconditional = factory

            def factory() -> dict:
                nets = unconditional()
                return {"encoder": conditioning.LabelledImages(nets["encoder"], num_classes, image_size),
                        "decoder": conditioning.LabelledLatents(nets["decoder"], num_classes)}

        self._build(factory)

    def decode_latents(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(conditioning.call(self.decoder, latents, class_labels))

    def _labels_for(self, class_labels: conditioning.ClassLabels | None, batch: torch.Tensor) -> torch.Tensor | None:
        """Public-API labels for a batch: checked, one per row (None stays None for an unconditional model)."""
        return self.prepare_class_labels(class_labels, len(batch))

    def decode(self, latents: torch.Tensor, return_dict: bool = True,
               class_labels: conditioning.ClassLabels | None = None) -> DecoderOutput | tuple:
        """Latents ``(B, latent_dim)`` -> ``DecoderOutput(sample=images in [0, 1])``."""
        images = self.decode_latents(latents, self._labels_for(class_labels, latents))
        return decoder_output(images) if return_dict else (images,)

    def adapt_pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A pretrained prior of another kind (``prior`` changed) gives way to this model's, refitted after training."""
        def is_prior(key: str) -> bool:
            return key.startswith(("prior_", "latent_prior."))

        own = {k: v for k, v in self.state_dict().items() if is_prior(k)}
        if {k for k in state if is_prior(k)} == own.keys():
            return state
        return {**{k: v for k, v in state.items() if not is_prior(k)}, **own}

    def training_latents(self, batches: Iterable[torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]]
                         ) -> torch.Tensor:
        """Latent codes (posterior modes) ``(N, latent_dim)`` of all images in ``batches``, in evaluation mode.

        A class-conditional model encodes ``(images, class_labels)`` pairs (an unconditional one ignores labels).
        """
        latents = []
        with self._eval_mode():
            for batch in batches:
                images, labels = batch if isinstance(batch, tuple | list) else (batch, None)
                labels = labels if self.num_classes is not None else None  # e.g. a DataLoader's unused labels
                latents.append(self.encode_images(images.to(self.device, self.dtype), class_labels=labels))
        return torch.cat(latents)

    # ------------------------------------------------------------------ the latent prior
    def _init_prior(self, prior: str, latent_dim: int, components: int, flow_layers: int = 6,
                    flow_hidden_dim: int = 64) -> None:
        self.latent_prior = latent_prior(prior, latent_dim, components, flow_layers, flow_hidden_dim)
        self._register_load_state_dict_pre_hook(self._rename_legacy_keys, with_module=True)

    @staticmethod
    def _rename_legacy_keys(module: Any, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        rename_legacy_prior_keys(state_dict, prefix)

    def _fix_state_dict_keys_on_load(self, state_dict: dict[str, Any]) -> None:
        # diffusers' from_pretrained compares keys before load_state_dict's hooks run: rename here too.
        rename_legacy_prior_keys(state_dict)
        super()._fix_state_dict_keys_on_load(state_dict)

    @property
    def can_sample(self) -> bool:
        return self.latent_prior.is_fitted

    def unfitted_prior_message(self) -> str:
        """Why the model cannot sample before its prior is fitted, and what to do."""
        return (f"This {type(self).__name__}'s {self.latent_prior.name} prior is not fitted yet, so it cannot sample. "
                "Call fit_prior(latents) with the latents of its training images (vaegan's trainer does this at "
                "the end of training).")

    @torch.no_grad()
    def fit_prior(self, latents: torch.Tensor) -> None:
        """Fit the latent prior to ``latents`` ``(N, latent_dim)`` (the training images' latent codes)."""
        if not self.latent_prior.needs_fit:
            raise ValueError(f"fit_prior needs a prior fitted after training (prior='gmm' or prior='flow'); this "
                             f"{type(self).__name__} samples from its {self.latent_prior.name} prior.")
        self.latent_prior.fit(latents)

    def on_train_end(self, batches: Iterable[torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if self.latent_prior.needs_fit:
            self.fit_prior(self.training_latents(batches))

    def prior_latents(self, num_samples: int, generator: torch.Generator | None = None,
                      temperature: float | None = None) -> torch.Tensor:
        if not self.latent_prior.is_fitted:
            raise RuntimeError(self.unfitted_prior_message())
        return self.latent_prior.sample(num_samples, generator, self.resolve_temperature(temperature),
                                        dtype=self.dtype)
