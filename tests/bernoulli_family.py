"""A latent-free model family with an exact likelihood, for the tests of capability-driven consumers.

``PixelBernoulli`` models each pixel of a binarized image (threshold 0.5) as an independent Bernoulli variable with
a learned logit (one set of logits per class when class-conditional). It implements only what the protocol
requires (``compute_loss``, ``sample``) and ``log_likelihood``: no latent space, no encoder, no bounds. Its exact
log-likelihood is the Bernoulli log-probability summed over pixels, so with all logits 0 every image has
``log p(x) = -C * H * W * ln 2`` (1 bit per dimension).

Register it (``vaegan.register_model``) before loading a saved folder of it; :func:`registered` does that and undoes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

import vaegan
from vaegan import GenerativeModel, GenerativePipeline


class PixelBernoulli(GenerativeModel):
    """Independent per-pixel Bernoulli distributions over binarized images."""

    family = "bernoulli"

    @register_to_config
    def __init__(self, image_size: int = 8, in_channels: int = 1, num_classes: int | None = None,
                 class_names: list[str] | None = None):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_classes or 1, in_channels, image_size, image_size))

    def _logits(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        return self.logits[labels] if labels is not None else self.logits[0].expand(n, *self.image_shape)

    def log_likelihood(self, images: torch.Tensor, class_labels=None) -> torch.Tensor:
        labels = self.prepare_class_labels(class_labels, len(images))
        binary = (images.to(self.device) > 0.5).to(self.dtype)
        return -F.binary_cross_entropy_with_logits(self._logits(len(images), labels), binary,
                                                   reduction="none").flatten(1).sum(1)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int, class_labels=None) -> dict:
        return {"loss": -self.log_likelihood(images, class_labels).mean()}

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               class_labels=None) -> torch.Tensor:
        labels = self.prepare_class_labels(class_labels, num_samples, generator, draw_missing=True)
        probabilities = torch.sigmoid(self._logits(num_samples, labels).detach() / temperature)
        noise = torch.rand(probabilities.shape, generator=generator, dtype=probabilities.dtype)
        return (noise.to(self.device) < probabilities).to(self.dtype)


class BernoulliPipeline(GenerativePipeline):
    """A plugin's own pipeline for its family (component ``bernoulli``)."""

    component_name = "bernoulli"
    model_class = PixelBernoulli
    model_cpu_offload_seq = "bernoulli"

    def __init__(self, bernoulli: PixelBernoulli):
        GenerativePipeline.__init__(self, bernoulli)


def make(seed: int = 0, **config) -> PixelBernoulli:
    """A model with seeded random logits (``image_size`` 28 by default, as MNIST)."""
    model = PixelBernoulli(**{"image_size": 28, **config})
    with torch.no_grad():
        model.logits.normal_(generator=torch.Generator().manual_seed(seed))
    return model


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """``PixelBernoulli`` registered with vaegan (so folders of it load) for the ``with`` block."""
    from vaegan.models import registry

    before = registry.registered_class("PixelBernoulli")  # another test module's family of the same name
    vaegan.register_model(PixelBernoulli)
    try:
        yield
    finally:
        registry._REGISTRY.pop("PixelBernoulli", None)
        if before is not None:
            registry._REGISTRY["PixelBernoulli"] = before
