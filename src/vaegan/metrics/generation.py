"""Metrics between generated and real images in a feature space.

* Fréchet distance, KID and Inception Score: torchmetrics' implementations (``FrechetInceptionDistance``,
  ``KernelInceptionDistance``, ``InceptionScore``), fed features computed once by :mod:`.features`.
* Improved precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020), which
  torchmetrics does not have: k-nearest-neighbour balls in feature space, written here; ``pr_f1``, their balance.

All functions take feature matrices ``(N, D)``; random subsets (KID, IS) come from ``seed``. They compute on this
process's features only: a torchmetrics metric would otherwise gather its state from every process of an initialised
``torch.distributed`` group on ``compute()``, and the trainer evaluates on the main process alone.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

_CHUNK = 1024
#: Local metrics: no ``torch.distributed`` collective on ``compute()`` (see the module docstring).
_LOCAL = {"sync_on_compute": False, "dist_sync_on_step": False}


class _Precomputed(nn.Module):
    """A torchmetrics "feature extractor" that passes features through: the features are computed beforehand."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _torchmetrics(module: str, name: str):
    """A torchmetrics class from its own module (``torchmetrics.image`` lists them only beside torch-fidelity)."""
    import importlib

    try:
        return getattr(importlib.import_module(f"torchmetrics.image.{module}"), name)
    except ImportError as err:
        raise ImportError(f"vaegan's generation metrics need torchmetrics: `pip install torchmetrics`. ({err})") \
            from err


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID when they are Inception features)."""
    metric = _torchmetrics("fid", "FrechetInceptionDistance")(feature=_Precomputed(real.shape[1]), **_LOCAL)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID: unbiased squared MMD with the kernel ``(x.y / D + 1) ** 3``; mean and std over random subsets."""
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = _torchmetrics("kid", "KernelInceptionDistance")(feature=_Precomputed(real.shape[1]),
                                                                 subsets=subsets, subset_size=size, **_LOCAL)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """``exp(E_x KL(p(y|x) || p(y)))`` from classifier logits; mean and std over ``splits`` random splits."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = _torchmetrics("inception", "InceptionScore")(feature=_Precomputed(logits.shape[1]), splits=splits,
                                                              **_LOCAL)
    metric.update(logits.double())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every row to its k-th nearest other row."""
    radii = []
    for chunk in features.split(_CHUNK):
        distances = torch.cdist(chunk, features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the nearest one (distance 0) is the row itself
    return torch.cat(radii)


def _ball_counts(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """For each point: how many balls (centre, radius) hold it; for each centre: distance to its nearest point."""
    counts, nearest = [], torch.full((len(centres),), float("inf"), dtype=centres.dtype)
    for chunk in points.split(_CHUNK):
        distances = torch.cdist(chunk, centres)
        counts.append((distances <= radii).sum(1))
        nearest = torch.minimum(nearest, distances.min(0).values)
    return torch.cat(counts), nearest


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

    Each real (fake) feature gets a ball reaching its ``k``-th nearest real (fake) neighbour. Precision: share of
    fake samples inside some real ball; recall: share of real samples inside some fake ball; density: mean number
    of real balls holding a fake sample, divided by ``k``; coverage: share of real balls that hold a fake sample.
    """
    real, fake = real.double(), fake.double()
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall need more than k={k} real and generated samples.")
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    fake_in_real, real_nearest_fake = _ball_counts(fake, real, real_radii)
    real_in_fake, _ = _ball_counts(real, fake, fake_radii)
    return {
        "precision": float((fake_in_real > 0).double().mean()),
        "recall": float((real_in_fake > 0).double().mean()),
        "density": float(fake_in_real.double().mean() / k),
        "coverage": float((real_nearest_fake <= real_radii).double().mean()),
    }


def pr_f1(precision: float, recall: float) -> float:
    """The harmonic mean ``2 P R / (P + R)`` of precision and recall (0 when both are 0): high only when both are."""
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total
