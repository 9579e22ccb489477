"""Feature extractors, chosen by name: ``mnist`` (shipped with vaegan) and ``inception`` (the standard FID network).

:func:`extract` turns images in [0, 1] into ``(features, logits)``: features for the Fréchet distance, KID and
precision / recall, logits for the Inception Score and the classifier metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..models.validation import closest

FEATURE_EXTRACTORS = ("mnist", "inception")
INCEPTION_INSTALL = ("the 'inception' features need torch-fidelity: install the torchvision release made for your "
                     "torch first (else pip replaces torch), then `pip install 'vaegan[inception]'`")
_INCEPTION_BATCH = 100


def check_features(name: str) -> str:
    """``name`` if it is a known extractor, else a :class:`ConfigError` naming the valid choices."""
    if name not in FEATURE_EXTRACTORS:
        raise ConfigError(f"unknown feature extractor {name!r}.{closest(str(name), FEATURE_EXTRACTORS)} "
                          f"Valid choices: {', '.join(FEATURE_EXTRACTORS)}.")
    return name


@functools.lru_cache(maxsize=1)
def build_inception() -> nn.Module:
    """torch-fidelity's Inception-v3 (the port of the TF network that FID is defined with), in eval mode.

    Called with uint8 ``(N, 3, H, W)`` images (resized to 299 x 299 inside), it returns the 2048-d pool features
    and the 1008 unbiased logits. torchmetrics' FID uses the same network. The weights download on first use.
    """
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as err:
        raise ImportError(INCEPTION_INSTALL + f". ({err})") from err
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"]).eval()


def _to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    x = images.float().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        raise ValueError(f"the inception extractor takes 1- or 3-channel images, got {x.shape[1]} channels.")
    return (x * 255).round().to(torch.uint8)


@torch.no_grad()
def _inception(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    network = build_inception()
    feats, logits = [], []
    for batch in images.split(_INCEPTION_BATCH):
        pooled, logit = network(_to_uint8_rgb(batch))
        feats.append(pooled.reshape(len(batch), -1))
        logits.append(logit.reshape(len(batch), -1))
    return torch.cat(feats), torch.cat(logits)


def _mnist(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from .mnist import mnist_logits_and_features

    logits, feats = mnist_logits_and_features(images)
    return feats, logits


_EXTRACTORS: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "mnist": _mnist, "inception": _inception,
}


def extract(images: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, D), logits (N, K))`` of images ``(N, C, H, W)`` in [0, 1] under extractor ``name``."""
    return _EXTRACTORS[check_features(name)](images.detach().cpu())
