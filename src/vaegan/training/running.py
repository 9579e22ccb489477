"""What keeps the training step fast: no host sync per step; optional compile and channels-last.

Losses are summed on the device between two logging steps, so a step never waits for the host.

``float(loss)`` or ``loss.item()`` after every step makes the host wait for the accelerator to finish that step
(on a GPU the next step cannot be queued meanwhile). The sums stay tensors; :meth:`RunningMeans.reduce`
synchronises once, for every logged value and every process together, at ``train.log_every``. A NaN or
infinite loss makes its sum non-finite, so the same synchronisation is also the divergence check.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class RunningMeans:
    """Per-name sums (device tensors) and counts (host ints) of the values logged since the last :meth:`clear`."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

    def reduce(self, accelerator: Any) -> dict[str, float]:
        """Means over the steps since :meth:`clear` and over all processes: one all-reduce, one host sync."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        stacked = torch.stack([self.sums[name] for name in names]).to(accelerator.device)
        totals = accelerator.reduce(stacked, "sum").tolist()
        world = accelerator.num_processes
        return {name: total / (self.counts[name] * world) for name, total in zip(names, totals, strict=True)}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()


def prepare_networks(model: torch.nn.Module, *, compile: bool, channels_last: bool) -> None:
    """``train.channels_last``: NHWC weights (faster convolutions on tensor cores); ``train.compile``: compile each
    network (``nn.Module.compile`` compiles in place, so parameter names and saved files stay the same)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for network in model.children():
            network.compile()


def non_finite(means: dict[str, float]) -> list[str]:
    """Names of the values that are NaN or infinite."""
    return [name for name, value in means.items() if not math.isfinite(value)]
