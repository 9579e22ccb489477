"""Metrics from a classifier's predictions on generated images (the ``mnist`` extractor's digit classifier)."""

from __future__ import annotations

import math

import torch

CONFIDENCE = 0.9


def confident(probabilities: torch.Tensor, threshold: float = CONFIDENCE) -> float:
    """Share of samples whose most likely class has probability >= ``threshold`` (recognisable samples)."""
    return float((probabilities.max(1).values >= threshold).double().mean())


def class_histogram(probabilities: torch.Tensor) -> list[int]:
    """How many samples are predicted as each class."""
    return torch.bincount(probabilities.argmax(1), minlength=probabilities.shape[1]).tolist()


def class_coverage(probabilities: torch.Tensor) -> float:
    """Entropy of the predicted-class histogram divided by ``ln(classes)``: 1.0 when every class is equally common,
    0.0 when every sample is predicted as the same class (mode collapse)."""
    counts = torch.tensor(class_histogram(probabilities), dtype=torch.float64)
    p = counts[counts > 0] / counts.sum()
    return max(0.0, float(-(p * p.log()).sum()) / math.log(probabilities.shape[1]))
