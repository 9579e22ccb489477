"""Likelihood and reconstruction metrics on held-out images.

* ``elbo_nll``: the negative evidence lower bound ``E_q[-log p(x|z)] + KL(q(z|x) || p(z))`` (analytic KL, the
  expectation over the same ``k`` posterior draws as the IWAE bound), in nats per image;
* ``iwae_nll``: the negative importance-weighted bound of Burda et al. (2016),
  ``-log (1/k) sum_i p(x, z_i) / q(z_i|x)`` with ``z_i ~ q(z|x)``, tighter than the ELBO and approaching
  ``-log p(x)`` as ``k`` grows;
* ``*_bpd``: the same in bits per dimension (divided by ``C * H * W * ln 2``);
* ``recon_mse``: mean squared error per pixel of ``model.reconstruct(x)`` (AEs and VAEs).

``p(x|z)`` is the model's own decoder likelihood: Bernoulli over pixel intensities in [0, 1] for
``reconstruction_loss: bce`` (as in the VAE literature on grey MNIST; not a normalised density for non-binary
pixels), a Gaussian with the variance implied by ``mse_weight`` for ``mse``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LOG_2PI = math.log(2 * math.pi)
#: Upper bound on decoder passes in one forward (images x posterior draws), to keep memory bounded.
_MAX_PASSES = 2000


def _log_likelihood(model, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``log p(x|z)`` per row, summed over pixels."""
    if model.config.reconstruction_loss == "bce":
        return -F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
    dims = images[0].numel()
    variance = dims / (2.0 * model.config.mse_weight)  # the Gaussian whose NLL is the training loss (+ const)
    squared = (torch.sigmoid(logits) - images).pow(2).flatten(1).sum(1)
    return -squared / (2 * variance) - 0.5 * dims * (_LOG_2PI + math.log(variance))


@torch.no_grad()
def likelihood_bounds(model, images: torch.Tensor, *, k: int = 1000, generator: torch.Generator | None = None,
                      batch_size: int = 50, progress: bool = False,
                      class_labels: torch.Tensor | None = None) -> dict[str, float]:
    """``elbo_nll`` / ``iwae_nll`` (nats per image) and ``elbo_bpd`` / ``iwae_bpd`` of a VAE on ``images`` in [0, 1].

    Memory stays bounded: images go ``batch_size`` at a time and their ``k`` posterior draws in chunks. A
    class-conditional VAE needs the images' ``class_labels`` (the bounds are then on ``log p(x | y)``).
    """
    from ..models.conditioning import call
    if k < 1:
        raise ValueError(f"the IWAE bound needs k >= 1 posterior samples, got {k}.")
    model.eval()
    images = images.to(model.device, torch.float64 if model.dtype == torch.float64 else torch.float32)
    elbo_total, iwae_total = 0.0, 0.0
    chunk = max(1, _MAX_PASSES // batch_size)
    from tqdm.auto import tqdm

    batches = images.split(batch_size)
    label_batches = [None] * len(batches) if class_labels is None else class_labels.to(model.device).split(batch_size)
    for x, y in tqdm(list(zip(batches, label_batches, strict=True)), desc=f"likelihood (k={k})", unit="batch",
                     leave=False, disable=not progress or None):
        dist = model.encode(x, class_labels=y).latent_dist if y is not None else model.encode(x).latent_dist
        mean, std, logvar = dist.mean, dist.std, dist.logvar
        kl = dist.kl()
        log_weights, recon_sum = [], torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for start in range(0, k, chunk):
            n = min(chunk, k - start)
            eps = torch.randn((n, *mean.shape), generator=generator, dtype=mean.dtype).to(mean.device)
            z = mean + std * eps  # (n, B, d)
            logits = call(model.decoder, z.reshape(-1, z.shape[-1]), None if y is None else y.repeat(n))
            log_px = _log_likelihood(model, logits, x.repeat(n, *([1] * (x.ndim - 1)))).view(n, len(x))
            log_pz = -0.5 * (_LOG_2PI + z.pow(2)).sum(-1)
            log_qz = -0.5 * (_LOG_2PI + logvar + eps.pow(2)).sum(-1)
            log_weights.append((log_px + log_pz - log_qz).double())
            recon_sum += log_px.double().sum(0)
        iwae = torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)
        elbo = recon_sum / k - kl.double()
        elbo_total -= float(elbo.sum())
        iwae_total -= float(iwae.sum())
    per_dim = images[0].numel() * math.log(2)
    n = len(images)
    return {"elbo_nll": elbo_total / n, "iwae_nll": iwae_total / n,
            "elbo_bpd": elbo_total / n / per_dim, "iwae_bpd": iwae_total / n / per_dim}


@torch.no_grad()
def reconstruction_mse(model, images: torch.Tensor, batch_size: int = 500,
                       class_labels: torch.Tensor | None = None) -> float:
    """Mean squared error per pixel between ``images`` and ``model.reconstruct(images)`` (with their
    ``class_labels`` for a class-conditional model)."""
    total = 0.0
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        extra = {} if class_labels is None else {"class_labels": class_labels[start:start + batch_size]}
        total += float((model.reconstruct(x, **extra).float().cpu() - x.float()).pow(2).flatten(1).mean(1).sum())
    return total / len(images)
