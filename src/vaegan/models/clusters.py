"""Cluster conditioning for unconditional GANs (and VQ-VAE priors): k-means clusters of the training images stand in
for labels.

A class-conditional GAN draws far cleaner digits than an unconditional one from the same data and budget: the
label tells both players which mode a sample belongs to. ``GAN(clusters=K)`` gets that benefit without labels
(Sage et al. 2018, clustered GANs; Liu et al. 2020 cluster the discriminator's features instead, "self-conditioned
GAN"): before training, k-means splits the training images into ``K`` clusters; the generator reads the cluster
beside ``z``, the discriminator is a projection discriminator on the cluster of each image (real images: the
nearest centre; fakes: the cluster they were drawn for), and sampling draws clusters with their training
frequencies. The model stays unconditional to its users: its latent is ``[z, one_hot(cluster)]``. A VQ-VAE's prior
over code grids is conditioned the same way (``VQVAE(prior_clusters=K)``): it draws a cluster, then the codes.

:class:`ClusterSet` holds the centres and frequencies as buffers, so they are saved with the weights (safetensors).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import random_labels

#: Images are average-pooled to at most this side before clustering (a 64x64 RGB face: 3 x 32 x 32 numbers).
MAX_CLUSTER_SIDE = 32
#: At most this many training images are clustered (the first ones the loader yields).
MAX_CLUSTER_IMAGES = 10_240


def cluster_features(images: torch.Tensor) -> torch.Tensor:
    """Images ``(B, C, H, W)`` in [0, 1] -> the flat vectors k-means works on ``(B, C * s * s)``."""
    side = min(images.shape[-1], MAX_CLUSTER_SIDE)
    if side != images.shape[-1]:
        images = F.adaptive_avg_pool2d(images, side)
    return images.flatten(1)


class ClusterSet(nn.Module):
    """``K`` k-means centres of the training images and each cluster's share of them (zeros until :meth:`fit`)."""

    def __init__(self, num_clusters: int, feature_dim: int):
        super().__init__()
        self.register_buffer("centers", torch.zeros(num_clusters, feature_dim))
        self.register_buffer("weights", torch.zeros(num_clusters))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    def fit(self, batches: Iterable[torch.Tensor], seed: int = 0, max_images: int = MAX_CLUSTER_IMAGES) -> None:
        """k-means (scikit-learn, the ``[train]`` extra) on up to ``max_images`` images of ``batches``."""
        try:
            from sklearn.cluster import KMeans
        except ImportError as err:  # pragma: no cover - the [train] extra installs it
            raise ImportError("clustering the training images needs scikit-learn: pip install 'vaegan[train]'") from err
        features, count = [], 0
        for images in batches:
            features.append(cluster_features(images.detach().float().cpu()))
            count += len(images)
            if count >= max_images:
                break
        data = torch.cat(features)[:max_images] if features else torch.zeros(0, self.centers.shape[1])
        k = len(self.weights)
        if len(data) < k:
            raise ValueError(f"clusters={k} needs at least {k} training images to cluster, got {len(data)}; lower "
                             "model.clusters or use more data.")
        if data.shape[1] != self.centers.shape[1]:
            raise ValueError(f"images give {data.shape[1]} cluster features, expected {self.centers.shape[1]}.")
        kmeans = KMeans(k, n_init=3, random_state=seed).fit(data.double().numpy())
        counts = torch.bincount(torch.as_tensor(kmeans.labels_, dtype=torch.long), minlength=k)
        self.centers.copy_(torch.as_tensor(kmeans.cluster_centers_))
        self.weights.copy_(counts / counts.sum())

    def assign(self, images: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """The nearest centre of each image ``(B, C, H, W)`` in [0, 1] -> ``(B,)`` cluster indices; with ``known``
        (``(B, 1 or C, H, W)`` bool), the nearest on the known pixels alone (an image to complete)."""
        x = cluster_features(images).to(self.centers.dtype)
        if known is None:
            distances = (self.centers**2).sum(1) - 2 * x @ self.centers.T  # ||x||^2 is the same for every centre
            return distances.argmin(1)
        weights = cluster_features(known.expand_as(images).to(x.dtype))
        return ((x[:, None] - self.centers[None]) ** 2 * weights[:, None]).sum(-1).argmin(1)

    def draw(self, num: int, generator: torch.Generator | list[torch.Generator] | None,
             device: torch.device) -> torch.Tensor:
        """``num`` clusters drawn with their training frequencies (one generator, or one per sample)."""
        return random_labels(num, len(self.weights), generator, device, weights=self.weights.cpu())


def sampling_conditions(model: Any, clusters: ClusterSet | None, class_labels: Any, count: int,
                        generator: torch.Generator | None = None, images: torch.Tensor | None = None,
                        known: torch.Tensor | None = None, owner: str = "model") -> torch.Tensor | None:
    """What a model reads when it samples (``images`` None) or completes ``images``: its checked class labels (drawn
    uniformly when sampling without them), or, with ``clusters``, the clusters of ``images`` (nearest on their
    ``known`` pixels) or ``count`` clusters drawn with their training shares; None for neither."""
    labels = model.prepare_class_labels(class_labels, count, generator, draw_missing=images is None)
    if clusters is None:
        return labels
    if not clusters.fitted:
        raise RuntimeError(f"This {owner} is conditioned on k-means clusters of its training images, but they are not "
                           "fitted yet, so it cannot sample or complete; train it with vaegan's trainer (it clusters "
                           "the training images before the first step of the stage that needs them).")
    if images is not None:
        return clusters.assign(images, known)
    return clusters.draw(count, generator, model.device)


class ClusterLatents(nn.Module):
    """The generator of a cluster-conditioned GAN: latents ``[z, one_hot(cluster)]`` -> ``net([z, embed(cluster)])``.

    The cluster part goes through a learned embedding as a matrix product, so a soft one-hot (a point on an
    interpolation path) mixes the embeddings of two clusters.
    """

    def __init__(self, net: nn.Module, num_clusters: int, embedding_dim: int):
        super().__init__()
        self.net = net
        self.num_clusters = num_clusters
        self.cluster_embedding = nn.Embedding(num_clusters, embedding_dim)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        z, code = latents[:, :-self.num_clusters], latents[:, -self.num_clusters:]
        return self.net(torch.cat([z, code @ self.cluster_embedding.weight.to(code.dtype)], dim=1))
