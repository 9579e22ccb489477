"""Latent priors: one interface for the densities an AE or a VAE draws its latents from.

A :class:`LatentPrior` is an ``nn.Module`` whose state lives in buffers, so ``save_pretrained`` stores it in the
model's safetensors file and sampling needs torch only. It can be fitted to latents (``fit``), sampled (``sample``)
and evaluated (``log_prob``):

* :class:`StandardNormalPrior` — ``N(0, I)``, the VAE's prior (nothing to fit or store);
* :class:`GaussianPrior` — one full-covariance Gaussian fitted to a trained AE's latent codes;
* :class:`GaussianMixturePrior` — a mixture of full-covariance Gaussians fitted by EM (scikit-learn): Ghosh et al.
  (2020) show that sampling an AE's or a VAE's decoder from a density fitted to the training latents after
  training, rather than from the prior it was trained against, gives sharper samples and covers all modes.

:data:`PRIORS` maps the names a model's ``prior`` option takes to the classes; a new prior (a flow, a learned
prior over code grids) is one more implementation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import nn


class LatentPrior(nn.Module):
    """A density over ``latent_dim``-D latents: ``fit``, ``sample``, ``log_prob``; fitted state in buffers."""

    #: The name of the prior in a model's ``prior`` option.
    name: ClassVar[str] = ""
    #: Whether the prior must be fitted to latents before it can sample.
    needs_fit: ClassVar[bool] = True

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        if self.needs_fit:
            self.register_buffer("fitted", torch.zeros(()))

    @property
    def is_fitted(self) -> bool:
        """Whether the prior can sample (always for a prior without parameters to fit)."""
        return not self.needs_fit or bool(self.fitted.item())

    def fit(self, latents: torch.Tensor, seed: int = 0) -> None:
        """Fit the prior to ``latents`` ``(N, latent_dim)``, e.g. the training images' posterior means."""
        raise NotImplementedError(f"the {self.name} prior has nothing to fit.")

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        """``num_samples`` latents ``(num_samples, latent_dim)``; ``temperature`` scales the spread."""
        raise NotImplementedError

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` of each latent, nats: ``(N,)``."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"the {self.name} prior is not fitted yet: call fit(latents) first.")

    def _check_latents(self, latents: torch.Tensor, minimum: int) -> None:
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim or len(latents) < minimum:
            raise ValueError(f"fitting the {self.name} prior needs at least {minimum} latents of size "
                             f"{self.latent_dim}, got shape {tuple(latents.shape)}.")



class StandardNormalPrior(LatentPrior):
    """``N(0, I)``: the VAE's prior; nothing to fit and nothing stored."""

    name = "standard"
    needs_fit = False

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        # Follows the model's device and dtype; not saved (the prior has no state).
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        noise = randn_tensor((num_samples, self.latent_dim), generator=generator, device=self.anchor.device,
                             dtype=dtype or self.anchor.dtype)
        return noise * temperature

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        return -0.5 * (latents.pow(2) + math.log(2 * math.pi)).sum(-1)


class GaussianPrior(LatentPrior):
    """One full-covariance Gaussian ``N(mean, scale_tril scale_tril^T)`` fitted to latents (the AE's default)."""

    name = "gaussian"

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim))

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, seed: int = 0) -> None:
        # float64 on the CPU (some accelerators, e.g. MPS, lack it); copy_ moves the results to the buffers' device.
        data = latents.detach().to("cpu", torch.float64).reshape(len(latents), -1)
        self._check_latents(data, minimum=2)
        cov = torch.cov(data.T).reshape(self.latent_dim, self.latent_dim)
        jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(self.latent_dim, dtype=cov.dtype)
        self.mean.copy_(data.mean(0))
        self.scale_tril.copy_(torch.linalg.cholesky(cov + jitter))
        self.fitted.fill_(1.0)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        self._check_fitted()
        noise = randn_tensor((num_samples, self.latent_dim), generator=generator, device=self.mean.device,
                             dtype=dtype or self.mean.dtype)
        return self.mean.to(noise.dtype) + temperature * noise @ self.scale_tril.to(noise.dtype).T

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        x = (latents.to(self.mean.dtype) - self.mean).T
        solved = torch.linalg.solve_triangular(self.scale_tril, x, upper=False)
        log_det = self.scale_tril.diagonal().log().sum()
        return -0.5 * solved.pow(2).sum(0) - log_det - 0.5 * self.latent_dim * math.log(2 * math.pi)


class GaussianMixturePrior(LatentPrior):
    """``sum_k weights[k] N(means[k], scale_trils[k] scale_trils[k]^T)`` over ``latent_dim``-D latents."""

    name = "gmm"

    def __init__(self, latent_dim: int, components: int = 10):
        super().__init__(latent_dim)
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("scale_trils", torch.eye(latent_dim).repeat(components, 1, 1))

    @property
    def components(self) -> int:
        return len(self.weights)

    @torch.no_grad()
    def fit(self, latents: torch.Tensor, seed: int = 0, max_iter: int = 200) -> None:
        """Fit the mixture to ``latents`` ``(N, latent_dim)`` by EM (k-means initialisation, seeded)."""
        try:
            from sklearn.mixture import GaussianMixture
        except ImportError as err:
            raise ImportError("Fitting a Gaussian-mixture prior needs scikit-learn: pip install 'vaegan[train]' "
                              "(or pip install scikit-learn).") from err
        data = latents.detach().to("cpu", torch.float64).reshape(len(latents), -1)
        self._check_latents(data, minimum=self.components)
        mixture = GaussianMixture(self.components, covariance_type="full", max_iter=max_iter, random_state=seed)
        mixture.fit(data.numpy())
        covariances = torch.from_numpy(mixture.covariances_)  # includes scikit-learn's reg_covar on the diagonal
        self.weights.copy_(torch.from_numpy(mixture.weights_))
        self.means.copy_(torch.from_numpy(mixture.means_))
        self.scale_trils.copy_(torch.linalg.cholesky(covariances))
        self.fitted.fill_(1.0)

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        """``num_samples`` latents: a component per sample by its weight, then a draw from that Gaussian.

        ``temperature`` scales each component's spread (the means stay put).
        """
        device = self.means.device
        draw_device = generator.device if generator is not None else device
        uniform = torch.rand(num_samples, generator=generator, device=draw_device, dtype=torch.float64).to(device)
        cumulative = self.weights.to(torch.float64).cumsum(0)
        index = torch.searchsorted(cumulative, uniform * cumulative[-1], right=True).clamp_max(self.components - 1)
        noise = randn_tensor((num_samples, self.means.shape[1]), generator=generator, device=device,
                             dtype=self.means.dtype)
        latents = self.means[index] + temperature * torch.einsum("nij,nj->ni", self.scale_trils[index], noise)
        return latents.to(dtype or self.means.dtype)

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        x = latents.to(self.means.dtype).reshape(len(latents), 1, -1) - self.means  # (N, K, d)
        solved = torch.linalg.solve_triangular(self.scale_trils, x.transpose(0, 1).transpose(1, 2), upper=False)
        mahalanobis = solved.pow(2).sum(1).T  # (N, K)
        log_det = self.scale_trils.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        dim = self.means.shape[1]
        per_component = -0.5 * mahalanobis - log_det - 0.5 * dim * math.log(2 * math.pi)
        return torch.logsumexp(per_component + self.weights.log(), dim=1)


#: The priors a model's ``prior`` option names.
PRIORS: dict[str, type[LatentPrior]] = {cls.name: cls for cls in (StandardNormalPrior, GaussianPrior,
                                                                  GaussianMixturePrior)}


def build_prior(name: str, latent_dim: int, components: int = 10) -> LatentPrior:
    """An unfitted prior called ``name`` (a key of :data:`PRIORS`) over ``latent_dim``-D latents."""
    cls = PRIORS[name]
    return cls(latent_dim, components) if cls is GaussianMixturePrior else cls(latent_dim)
