"""An exponential moving average (EMA) of a network's weights, stored as buffers of the owning model.

Averaging the generator's weights over training (Karras et al., 2018; Yazici et al., 2019) gives markedly
cleaner samples than the last iterate of a GAN's oscillating game. The copy's weights are *buffers*, not
parameters: no optimizer or gradient touches them, ``save_pretrained`` writes them into the safetensors
file and Accelerate's ``save_state`` into every checkpoint, so a resumed run continues the same average.

After the ``t``-th update (``t`` = 1, 2, ...), every floating-point weight ``w`` of the copy is
``w_ema <- decay_t * w_ema + (1 - decay_t) * w`` with the warmed-up decay
``decay_t = min(decay, (1 + t) / (10 + t))`` (the ``num_updates`` rule of TensorFlow's and diffusers'
EMA), so the early average forgets the random initialisation quickly. Other buffers (batch-norm running
statistics) are copied from the network as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used by the ``updates``-th update (1-based): ``min(decay, (1 + updates) / (10 + updates))``."""
    return min(decay, (1 + updates) / (10 + updates))


class EMAWeights(nn.Module):
    """A frozen copy of ``network`` whose weights track an EMA of the original's; call it like the original."""

    def __init__(self, network: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.network = copy.deepcopy(network)
        for module in self.network.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                delattr(module, name)
                module.register_buffer(name, param.detach().clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def forward(self, *args, **kwargs):
        return self.network(*args, **kwargs)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """One EMA step towards ``network`` (the trained original)."""
        self.updates += 1
        decay = warmed_up_decay(self.decay, int(self.updates))
        averaged = dict(self.network.named_buffers())
        trained_params = dict(network.named_parameters())
        for name, tensor in [*trained_params.items(), *network.named_buffers()]:
            target = averaged[name]
            if name in trained_params and target.is_floating_point():
                target.lerp_(tensor.detach(), 1.0 - decay)
            else:
                target.copy_(tensor)
