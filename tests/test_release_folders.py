"""Folders saved by the release before the capability protocol and ``vaegan.priors`` (commit 0eb9ffb,
tests/data/release-0.1/make_fixtures.py) load unchanged, sample what they sampled, and save in today's format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaegan import AE, GAN, VAE, AutoModel
from vaegan.priors import GaussianMixturePrior, GaussianPrior, StandardNormalPrior

DATA = Path(__file__).parent / "data" / "release-0.1"
FOLDERS = {"ae-gaussian": (AE, GaussianPrior), "ae-gmm": (AE, GaussianMixturePrior),
           "vae-gmm": (VAE, GaussianMixturePrior), "cvae": (VAE, StandardNormalPrior), "cluster-gan": (GAN, None)}


def _samples(model) -> torch.Tensor:
    labels = {"class_labels": [0, 1, 2]} if model.num_classes else {}
    return model.sample(3, generator=torch.Generator().manual_seed(0), **labels)


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_a_folder_of_the_previous_release_loads_and_samples_as_before(name, tmp_path):
    cls, prior = FOLDERS[name]
    model = AutoModel.from_pretrained(DATA / name)
    assert type(model) is cls and model.can_sample
    if prior is not None:
        assert type(model.latent_prior) is prior and model.latent_prior.is_fitted
    expected = load_file(DATA / f"{name}-samples.safetensors")["samples"]
    # Up to float rounding: the fixtures may have been made with other CPU kernels.
    torch.testing.assert_close(_samples(model), expected, atol=1e-6, rtol=0)
    model.save_pretrained(tmp_path / name, model_card=False)  # today's format, the same model
    again = cls.from_pretrained(tmp_path / name)
    torch.testing.assert_close(_samples(again), expected, atol=1e-6, rtol=0)


def test_the_old_ae_prior_keys_are_renamed_once_on_load(tmp_path):
    stored = load_file(DATA / "ae-gaussian" / "diffusion_pytorch_model.safetensors")
    assert {"prior_mean", "prior_scale_tril", "prior_fitted"} <= stored.keys()
    model = AE.from_pretrained(DATA / "ae-gaussian")
    assert torch.equal(model.latent_prior.mean, stored["prior_mean"])
    assert torch.equal(model.latent_prior.scale_tril, stored["prior_scale_tril"])
    model.save_pretrained(tmp_path / "ae", model_card=False)
    saved = load_file(tmp_path / "ae" / "diffusion_pytorch_model.safetensors")
    assert "prior_mean" not in saved and torch.equal(saved["latent_prior.mean"], stored["prior_mean"])
    fresh = AE(architecture="mlp", hidden_dims=(16,), latent_dim=2)  # torch's load_state_dict renames them too
    fresh.load_state_dict(stored)
    assert fresh.has_prior and torch.equal(fresh.latent_prior.mean, stored["prior_mean"])


D6ED590 = Path(__file__).parent / "data" / "release-d6ed590"


@pytest.mark.parametrize("name, cls, new_keys", [("pair", "VQVAE", {"prior_max_shift": 0, "prior_clusters": None}),
                                                 ("pixelcnn", "PixelCNN", {"clusters": None})])
def test_a_folder_of_the_first_pixelcnn_and_vqvae_release_loads_and_samples_as_before(name, cls, new_keys, tmp_path):
    """Folders saved at d6ed590 (tests/data/release-d6ed590/make_fixtures.py), before the options added since."""
    model = AutoModel.from_pretrained(D6ED590 / name)
    assert type(model).__name__ == cls and {k: model.config[k] for k in new_keys} == new_keys
    expected = load_file(D6ED590 / f"{name}-samples.safetensors")["samples"]
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(model.sample(3, generator=generator()), expected, atol=1e-6, rtol=0)
    model.save_pretrained(tmp_path / name, model_card=False)  # today's format, the same model
    again = AutoModel.from_pretrained(tmp_path / name)
    torch.testing.assert_close(again.sample(3, generator=generator()), expected, atol=1e-6, rtol=0)
