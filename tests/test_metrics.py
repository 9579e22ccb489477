"""vaegan.metrics: the estimators against references and limiting cases, the shipped MNIST classifier, the
likelihood bounds, metric selection and its errors, and the inception code path with a stand-in network."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from vaegan import GAN, VAE, ConfigError
from vaegan.metrics import (
    CLASSIFIER_INFO,
    class_coverage,
    confident,
    evaluate,
    frechet_distance,
    inception_score,
    kernel_distance,
    likelihood_bounds,
    mnist_probabilities,
    precision_recall_density_coverage,
)
from vaegan.metrics import features as features_module
from vaegan.metrics.evaluate import _real_images
from vaegan.metrics.mnist import mnist_logits_and_features


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with SciPy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def gaussians(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    return torch.from_numpy(rng.normal(size=(n, d)) @ mixing * scale + shift)


# ---------------------------------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.5, 1.0), (0.0, 2.0), (3.0, 0.5)])
def test_frechet_distance_matches_a_scipy_reference(shift, scale):
    a, b = gaussians(2000, 16, 0), gaussians(1500, 16, 1, shift, scale)
    expected = reference_frechet(a.numpy(), b.numpy())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-3)


def test_kid_is_about_zero_for_identical_sets_and_positive_for_different_ones():
    a = gaussians(2000, 16, 0)
    same, same_std = kernel_distance(a, a.clone(), subset_size=500, seed=0)
    different, _ = kernel_distance(a, gaussians(2000, 16, 1, shift=0.5), subset_size=500, seed=0)
    assert abs(same) < 0.02 * different and same_std < 0.05 * different
    assert kernel_distance(a, a.clone(), subset_size=500, seed=3) == kernel_distance(a, a, subset_size=500, seed=3)


def test_precision_recall_density_coverage_limits():
    a = gaussians(600, 8, 0)
    identical = precision_recall_density_coverage(a, a.clone())
    assert identical["precision"] == identical["recall"] == identical["coverage"] == 1.0
    assert identical["density"] >= 1.0  # every sample lies in its own ball and in k others on average
    disjoint = precision_recall_density_coverage(a, a + 100.0)
    assert disjoint == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # Mode collapse: every generated sample is (nearly) one of 10 real ones: precise, but low recall and coverage.
    collapsed = precision_recall_density_coverage(a, a[:10].repeat(30, 1) + 1e-3 * gaussians(300, 8, 2))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.1


def test_inception_score_and_classifier_metrics_limits():
    certain = torch.full((1000, 10), -30.0)
    certain[torch.arange(1000), torch.arange(1000) % 10] = 30.0
    assert inception_score(certain, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < inception_score(certain)[0] < 10.0  # 10 random splits: classes not exactly balanced in each
    assert inception_score(torch.zeros(1000, 10))[0] == pytest.approx(1.0)
    probabilities = certain.softmax(1)
    assert confident(probabilities) == 1.0 and class_coverage(probabilities) == pytest.approx(1.0)
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 1.0
    assert class_coverage(one_class) == 0.0
    assert confident(torch.full((5, 10), 0.1)) == 0.0
