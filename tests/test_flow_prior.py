"""The RealNVP flow prior (``prior: flow``): its fit, its density, its storage in the model's safetensors file."""

from __future__ import annotations

import math

import pytest
import torch
from model_helpers import gen, tiny_kwargs
from safetensors.torch import load_file

from vaegan import AE, VAE, AutoModel
from vaegan.errors import ConfigError
from vaegan.priors import FlowPrior, GaussianPrior, build_prior

SMALL_FLOW = {"prior": "flow", "prior_flow_layers": 2, "prior_flow_hidden_dim": 8}


def _two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    """Two interleaved half circles with a little noise: curved clusters no single Gaussian fits."""
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.08 * torch.randn(n, 2, generator=generator)


def test_flow_fits_two_moons_better_than_a_gaussian():
    train, held_out = _two_moons(2000, gen(0)), _two_moons(1000, gen(1))
    gaussian, flow = GaussianPrior(2), FlowPrior(2)
    gaussian.fit(train)
    flow.fit(train, steps=500)
    flow_nll, gaussian_nll = -flow.log_prob(held_out).mean().item(), -gaussian.log_prob(held_out).mean().item()
    assert flow_nll < gaussian_nll - 0.4, (flow_nll, gaussian_nll)
    # Its samples follow the moons: closer to the training points than the Gaussian's samples are.
    def distance(points: torch.Tensor) -> float:
        return torch.cdist(points.float(), train).min(1).values.mean().item()

    assert distance(flow.sample(500, gen(2))) < 0.7 * distance(gaussian.sample(500, gen(2)))


def test_flow_log_prob_is_a_density_and_sampling_is_seeded():
    flow = FlowPrior(2, num_layers=4, hidden_dim=16)
    flow.fit(_two_moons(500, gen(0)), steps=200)
    # Integrates to one over a grid that holds the (standardized) data.
    axis = torch.linspace(-4, 5, 301)
    grid = torch.cartesian_prod(axis, axis)
    mass = flow.log_prob(grid).exp().sum().item() * (axis[1] - axis[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=0.03)
    assert torch.equal(flow.sample(10, gen(3)), flow.sample(10, gen(3)))
    assert not torch.equal(flow.sample(10, gen(3)), flow.sample(10, gen(4)))
    assert flow.sample(1000, gen(3), temperature=0.5).std(0).max() < flow.sample(1000, gen(3)).std(0).max()


def test_flow_fit_is_deterministic_with_a_seed():
    latents = torch.randn(300, 3, generator=gen(0))
    first, second, other = FlowPrior(3, 2, 8), FlowPrior(3, 2, 8), FlowPrior(3, 2, 8)
    first.fit(latents, steps=50)
    second.fit(latents, steps=50)
    other.fit(latents, seed=1, steps=50)
    second_state = second.state_dict()
    assert all(torch.equal(value, second_state[name]) for name, value in first.state_dict().items())
    assert not torch.equal(first.in_weight, other.in_weight)


def test_flow_refuses_to_sample_unfitted_and_to_fit_bad_latents():
    flow = build_prior("flow", 2, flow_layers=2, flow_hidden_dim=8)
    assert isinstance(flow, FlowPrior) and not flow.is_fitted
    with pytest.raises(RuntimeError, match="not fitted yet"):
        flow.sample(2)
    with pytest.raises(ValueError, match="latents of size 2"):
        flow.fit(torch.randn(10, 3))
    with pytest.raises(ValueError, match="finite"):
        flow.fit(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]))


@pytest.mark.parametrize(("options", "message"), [
    ({"prior_flow_layers": 0}, "prior_flow_layers"), ({"prior_flow_hidden_dim": 1.5}, "prior_flow_hidden_dim"),
    ({"prior_flow_layers": 64, "prior_flow_hidden_dim": 4096}, "flow weights"),
])
def test_bad_flow_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        AE(**tiny_kwargs("ae-mlp"), prior="flow", **options)


@pytest.mark.parametrize("cls", [AE, VAE])
def test_flow_prior_is_saved_and_samples_identically_after_loading(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(**tiny_kwargs("ae-mlp"), **SMALL_FLOW)
    assert not model.can_sample
    model.on_train_end(torch.rand(60, 1, 28, 28).split(16))
    assert model.can_sample and model.latent_prior.is_fitted
    model.save_pretrained(tmp_path, model_card=False)
    saved = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert {"latent_prior.in_weight", "latent_prior.out_weight", "latent_prior.data_mean"} <= saved.keys()
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.prior == "flow" and loaded.config.prior_flow_layers == 2 and loaded.can_sample
    assert torch.equal(loaded.sample(4, generator=gen(2)), model.sample(4, generator=gen(2)))
    assert not any(name.startswith("latent_prior") for name, _ in loaded.named_parameters())  # buffers only
