"""Latent priors: one interface for the densities an AE or a VAE draws its latents from.

A :class:`LatentPrior` is an ``nn.Module`` whose state lives in buffers, so ``save_pretrained`` stores it in the
model's safetensors file and sampling needs torch only. It can be fitted to latents (``fit``), sampled (``sample``)
and evaluated (``log_prob``):

* :class:`StandardNormalPrior` — ``N(0, I)``, the VAE's prior (nothing to fit or store);
* :class:`GaussianPrior` — one full-covariance Gaussian fitted to a trained AE's latent codes;
* :class:`GaussianMixturePrior` — a mixture of full-covariance Gaussians fitted by EM (scikit-learn): Ghosh et al.
  (2020) show that sampling an AE's or a VAE's decoder from a density fitted to the training latents after
  training, rather than from the prior it was trained against, gives sharper samples and covers all modes;
* :class:`FlowPrior` — a RealNVP normalizing flow (Dinh et al., 2017) fitted by maximum likelihood after training,
  as Pythae's flow samplers do: curved and non-Gaussian clusters a mixture of Gaussians can only approximate.

:data:`PRIORS` maps the names a model's ``prior`` option takes to the classes; a new prior (a learned prior over
code grids) is one more implementation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
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


class FlowPrior(LatentPrior):
    """A RealNVP flow: ``num_layers`` affine coupling layers with alternating masks over standardized latents.

    Each layer keeps the latent dimensions of one parity and moves the others by a shift and a log-scale (bounded
    by ``tanh``) that an MLP with two hidden layers of ``hidden_dim`` units computes from the kept ones, so both
    directions and the log-determinant are exact and cheap. Fitted by Adam on the training latents with a
    fixed seed (10% held out to keep the best state); all weights are buffers, so the model's safetensors file
    stores them and sampling needs torch only.
    """

    name = "flow"
    #: Names of the buffers holding the coupling networks' weights, stacked over the layers.
    WEIGHTS: ClassVar[tuple[str, ...]] = ("in_weight", "in_bias", "hidden_weight", "hidden_bias", "out_weight",
                                          "out_bias", "log_scale_limit")

    def __init__(self, latent_dim: int, num_layers: int = 6, hidden_dim: int = 64):
        super().__init__(latent_dim)
        d, h, n = latent_dim, hidden_dim, num_layers
        self.register_buffer("data_mean", torch.zeros(d))
        self.register_buffer("data_std", torch.ones(d))
        self.register_buffer("in_weight", torch.zeros(n, h, d))
        self.register_buffer("in_bias", torch.zeros(n, h))
        self.register_buffer("hidden_weight", torch.zeros(n, h, h))
        self.register_buffer("hidden_bias", torch.zeros(n, h))
        self.register_buffer("out_weight", torch.zeros(n, 2 * d, h))  # zero: each layer starts as the identity
        self.register_buffer("out_bias", torch.zeros(n, 2 * d))
        self.register_buffer("log_scale_limit", torch.ones(n, d))

    @staticmethod
    def num_values(latent_dim: int, num_layers: int, hidden_dim: int) -> int:
        """How many values the flow's buffers hold."""
        d, h = latent_dim, hidden_dim
        return 2 * d + num_layers * (h * d + h + h * h + h + 2 * d * h + 2 * d + d)

    @property
    def num_layers(self) -> int:
        return len(self.in_weight)

    def _mask(self, layer: int, like: torch.Tensor) -> torch.Tensor:
        """1 for the dimensions layer ``layer`` keeps (alternating parity), 0 for those it transforms."""
        return ((torch.arange(self.latent_dim, device=like.device) + layer) % 2).to(like.dtype)

    def _weights(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).to(dtype) for name in self.WEIGHTS}

    def _shift_and_log_scale(self, w: dict[str, torch.Tensor], layer: int, kept: torch.Tensor,
                             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.leaky_relu(F.linear(kept, w["in_weight"][layer], w["in_bias"][layer]), 0.2)
        hidden = F.leaky_relu(F.linear(hidden, w["hidden_weight"][layer], w["hidden_bias"][layer]), 0.2)
        shift, raw = F.linear(hidden, w["out_weight"][layer], w["out_bias"][layer]).chunk(2, dim=-1)
        log_scale = w["log_scale_limit"][layer] * torch.tanh(raw)
        return shift * (1 - mask), log_scale * (1 - mask)

    def _to_noise(self, w: dict[str, torch.Tensor], z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized latents ``z`` -> the flow's Gaussian noise and ``log |det d noise / d z|`` per row."""
        log_det = z.new_zeros(len(z))
        for layer in range(len(w["in_weight"])):
            mask = self._mask(layer, z)
            shift, log_scale = self._shift_and_log_scale(w, layer, z * mask, mask)
            z = z * log_scale.exp() + shift
            log_det = log_det + log_scale.sum(-1)
        return z, log_det

    def _standardized_log_prob(self, w: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        noise, log_det = self._to_noise(w, z)
        return -0.5 * (noise.pow(2) + math.log(2 * math.pi)).sum(-1) + log_det

    def _compute_dtype(self) -> torch.dtype:
        return torch.float64 if self.data_mean.dtype == torch.float64 else torch.float32

    def fit(self, latents: torch.Tensor, seed: int = 0, steps: int = 2000, batch_size: int = 256,
            lr: float = 3e-3) -> None:
        """Fit the flow to ``latents`` ``(N, latent_dim)`` by maximum likelihood: Adam on seeded mini-batches
        (cosine learning rate) for ``steps`` steps or 200 epochs, whichever is fewer, keeping the state with the
        best likelihood of the 10% of the latents held out."""
        data = latents.detach().to("cpu", torch.float32).reshape(len(latents), -1)
        self._check_latents(data, minimum=2)
        if not torch.isfinite(data).all():
            raise ValueError(f"fitting the {self.name} prior needs finite latents; some are NaN or infinite.")
        mean, std = data.mean(0), data.std(0).clamp_min(1e-6)
        z = (data - mean) / std
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(z), generator=generator)
        held_out = len(z) // 10 if len(z) >= 20 else 0
        valid, train = z[order[:held_out]], z[order[held_out:]]
        steps = min(steps, 200 * math.ceil(len(train) / batch_size))
        with torch.enable_grad():
            best = self._optimise(self._initial_weights(generator), train, valid, generator, steps, batch_size, lr)
        with torch.no_grad():
            self.data_mean.copy_(mean)
            self.data_std.copy_(std)
            for name, value in best.items():
                getattr(self, name).copy_(value)
            self.fitted.fill_(1.0)

    def _initial_weights(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Seeded weights: the hidden layers as ``nn.Linear`` initialises them, the output layers zero."""
        def uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
            bound = 1 / math.sqrt(fan_in)
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound

        n, h, d = self.num_layers, self.in_weight.shape[1], self.latent_dim
        weights = {"in_weight": uniform((n, h, d), d), "in_bias": uniform((n, h), d),
                   "hidden_weight": uniform((n, h, h), h), "hidden_bias": uniform((n, h), h),
                   "out_weight": torch.zeros(n, 2 * d, h), "out_bias": torch.zeros(n, 2 * d),
                   "log_scale_limit": torch.ones(n, d)}
        return {name: value.requires_grad_() for name, value in weights.items()}

    def _optimise(self, weights: dict[str, torch.Tensor], train: torch.Tensor, valid: torch.Tensor,
                  generator: torch.Generator, steps: int, batch_size: int, lr: float) -> dict[str, torch.Tensor]:
        optimizer = torch.optim.Adam(weights.values(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
        best, best_loss = {k: v.detach().clone() for k, v in weights.items()}, math.inf
        check_every = max(steps // 20, 1)
        for step in range(steps):
            batch = train[torch.randint(len(train), (min(batch_size, len(train)),), generator=generator)]
            loss = -self._standardized_log_prob(weights, batch).mean()
            if not torch.isfinite(loss):
                break  # keep the best state so far
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if (step + 1) % check_every == 0 or step + 1 == steps:
                with torch.no_grad():
                    held = valid if len(valid) else train
                    value = -self._standardized_log_prob(weights, held).mean().item()
                if value < best_loss:
                    best, best_loss = {k: v.detach().clone() for k, v in weights.items()}, value
        if not math.isfinite(best_loss):
            raise ValueError(f"fitting the {self.name} prior failed: the likelihood of the latents is not finite.")
        return best

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
        """``num_samples`` latents: Gaussian noise (its spread scaled by ``temperature``) through the inverse flow."""
        self._check_fitted()
        work = self._compute_dtype()
        w = self._weights(work)
        z = temperature * randn_tensor((num_samples, self.latent_dim), generator=generator,
                                       device=self.data_mean.device, dtype=work)
        with torch.no_grad():
            for layer in reversed(range(self.num_layers)):
                mask = self._mask(layer, z)
                shift, log_scale = self._shift_and_log_scale(w, layer, z * mask, mask)
                z = (z - shift) * (-log_scale).exp()
        latents = z * self.data_std.to(work) + self.data_mean.to(work)
        return latents.to(dtype or self.data_mean.dtype)

    def log_prob(self, latents: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        work = self._compute_dtype()
        std = self.data_std.to(work)
        z = (latents.to(work) - self.data_mean.to(work)) / std
        return self._standardized_log_prob(self._weights(work), z) - std.log().sum()


#: The priors a model's ``prior`` option names.
PRIORS: dict[str, type[LatentPrior]] = {cls.name: cls for cls in (StandardNormalPrior, GaussianPrior,
                                                                  GaussianMixturePrior, FlowPrior)}


def build_prior(name: str, latent_dim: int, components: int = 10, flow_layers: int = 6,
                flow_hidden_dim: int = 64) -> LatentPrior:
    """An unfitted prior called ``name`` (a key of :data:`PRIORS`) over ``latent_dim``-D latents.

    ``components`` sizes a Gaussian mixture; ``flow_layers`` and ``flow_hidden_dim`` a flow.
    """
    cls = PRIORS[name]
    if cls is GaussianMixturePrior:
        return cls(latent_dim, components)
    if cls is FlowPrior:
        return cls(latent_dim, flow_layers, flow_hidden_dim)
    return cls(latent_dim)
