"""Vector quantization with an exponential-moving-average codebook and dead-code restarts.

:class:`EMAVectorQuantizer` is diffusers' ``VectorQuantizer`` (its ``embedding`` and ``get_codebook_entry``; the
nearest-code search by ``cdist``) with the codebook learned as in van den Oord et al. (2017, appendix) and Razavi et
al. (2019): each code moves to the running mean of the encoder outputs assigned to it (``ema_count`` /
``ema_weight`` buffers, saved with the weights, so a resumed run continues exactly). A code whose running count
falls below ``dead_code_threshold`` is *dead*; it restarts at an encoder output of the current batch (Dhariwal et
al., 2020). The encoder gets the commitment loss and straight-through gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import VectorQuantizer


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over the processes of a distributed run (every process then updates its codebook alike)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
    return tensor


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast(tensor, src=0)
    return tensor


class EMAVectorQuantizer(VectorQuantizer):
    """Nearest-code quantization of ``(B, D, H, W)`` latents into ``num_codes`` codes of ``code_dim`` values.

    ``ema_decay=None`` learns the codebook by gradients instead (diffusers' codebook loss, no restarts).
    """

    def __init__(self, num_codes: int, code_dim: int, commitment_cost: float, ema_decay: float | None,
                 dead_code_threshold: float):
        super().__init__(num_codes, code_dim, beta=commitment_cost, legacy=False, sane_index_shape=True)
        self.ema_decay, self.dead_code_threshold = ema_decay, dead_code_threshold
        # Zero counts: every code is dead before the first update, so the first batch places the whole codebook
        # on encoder outputs (a data-dependent start).
        self.register_buffer("ema_count", torch.zeros(num_codes))
        self.register_buffer("ema_weight", self.embedding.weight.detach().clone())

    def codes(self, latents: torch.Tensor) -> torch.Tensor:
        """The index of the nearest code of every position: ``(B, H, W)`` long."""
        flat = latents.permute(0, 2, 3, 1).reshape(-1, self.vq_embed_dim)
        return torch.cdist(flat, self.embedding.weight).argmin(1).view(latents.shape[0], *latents.shape[2:])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, H, W)`` -> their codebook vectors ``(B, D, H, W)``."""
        return self.get_codebook_entry(codes.reshape(-1), (*codes.shape, self.vq_embed_dim))

    def quantize(self, latents: torch.Tensor, update: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Straight-through quantized latents, the codebook / commitment loss and the codes ``(B, H, W)``.

        ``update`` (training of the autoencoder only): move the codebook by EMA and restart dead codes first.
        """
        if update and self.ema_decay is not None:
            self._update(latents.detach())
        codes = self.codes(latents)
        quantized = self.lookup(codes)
        loss = self.beta * F.mse_loss(latents, quantized.detach())
        if self.ema_decay is None:  # the codebook learns from gradients
            loss = loss + F.mse_loss(quantized, latents.detach())
        return latents + (quantized - latents).detach(), loss, codes

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """diffusers' interface (``VQModel.decode`` without ``force_not_quantize``); never updates the codebook."""
        quantized, loss, codes = self.quantize(z)
        return quantized, loss, (None, None, codes)

    @torch.no_grad()
    def _update(self, latents: torch.Tensor) -> None:
        flat = latents.permute(0, 2, 3, 1).reshape(-1, self.vq_embed_dim).float()
        codes = torch.cdist(flat, self.embedding.weight.float()).argmin(1)
        one_hot = F.one_hot(codes, self.n_e).float()
        counts, sums = _all_reduce(one_hot.sum(0)), _all_reduce(one_hot.T @ flat)
        decay = self.ema_decay
        self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_weight.mul_(decay).add_(sums, alpha=1 - decay)
        dead = self.ema_count < self.dead_code_threshold
        if dead.any():
            # Restart each dead code at a random encoder output of this batch (rank 0's choice everywhere).
            picks = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
            self.ema_weight[dead] = _broadcast(flat[picks].contiguous()) * self.dead_code_threshold
            self.ema_count[dead] = self.dead_code_threshold
        # Laplace smoothing keeps a code with a tiny count from dividing by (almost) zero.
        total = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (total + self.n_e * 1e-5) * total
        self.embedding.weight.copy_(self.ema_weight / smoothed[:, None])
