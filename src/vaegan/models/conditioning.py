"""Class conditioning shared by the families: configuration checks, label validation and the label-aware networks.

A class-conditional model (``num_classes`` set) wraps its unconditional networks:

* :class:`LabelledLatents` — the label's learned embedding concatenated with the latent (CVAE decoder, cGAN
  generator);
* :class:`LabelledImages` — a learned per-class ``H x W`` map appended to the image as one more channel (CVAE
  encoder, Sohn et al. 2015);
* :class:`ConditionalDiscriminator` — a projection discriminator (Miyato & Koyama 2018,
  ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``) or an auxiliary classifier (ACGAN, Odena et al. 2017) on the
  features of an unconditional discriminator.

Unconditional models build none of these, so their weights keep the names (and files) they had before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .validation import check_choice, check_int, closest

DISCRIMINATOR_CONDITIONING = ("projection", "acgan")
MAX_EMBEDDING_DIM = 128

#: What ``class_labels`` may be: an index, a class name, a sequence of them, or an integer tensor / array.
ClassLabels = int | str | Sequence[int | str] | torch.Tensor | np.ndarray


def check_class_config(num_classes: Any, class_names: Any) -> None:
    """Validate ``num_classes`` / ``class_names`` at construction (:class:`~vaegan.ConfigError` naming the field)."""
    if num_classes is None:
        if class_names is not None:
            raise ConfigError("class_names is set but num_classes is not; set num_classes to the number of classes "
                              "(a class-conditional model) or drop class_names.")
        return
    check_int("num_classes", num_classes, minimum=2, maximum=100_000)
    if class_names is None:
        return
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not all(
            isinstance(name, str) and name for name in class_names):
        raise ConfigError(f"class_names must be a list of non-empty strings, got {class_names!r}.")
    if len(class_names) != num_classes:
        raise ConfigError(f"class_names has {len(class_names)} names but num_classes is {num_classes}; give one "
                          "name per class.")
    if len(set(class_names)) != len(class_names):
        duplicates = sorted({n for n in class_names if list(class_names).count(n) > 1})
        raise ConfigError(f"class_names must be unique; repeated: {duplicates}.")


def embedding_dim(num_classes: int) -> int:
    """Width of the label embedding concatenated with the latent: one-hot sized, capped at 128."""
    return min(num_classes, MAX_EMBEDDING_DIM)


def _unconditional_error(model_name: str) -> ValueError:
    return ValueError(f"This {model_name} is unconditional (num_classes is None), so it takes no class_labels; drop "
                      "class_labels, or train a class-conditional model (set model.num_classes in the config).")


def _index_of(label: Any, num_classes: int, class_names: Sequence[str] | None) -> int:
    if isinstance(label, str):
        if class_names is None:
            raise ValueError(f"class label {label!r} is a name, but this model has no class_names; pass an integer "
                             f"in [0, {num_classes - 1}].")
        if label not in class_names:
            raise ValueError(f"unknown class name {label!r}.{closest(label, class_names)} Classes: "
                             f"{', '.join(class_names)}.")
        return list(class_names).index(label)
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise TypeError(f"class labels must be integers in [0, {num_classes - 1}] or class names, got "
                        f"{type(label).__name__} {label!r}.")
    if not 0 <= int(label) < num_classes:
        raise ValueError(f"class label {int(label)} is out of range: this model has {num_classes} classes "
                         f"(labels 0 to {num_classes - 1}).")
    return int(label)


def label_tensor(class_labels: ClassLabels, *, num_classes: int | None, class_names: Sequence[str] | None,
                 num_samples: int | None = None, model_name: str = "model",
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Check ``class_labels`` and return them as a ``(num_samples,)`` int64 tensor on ``device``.

    A single label (int, name, 0-d tensor) is repeated ``num_samples`` times; a sequence or 1-d tensor must have
    ``num_samples`` entries (any length when ``num_samples`` is None).
    """
    if num_classes is None:
        raise _unconditional_error(model_name)
    if isinstance(class_labels, np.ndarray):
        class_labels = torch.from_numpy(class_labels)
    if isinstance(class_labels, torch.Tensor):
        if class_labels.dtype.is_floating_point or class_labels.dtype.is_complex or class_labels.dtype == torch.bool:
            raise TypeError(f"class_labels must be an integer tensor, got dtype {class_labels.dtype}; convert with "
                            ".long() if the values are whole numbers.")
        if class_labels.ndim > 1:
            raise ValueError(f"class_labels must be one label or a 1-d batch of labels, got shape "
                             f"{tuple(class_labels.shape)}.")
        labels = class_labels.reshape(-1).to(torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
            raise ValueError(f"class label {bad} is out of range: this model has {num_classes} classes "
                             f"(labels 0 to {num_classes - 1}).")
        single = class_labels.ndim == 0
    elif isinstance(class_labels, Sequence) and not isinstance(class_labels, str):
        labels = torch.tensor([_index_of(label, num_classes, class_names) for label in class_labels],
                              dtype=torch.long)
        single = False
    else:
        labels = torch.tensor([_index_of(class_labels, num_classes, class_names)], dtype=torch.long)
        single = True
    if num_samples is not None:
        if single:
            labels = labels.expand(num_samples)
        elif len(labels) != num_samples:
            raise ValueError(f"got {len(labels)} class labels for {num_samples} samples; pass one label (used for "
                             "every sample) or exactly one per sample.")
    elif not len(labels):
        raise ValueError("class_labels is empty; pass at least one label.")
    return labels.to(device) if device is not None else labels


def random_labels(num_samples: int, num_classes: int, generator: torch.Generator | list[torch.Generator] | None,
                  device: torch.device | str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Class labels drawn with ``generator`` (one generator, or one per sample like ``randn_tensor``): uniformly,
    or with the probabilities ``weights`` ``(num_classes,)``."""

    def draw(n: int, g: torch.Generator | None) -> torch.Tensor:
        gen_device = g.device if g is not None else torch.device("cpu")
        if weights is None:
            return torch.randint(num_classes, (n,), generator=g, device=gen_device)
        return torch.multinomial(weights.float().to(gen_device), n, replacement=True, generator=g)

    if isinstance(generator, list):
        if len(generator) != num_samples:
            raise ValueError(f"got {len(generator)} generators for {num_samples} samples.")
        return torch.cat([draw(1, g).to(device) for g in generator])
    return draw(num_samples, generator).to(device)


def call(net: nn.Module, inputs: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
    """``net(inputs)`` for an unconditional network, ``net(inputs, class_labels)`` for a label-aware one."""
    return net(inputs) if class_labels is None else net(inputs, class_labels)


def _require_labels(class_labels: torch.Tensor | None, what: str) -> torch.Tensor:
    if class_labels is None:
        raise ValueError(f"this model is class-conditional: its {what} needs class_labels (one label per sample, "
                         "e.g. class_labels=7 or class_labels=[0, 1, 2]).")
    return class_labels


class LabelledLatents(nn.Module):
    """``net(cat([latents, embed(labels)]))``: the label enters a decoder / generator beside the latent."""

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        self.net = net
        self.label_embedding = nn.Embedding(num_classes, embedding_dim(num_classes))

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        embedded = self.label_embedding(_require_labels(class_labels, "decoder")).to(latents.dtype)
        return self.net(torch.cat([latents, embedded], dim=1))


class LabelledImages(nn.Module):
    """``net(cat([images, map(labels)], channel))``: a learned ``H x W`` map per class as one extra channel."""

    def __init__(self, net: nn.Module, num_classes: int, image_size: int):
        super().__init__()
        self.net = net
        self.image_size = image_size
        self.label_embedding = nn.Embedding(num_classes, image_size * image_size)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        maps = self.label_embedding(_require_labels(class_labels, "encoder")).to(images.dtype)
        maps = maps.view(-1, 1, self.image_size, self.image_size)
        return self.net(torch.cat([images, maps], dim=1))


class ConditionalDiscriminator(nn.Module):
    """A discriminator whose last layer is a ``Linear`` on features ``phi(x)``, made label-aware.

    ``projection``: one logit ``psi(phi(x)) + <embed(y), phi(x)>``. ``acgan``: the unchanged logit, plus class
    logits from an auxiliary linear classifier on ``phi(x)`` (see :meth:`classify`).
    """

    def __init__(self, net: nn.Module, num_classes: int, mode: str):
        super().__init__()
        check_choice("conditioning", mode, DISCRIMINATOR_CONDITIONING)
        layers = getattr(net, "layers", None)
        if not isinstance(layers, nn.Sequential) or not isinstance(layers[-1], nn.Linear):
            raise ConfigError(f"class conditioning needs a discriminator whose `layers` end in an nn.Linear; "
                              f"{type(net).__name__} does not.")
        self.net = net
        self.mode = mode
        features = layers[-1].in_features
        if mode == "projection":
            self.projection = nn.Embedding(num_classes, features)
            nn.init.normal_(self.projection.weight, std=features**-0.5)
        else:
            self.classifier = nn.Linear(features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.layers[:-1](images)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, 1)`` (critic values for WGANs)."""
        features = self.features(images)
        logits = self.net.layers[-1](features)
        if self.mode == "projection":
            labels = _require_labels(class_labels, "discriminator")
            logits = logits + (self.projection(labels).to(features.dtype) * features).sum(1, keepdim=True)
        return logits

    def forward_with_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ACGAN: ``(logits (B, 1), class logits (B, num_classes))`` from one pass over the features."""
        features = self.features(images)
        return self.net.layers[-1](features), self.classifier(features)
