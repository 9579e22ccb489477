"""A learned prior over grids of discrete codes: a Gated PixelCNN whose inputs are code embeddings.

``p(c) = prod_i p(c_i | c_<i)`` over the positions of a code grid in raster order, each a categorical over the
codebook (one logit per code). It is the second component of a :class:`~vaegan.models.vqvae.VQVAE` (its
``prior/`` folder), not a family of its own: it models codes, not images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..errors import ConfigError
from .base import GenerativeModel
from .clusters import ClusterSet
from .masked import CachedPass, GatedPixelCNNNet
from .pixelcnn import check_dilations
from .validation import check_int


class CodePrior(GenerativeModel):
    """Autoregressive categorical prior over ``(grid_size, grid_size)`` grids of ``num_codes`` codes.

    Conditioned on a class (``num_classes``) or on one of ``clusters`` k-means clusters of the training images
    (``cluster_set``: its centres, ``cluster_features`` numbers each, and their training shares), which stands in
    for a label the way a cluster-conditioned GAN's does (:mod:`vaegan.models.clusters`).

    A component (saved in a VQ-VAE's ``prior/`` folder); it derives from :class:`GenerativeModel` for vaegan's
    strict safetensors loading and is not registered as a family.
    """

    family = "code-prior"

    @register_to_config
    def __init__(self, num_codes: int = 128, grid_size: int = 7, embedding_dim: int = 32, channels: int = 64,
                 num_layers: int = 8, kernel_size: int = 3, head_channels: int = 128,
                 dilations: Sequence[int] | None = None, num_classes: int | None = None,
                 clusters: int | None = None, cluster_features: int | None = None):
        super().__init__()
        check_int("num_codes", num_codes, minimum=2, maximum=65_536)
        check_int("grid_size", grid_size, minimum=2, maximum=256)
        check_int("prior embedding_dim", embedding_dim, maximum=4096)
        check_int("prior channels", channels, maximum=4096)
        check_int("prior num_layers", num_layers, maximum=128)
        if check_int("prior kernel_size", kernel_size, minimum=3, maximum=15) % 2 == 0:
            raise ConfigError(f"the prior's kernel_size must be odd (3, 5, ...), got {kernel_size}.")
        check_int("prior head_channels", head_channels, maximum=4096)
        if num_classes is not None:
            check_int("num_classes", num_classes, minimum=2, maximum=100_000)
        if clusters is not None:
            check_int("prior clusters", clusters, minimum=2, maximum=1000)
            check_int("cluster_features", cluster_features, maximum=1 << 20)
            if num_classes is not None:
                raise ConfigError("a prior is conditioned on classes (num_classes) or on clusters (prior_clusters), "
                                  "not both; drop one of them.")
        dilations = check_dilations(dilations, num_layers, grid_size)

        def factory() -> dict[str, nn.Module]:
            nets: dict[str, nn.Module] = {
                "embedding": nn.Embedding(num_codes, embedding_dim),
                "net": GatedPixelCNNNet(embedding_dim, channels, num_layers, kernel_size, 1, head_channels,
                                        num_classes or clusters, dilations, out_channels=num_codes)}
            if clusters is not None:
                nets["cluster_set"] = ClusterSet(clusters, cluster_features)
            return nets
        self._build(factory)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.config.grid_size, self.config.grid_size)

    def _inputs(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embedding(codes).permute(0, 3, 1, 2)

    def logits(self, codes: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, num_codes, H, W)`` logits of every position given the codes before it (raster order)."""
        return self.net(self._inputs(codes), class_labels)

    def log_prob(self, codes: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(c)`` (``log p(c | y)``) of each code grid ``(B, H, W)`` in nats: ``(B,)``."""
        return -F.cross_entropy(self.logits(codes, class_labels), codes, reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample_codes(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
                     class_labels: torch.Tensor | None = None, codes: torch.Tensor | None = None,
                     known: torch.Tensor | None = None) -> torch.Tensor:
        """Code grids ``(N, H, W)`` drawn position by position; with ``codes`` and ``known`` (``(N, H, W)`` bool),
        the known positions are kept and the others drawn given the positions before them.

        ``temperature`` divides the logits. Uses the cached one-position-at-a-time pass of
        :class:`~vaegan.models.masked.CachedPass` (the same draws as one full pass per position).
        """
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")
        height, width = self.grid_shape
        device = self.embedding.weight.device
        if codes is None:
            codes = torch.zeros(num_samples, height, width, dtype=torch.long, device=device)
            known = torch.zeros_like(codes, dtype=torch.bool)
        codes = codes.clone()
        x = self._inputs(codes) * known[:, None].to(self.embedding.weight.dtype)  # unknown positions: zeros
        draw_device = generator.device if generator is not None else torch.device("cpu")
        with self._eval_mode():
            cached = CachedPass(self.net, x, class_labels)
            for i in range(height):
                for j in range(width):
                    logits = cached.logits(i, j)
                    uniform = torch.rand(len(codes), generator=generator, device=draw_device).to(device)
                    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)
                    drawn = torch.searchsorted(cdf, uniform[:, None]).squeeze(-1).clamp_max(self.config.num_codes - 1)
                    codes[:, i, j] = torch.where(known[:, i, j], codes[:, i, j], drawn)
                    x[:, :, i, j] = self.embedding(codes[:, i, j])
        return codes
