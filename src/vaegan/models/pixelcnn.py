"""The Gated PixelCNN (van den Oord et al., 2016): an explicit, tractable density over images.

``p(x) = prod_i p(x_i | x_<i)`` over the pixels in raster order, each conditional computed by masked
convolutions (:mod:`vaegan.models.masked`), so the log-likelihood of an image is exact and costs one pass.
Sampling and completion draw the pixels one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config

from ..errors import ConfigError
from . import conditioning
from .base import GenerativeModel
from .clusters import MAX_CLUSTER_SIDE, ClusterSet, sampling_conditions
from .masked import CachedPass, GatedPixelCNNNet
from .validation import MAX_IMAGE_SIZE, check_choice, check_int

OUTPUTS = ("bernoulli", "categorical")
SAMPLERS = ("cached", "textbook")
#: Grey (or colour) levels per sub-pixel of the ``categorical`` output.
LEVELS = 256


def check_dilations(dilations: Sequence[int] | None, num_layers: int, image_size: int) -> list[int] | None:
    """``dilations`` as a list after checking it has one entry >= 1 per layer, the first 1 (the layer that masks
    the current pixel); None stays None (1 for every layer)."""
    if dilations is None:
        return None
    values = list(dilations) if isinstance(dilations, list | tuple) else None
    if values is None or len(values) != num_layers:
        raise ConfigError(f"dilations must be a list with one entry per layer ({num_layers}, num_layers), got "
                          f"{dilations!r}.")
    for value in values:
        check_int("every dilation", value, maximum=image_size)
    if values[0] != 1:
        raise ConfigError(f"the first layer's dilation must be 1 (it masks the current pixel), got {values[0]}; "
                          f"e.g. dilations: [1, 2, 4, 8, ...].")
    return values


class PixelCNN(GenerativeModel):
    r"""Gated PixelCNN: exact log-likelihoods, sampling and completion, pixel by pixel in raster order.

    Parameters:
        image_size: height and width of the (square) images.
        in_channels: channels per pixel; they are predicted together from the pixels before.
        output: ``"bernoulli"`` (binary pixels, e.g. binarized MNIST: train with ``data.binarize``) or
            ``"categorical"`` (256 levels per sub-pixel with a softmax; bits per dimension as in the papers).
        channels: width of both stacks.
        num_layers: gated layers (the first reads the image with the current pixel masked).
        kernel_size: odd size of the masked convolutions (3 sees one pixel on each side per layer).
        dilations: spacing of each layer's taps, one per layer, the first 1 (e.g. ``[1, 2, 4, 8, 1, 2, 4, 8]``:
            the vertical stack then reaches 30 rows up instead of 8); null: 1 for every layer.
        head_channels: width of the ``1 x 1`` output network.
        num_classes: class-conditional with this many classes (a learned class bias in every gated layer).
        class_names: optional names of the classes.
        clusters: an unconditional mixture of this many PixelCNNs that share their weights, each conditioned on one
            k-means cluster of the training images as on a class (fitted before the first step; Sage et al., 2018
            do this for GANs): ``p(x) = sum_k w_k p(x | k)`` with the clusters' training shares ``w_k``. Sampling
            draws a cluster first, a global choice the pixels then follow; the exact likelihood sums over all
            clusters (one pass each). Training reads each image's nearest cluster.
    """

    family = "pixelcnn"

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        output: str = "bernoulli",
        channels: int = 64,
        num_layers: int = 8,
        kernel_size: int = 3,
        head_channels: int = 128,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        dilations: Sequence[int] | None = None,
        clusters: int | None = None,
    ):
        super().__init__()
        check_int("image_size", image_size, minimum=2, maximum=MAX_IMAGE_SIZE)
        check_int("in_channels", in_channels, maximum=64)
        check_choice("output", output, OUTPUTS)
        check_int("channels", channels, maximum=4096)
        check_int("num_layers", num_layers, maximum=128)
        if check_int("kernel_size", kernel_size, minimum=3, maximum=15) % 2 == 0:
            raise ConfigError(f"kernel_size must be odd (3, 5, ...), got {kernel_size}.")
        check_int("head_channels", head_channels, maximum=4096)
        conditioning.check_class_config(num_classes, class_names)
        if clusters is not None:
            check_int("clusters", clusters, minimum=2, maximum=1000)
            if num_classes is not None:
                raise ConfigError("clusters (an unconditional mixture over k-means clusters) and num_classes (a "
                                  "class-conditional PixelCNN) exclude each other; drop one of them.")
        dilations = check_dilations(dilations, num_layers, image_size)

        def factory() -> dict[str, torch.nn.Module]:
            nets = {"net": GatedPixelCNNNet(in_channels, channels, num_layers, kernel_size, self.levels, head_channels,
                                            num_classes or clusters, dilations)}
            if clusters is not None:
                side = min(image_size, MAX_CLUSTER_SIDE)
                nets["cluster_set"] = ClusterSet(clusters, in_channels * side * side)
            return nets
        self._build(factory)

    @property
    def _clusters(self) -> ClusterSet | None:
        return self.cluster_set if self.config.clusters else None

    @property
    def can_sample(self) -> bool:
        return not self.config.clusters or self.cluster_set.fitted

    def on_train_start(self, batches: Iterable[torch.Tensor]) -> None:
        """A mixture over clusters clusters the training images first (unless it has its clusters already)."""
        if self.config.clusters and not self.cluster_set.fitted:
            self.cluster_set.fit(batches)

    def card_sections(self) -> list[str]:
        if not self.config.clusters:
            return []
        return [f"It is a mixture over {self.config.clusters} k-means clusters of its training images (no labels): "
                "one network reads the cluster as a class; `sample` draws a cluster with its training share, then the "
                "pixels, and `log_likelihood` is exact, summed over the clusters."]

    @property
    def levels(self) -> int:
        """Values a sub-pixel takes: 2 (one logit) for ``bernoulli``, 256 for ``categorical``."""
        return 1 if self.config.output == "bernoulli" else LEVELS

    # ------------------------------------------------------------------ density
    def _logits(self, images: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        """``(B, C, H, W)`` logits (bernoulli) or ``(B, C, levels, H, W)`` (categorical) of every pixel."""
        out = self.net(images * 2 - 1, class_labels)
        if self.levels == 1:
            return out
        b, _, h, w = out.shape
        return out.view(b, self.config.in_channels, self.levels, h, w)

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), got "
                             f"{tuple(images.shape)}.")
        return images.to(self.device, self.dtype)

    def _log_probs(self, images: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        logits = self._logits(images, class_labels)
        if self.levels == 1:
            return -F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
        targets = (images * (LEVELS - 1)).round().long().clamp(0, LEVELS - 1)
        return -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").flatten(1).sum(1)

    def log_likelihood(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` (``log p(x | y)`` with labels) of each image in nats, ``(B,)``.

        A ``bernoulli`` model needs binary images (0 or 1: binarize grey images first); a ``categorical`` one reads
        ``round(255 x)`` of images in [0, 1].
        """
        images = self._check_images(images)
        if self.levels == 1 and not torch.all((images == 0) | (images == 1)):
            raise ValueError("a bernoulli PixelCNN's likelihood needs binary images (every pixel 0 or 1); binarize "
                             "them first, e.g. (images > torch.rand_like(images)).float() or data.binarize.")
        labels = self.prepare_class_labels(class_labels, len(images))
        with self._eval_mode():
            if not self.config.clusters:
                return self._log_probs(images, labels)
            if not self.cluster_set.fitted:
                raise RuntimeError("This PixelCNN is a mixture over k-means clusters that are not fitted yet; train "
                                   "it with vaegan's trainer first.")
            per_cluster = torch.stack([  # log w_k + log p(x | k), one pass per cluster
                self._log_probs(images, torch.full((len(images),), k, device=images.device)) + torch.log(weight)
                for k, weight in enumerate(self.cluster_set.weights.to(images.dtype))], dim=1)
            return torch.logsumexp(per_cluster, dim=1)

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.config.clusters:
            class_labels = self.cluster_set.assign(images)  # each image trains its nearest cluster (hard assignment)
        nll = -self._log_probs(images, class_labels).mean()
        return {"loss": nll, "bpd": nll.detach() / (math.prod(self.image_shape) * math.log(2))}

    # ------------------------------------------------------------------ sampling and completion
    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float | None = None,
               class_labels: conditioning.ClassLabels | None = None, sampler: str = "cached") -> torch.Tensor:
        """Draw ``num_samples`` images pixel by pixel: ``(N, C, H, W)`` in [0, 1].

        ``temperature`` divides the logits (below 1: more typical images). ``sampler="cached"`` (default) reuses
        every activation computed before (Ramachandran et al., 2017); ``"textbook"`` runs the whole network once
        per pixel. Both draw the same images for the same generator.
        """
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
        labels = sampling_conditions(self, self._clusters, class_labels, num_samples, generator, owner="PixelCNN")
        canvas = torch.zeros(num_samples, *self.image_shape, device=self.device, dtype=self.dtype)
        known = torch.zeros(num_samples, 1, *self.image_shape[1:], dtype=torch.bool, device=self.device)
        return self._draw(canvas, known, generator, temperature, labels, sampler)

    def complete(self, images: torch.Tensor, known_mask: torch.Tensor, generator: torch.Generator | None = None,
                 num_completions: int = 1, class_labels: conditioning.ClassLabels | None = None,
                 temperature: float | None = None, sampler: str = "cached") -> torch.Tensor:
        """Redraw the pixels where ``known_mask`` is False, in raster order, given the pixels before them.

        ``images``: ``(B, C, H, W)`` or ``(C, H, W)`` in [0, 1] (a ``bernoulli`` model keeps known pixels
        thresholded at 0.5). ``known_mask``: ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)``, True where a pixel is
        kept. Returns ``(B * num_completions, C, H, W)``, the completions of each image together.
        """
        images = torch.as_tensor(images)
        images = self._check_images(images.unsqueeze(0) if images.ndim == 3 else images)
        known = self._known_mask(known_mask, len(images))
        if not isinstance(num_completions, int) or num_completions < 1:
            raise ValueError(f"num_completions must be an integer >= 1, got {num_completions!r}.")
        if self.levels == 1:
            images = (images > 0.5).to(images.dtype)
        labels = sampling_conditions(self, self._clusters, class_labels, len(images), images=images, known=known,
                                     owner="PixelCNN")
        if labels is not None:
            labels = labels.repeat_interleave(num_completions)
        canvas = images.repeat_interleave(num_completions, dim=0)
        known = known.repeat_interleave(num_completions, dim=0)
        return self._draw(canvas, known, generator, temperature, labels, sampler)

    @torch.no_grad()
    def _draw(self, canvas: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None,
              temperature: float | None, labels: torch.Tensor | None, sampler: str) -> torch.Tensor:
        temperature = self.resolve_temperature(temperature)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, got {sampler!r}.")
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}.")
        batch, channels, height, width = canvas.shape
        x = canvas * 2 - 1  # the network's input scale
        device = canvas.device  # (ModelMixin.device walks the modules: not once per pixel)
        draw_device = generator.device if generator is not None else torch.device("cpu")
        with self._eval_mode():
            cached = CachedPass(self.net, x, labels) if sampler == "cached" else None
            for i in range(height):
                for j in range(width):
                    if cached is not None:
                        logits = cached.logits(i, j)
                    else:
                        logits = self.net(x, labels)[:, :, i, j]
                    uniform = torch.rand(batch, channels, generator=generator, device=draw_device).to(device)
                    value = self._pixel(logits.view(batch, channels, self.levels) / temperature, uniform)
                    keep = known[:, :, i, j]
                    canvas[:, :, i, j] = torch.where(keep, canvas[:, :, i, j], value.to(canvas.dtype))
                    x[:, :, i, j] = canvas[:, :, i, j] * 2 - 1
        return canvas

    def _pixel(self, logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """A value per sub-pixel in [0, 1] from ``(B, C, levels)`` logits by inverting the CDF at ``uniform``."""
        if self.levels == 1:
            return (uniform < torch.sigmoid(logits[..., 0].float())).float()
        cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)
        level = torch.searchsorted(cdf, uniform.unsqueeze(-1).float()).squeeze(-1).clamp_max(LEVELS - 1)
        return level.float() / (LEVELS - 1)
