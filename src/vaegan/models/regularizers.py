"""Discriminator regularisers: spectral normalisation (Miyato et al., 2018), R1 penalty (Mescheder et al., 2018)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def apply_spectral_norm(network: nn.Module) -> nn.Module:
    """Spectrally normalise the weight of every conv, linear and embedding layer of ``network`` in place (returns it).

    Embeddings are the class projection of a conditional discriminator (normalised as in Miyato & Koyama, 2018).

    Uses torch's parametrization: the layer's ``weight`` becomes ``W / sigma(W)``, ``sigma`` estimated by one
    power-iteration step per training forward pass; its vectors ``_u`` / ``_v`` are buffers, saved with the model.
    """
    for module in list(network.modules()):
        if isinstance(module, nn.Conv2d | nn.Linear | nn.ConvTranspose2d | nn.Embedding):
            spectral_norm(module)
    return network


def r1_penalty(outputs: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``E[||grad_x D(x)||^2]`` for D's ``outputs`` on real images ``real`` (which must require grad).

    Multiply by ``gamma / 2`` for the R1 term; the graph is kept, so the penalty trains D's weights.
    """
    (grad,) = torch.autograd.grad(outputs.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
