"""Paths between two latent vectors."""

from __future__ import annotations

import torch

from .errors import ConfigError

MODES = ("slerp", "lerp")


def interpolation_weights(steps: int, device: torch.device | None = None) -> torch.Tensor:
    if steps < 2:
        raise ConfigError(f"steps must be >= 2 (the two end points included), got {steps}.")
    return torch.linspace(0.0, 1.0, steps, device=device)


def lerp(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the straight line from ``start`` to ``end`` (1-D vectors) -> ``(steps, D)``."""
    t = interpolation_weights(steps, start.device).to(start.dtype)[:, None]
    return (1 - t) * start + t * end


def slerp(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of Gaussian samples along the path.

    Falls back to ``lerp`` when the two vectors are (anti-)parallel, where the arc is undefined.
    """
    a, b = start.cpu().double(), end.cpu().double()  # float64 on the CPU: some accelerators (MPS) lack it
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return lerp(start, end, steps)
    t = interpolation_weights(steps).double()[:, None]
    path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return path.to(start.device, start.dtype)


def interpolate_latents(start: torch.Tensor, end: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """Latent path of ``steps`` points between two latent vectors with ``mode`` 'slerp' or 'lerp'."""
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not supported; allowed values: 'slerp', 'lerp'.")
    start, end = start.reshape(-1), end.reshape(-1)
    if start.shape != end.shape:
        raise ValueError(f"start and end latents differ in size: {tuple(start.shape)} vs {tuple(end.shape)}.")
    return slerp(start, end, steps) if mode == "slerp" else lerp(start, end, steps)
