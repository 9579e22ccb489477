"""Network building blocks: the textbook conv encoder/decoder, MLPs and DCGAN stacks.

Every block maps images of shape ``(B, C, H, W)`` to vectors or back; output activations
(sigmoid, tanh) are left to the model that owns the block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}
NORMS = ("batch", "instance", "layer", "none", "spectral")  # spectral: see regularizers.apply_spectral_norm


def _norm2d(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "instance":
        return [nn.InstanceNorm2d(channels, affine=True)]
    if kind == "layer":
        return [nn.GroupNorm(1, channels)]
    return []


def conv_start_size(image_size: int, strides: Sequence[int], field: str = "strides") -> int:
    """Spatial size after the encoder's strides; the decoder's transposed convs undo them exactly."""
    factor = math.prod(strides)
    if image_size % factor:
        raise ConfigError(
            f"{field}={list(strides)} downsample by {factor}, but image_size={image_size} is not divisible "
            f"by {factor}. Use an image size that is a multiple of {factor} or change {field}."
        )
    return image_size // factor


def dcgan_upsamplings(image_size: int) -> int:
    """Number of stride-2 stages: halve image_size while it stays even and at least 4 (28 -> 7, 64 -> 4)."""
    stages, size = 0, image_size
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        stages += 1
    if stages == 0:
        raise ConfigError(
            f"image_size={image_size} cannot be built by the dcgan architecture: it must be even and >= 8 "
            "(e.g. 28, 32, 64). Use architecture='mlp' for other sizes."
        )
    return stages


class ConvEncoder(nn.Module):
    """Conv stack (``padding = kernel // 2``) -> flatten -> linear head with ``out_features`` outputs."""

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int], strides: Sequence[int],
                 kernel_size: int, out_features: int, activation: str, batch_norm: bool, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        size, prev = image_size, in_channels
        for out, stride in zip(channels, strides, strict=True):
            layers.append(nn.Conv2d(prev, out, kernel_size, stride=stride, padding=kernel_size // 2))
            layers += _norm2d("batch" if batch_norm else "none", out)
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev, size = out, size // stride
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(prev * size * size, out_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class ConvDecoder(nn.Module):
    """Linear -> reshape to the encoder's last feature map -> transposed convs back to the image (logits)."""

    def __init__(self, latent_dim: int, image_size: int, out_channels: int, in_feature_channels: int,
                 channels: Sequence[int], strides: Sequence[int], kernel_size: int, activation: str,
                 batch_norm: bool, dropout: float):
        super().__init__()
        self.start_size = conv_start_size(image_size, strides)
        self.in_feature_channels = in_feature_channels
        self.project = nn.Linear(latent_dim, in_feature_channels * self.start_size**2)
        layers: list[nn.Module] = []
        widths = [*channels, out_channels]
        prev = in_feature_channels
        for i, (out, stride) in enumerate(zip(widths, strides, strict=True)):
            layers.append(nn.ConvTranspose2d(prev, out, kernel_size, stride=stride, padding=kernel_size // 2,
                                             output_padding=stride - 1))
            if i < len(widths) - 1:
                layers += _norm2d("batch" if batch_norm else "none", out)
                layers.append(ACTIVATIONS[activation]())
                if dropout:
                    layers.append(nn.Dropout(dropout))
            prev = out
        self.layers = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.project(latents).view(-1, self.in_feature_channels, self.start_size, self.start_size)
        return self.layers(x)


class MLP(nn.Module):
    """Fully-connected stack ``in -> hidden... -> out``; flattens image inputs, reshapes to ``out_shape``."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, activation: str,
                 batch_norm: bool = False, dropout: float = 0.0, out_shape: tuple[int, ...] | None = None):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for width in hidden:
            layers.append(nn.Linear(prev, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))
            prev = width
        layers.append(nn.Linear(prev, out_features))
        self.layers = nn.Sequential(*layers)
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out.view(-1, *self.out_shape) if self.out_shape else out


class DCGANGenerator(nn.Module):
    """Latent -> linear projection to a small feature map -> stride-2 transposed convs with batch-norm."""

    def __init__(self, latent_dim: int, image_size: int, channels: int, base_channels: int):
        super().__init__()
        stages = dcgan_upsamplings(image_size)
        self.start_size = image_size >> stages
        self.start_channels = base_channels * 2 ** (stages - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, self.start_channels * self.start_size**2, bias=False),
            nn.Unflatten(1, (self.start_channels, self.start_size, self.start_size)),
            nn.BatchNorm2d(self.start_channels),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        width = self.start_channels
        for stage in range(stages):
            last = stage == stages - 1
            out = channels if last else width // 2
            layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.layers = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(self.project(latents))


class DCGANDiscriminator(nn.Module):
    """Stride-2 convs with LeakyReLU (no norm on the first) -> linear to one logit / critic value."""

    def __init__(self, image_size: int, channels: int, base_channels: int, norm: str):
        super().__init__()
        stages = dcgan_upsamplings(image_size)
        layers: list[nn.Module] = []
        prev, width = channels, base_channels
        for stage in range(stages):
            bias = stage == 0 or norm in ("none", "spectral")  # a following norm layer has its own shift
            layers.append(nn.Conv2d(prev, width, 4, stride=2, padding=1, bias=bias))
            if stage:
                layers += _norm2d(norm, width)
            layers.append(nn.LeakyReLU(0.2))
            prev, width = width, width * 2
        size = image_size >> stages
        self.layers = nn.Sequential(*layers, nn.Flatten(), nn.Linear(prev * size * size, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)
