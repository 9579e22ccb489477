"""Ex-post latent priors: a Gaussian mixture fitted to a trained autoencoder's latent codes.

Ghosh et al. (2020) show that sampling an AE's or a VAE's decoder from a density fitted to the training
set's latents after training (rather than from the prior it was trained against) gives sharper samples
and covers all modes. :class:`GaussianMixturePrior` fits ``components`` full-covariance Gaussians with
scikit-learn's ``GaussianMixture`` (EM; installed with ``vaegan[train]``) and keeps the result as buffers,
so ``save_pretrained`` stores it in the safetensors file; sampling needs torch only.
"""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import nn


class GaussianMixturePrior(nn.Module):
    """``sum_k weights[k] N(means[k], scale_trils[k] scale_trils[k]^T)`` over ``latent_dim``-D latents."""

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, latent_dim))
        self.register_buffer("scale_trils", torch.eye(latent_dim).repeat(components, 1, 1))
        self.register_buffer("fitted", torch.zeros(()))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

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
        dim = self.means.shape[1]
        if data.shape[1] != dim or len(data) < self.components:
            raise ValueError(f"fitting a {self.components}-component prior needs at least {self.components} latents "
                             f"of size {dim}, got shape {tuple(data.shape)}.")
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
