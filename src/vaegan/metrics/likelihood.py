"""Likelihood and reconstruction metrics on held-out images, computed by the model's own methods.

* ``nll``: the exact negative log-likelihood ``-log p(x)`` of a model with the ``log_likelihood`` capability
  (an explicit-density family), in nats per image;
* ``elbo_nll`` / ``iwae_nll``: the negated lower bounds of a model with the ``likelihood_bounds`` capability (the
  VAE: :meth:`vaegan.VAE.likelihood_bounds`), in nats per image;
* ``bpd`` / ``*_bpd``: the same in bits per dimension (divided by ``C * H * W * ln 2``);
* ``recon_mse``: mean squared error per pixel of ``model.reconstruct(x)`` (the ``reconstruction`` capability).
* ``codebook_perplexity`` / ``dead_codes``: how much of its codebook a quantized model uses on held-out images
  (``model.encode_codes``, the ``codes`` capability).

This module only batches images and averages; what ``p(x)`` means is the model's business.
"""

from __future__ import annotations

import math

import torch


def _batches(images: torch.Tensor, class_labels: torch.Tensor | None, batch_size: int):
    """``(images, labels)`` pairs of at most ``batch_size`` rows (labels None for an unconditional model)."""
    parts = images.split(batch_size)
    labels = [None] * len(parts) if class_labels is None else list(torch.as_tensor(class_labels).split(batch_size))
    return list(zip(parts, labels, strict=True))


def _require(model, capability: str, metric: str) -> None:
    if not model.supports(capability):
        raise ValueError(f"{type(model).__name__} has no {capability.replace('_', ' ')} (method {capability}), so "
                         f"{metric} cannot be computed for it.")


def _bits_per_dim(nats: float, images: torch.Tensor) -> float:
    return nats / (images[0].numel() * math.log(2))


@torch.no_grad()
def likelihood_bounds(model, images: torch.Tensor, *, k: int = 1000, generator: torch.Generator | None = None,
                      batch_size: int = 50, progress: bool = False,
                      class_labels: torch.Tensor | None = None) -> dict[str, float]:
    """``elbo_nll`` / ``iwae_nll`` (nats per image) and ``elbo_bpd`` / ``iwae_bpd`` of ``model`` on ``images`` in
    [0, 1], from ``model.likelihood_bounds`` with ``k`` posterior draws per image.

    Images go ``batch_size`` at a time (the model chunks their ``k`` draws), so memory stays bounded. A
    class-conditional model needs the images' ``class_labels`` (the bounds are then on ``log p(x | y)``).
    """
    from tqdm.auto import tqdm

    _require(model, "likelihood_bounds", "elbo_nll / iwae_nll")
    elbo_total, iwae_total = 0.0, 0.0
    for x, y in tqdm(_batches(images, class_labels, batch_size), desc=f"likelihood (k={k})", unit="batch",
                     leave=False, disable=not progress or None):
        bounds = model.likelihood_bounds(x, k=k, generator=generator, class_labels=y)
        elbo_total -= float(bounds["elbo"].double().sum())
        iwae_total -= float(bounds["iwae"].double().sum())
    n = len(images)
    return {"elbo_nll": elbo_total / n, "iwae_nll": iwae_total / n,
            "elbo_bpd": _bits_per_dim(elbo_total / n, images), "iwae_bpd": _bits_per_dim(iwae_total / n, images)}


@torch.no_grad()
def exact_nll(model, images: torch.Tensor, class_labels: torch.Tensor | None = None,
              batch_size: int = 100) -> dict[str, float]:
    """``nll`` (``-log p(x)``, nats per image) and ``bpd`` (bits per dimension) of ``model`` on ``images`` in [0, 1],
    from ``model.log_likelihood`` (with the images' ``class_labels`` for a class-conditional model)."""
    _require(model, "log_likelihood", "nll / bpd")
    was_training = model.training
    model.eval()
    try:
        total = -sum(float(model.log_likelihood(x, class_labels=y).double().sum())
                     for x, y in _batches(images, class_labels, batch_size))
    finally:
        model.train(was_training)
    nll = total / len(images)
    return {"nll": nll, "bpd": _bits_per_dim(nll, images)}


@torch.no_grad()
def reconstruction_mse(model, images: torch.Tensor, batch_size: int = 500,
                       class_labels: torch.Tensor | None = None) -> float:
    """Mean squared error per pixel between ``images`` and ``model.reconstruct(images)`` (with their
    ``class_labels`` for a class-conditional model)."""
    _require(model, "reconstruction", "recon_mse")
    total = 0.0
    for x, y in _batches(images, class_labels, batch_size):
        total += float((model.reconstruct(x, class_labels=y).float().cpu() - x.float()).pow(2).flatten(1).mean(1).sum())
    return total / len(images)


@torch.no_grad()
def codebook_usage(model, images: torch.Tensor, batch_size: int = 500,
                   class_labels: torch.Tensor | None = None) -> dict[str, float]:
    """``codebook_perplexity`` (``exp`` of the entropy of the code histogram of ``images``) and ``dead_codes`` (codes
    no image uses) of a model with the ``codes`` capability."""
    _require(model, "codes", "codebook_perplexity / dead_codes")
    counts = torch.zeros(model.codebook_size, dtype=torch.float64)
    for x, y in _batches(images, class_labels, batch_size):
        codes = model.encode_codes(x, class_labels=y).cpu().flatten()
        counts += torch.bincount(codes, minlength=model.codebook_size).double()
    probs = counts / counts.sum()
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return {"codebook_perplexity": float(entropy.exp()), "dead_codes": float((counts == 0).sum())}
