"""Class conditioning combined with the sample-quality options (EMA, DiffAugment, spectral norm, R1, GP, GMM prior)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import tiny_kwargs
from torch import nn

from vaegan import AE, GAN, VAE

DCGAN = tiny_kwargs("gan")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _train_steps(model, steps: int = 3) -> None:
    images, labels = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    optimizers = {p: torch.optim.Adam(model.phase_parameters(p), lr=1e-3) for p in model.training_phases}
    for step in range(steps):
        for phase, optimizer in optimizers.items():
            loss = model.compute_loss(phase, images, step, class_labels=labels)["loss"]
            assert torch.isfinite(loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.after_optimizer_step(phase)


@pytest.mark.parametrize("options", [
    {"loss": "hinge", "discriminator_norm": "spectral", "diff_augment": "translation,cutout", "ema_decay": 0.9},
    {"loss": "wgan_gp", "n_critic": 1, "diff_augment": "color", "ema_decay": 0.9},
    {"loss": "non_saturating", "r1_gamma": 1.0, "conditioning": "acgan", "ema_decay": 0.9},
])
def test_conditional_gan_trains_with_quality_options_and_samples_its_ema_generator(tmp_path, options):
    torch.manual_seed(0)
    gan = GAN(num_classes=10, **DCGAN, **options)
    _train_steps(gan)
    assert int(gan.generator_ema.updates) == 3
    averaged, trained = gan.generator_ema.network.state_dict(), gan.generator.state_dict()
    assert averaged.keys() == trained.keys() and "label_embedding.weight" in averaged  # the labels' embedding too
    sevens = gan.sample(4, generator=gen(0), class_labels=7)
    raw = gan.sample(4, generator=gen(0), class_labels=7, use_ema=False)
    assert sevens.shape == (4, 1, 28, 28) and not torch.equal(sevens, raw)  # the EMA generator, with the labels
    assert not torch.equal(sevens, gan.sample(4, generator=gen(0), class_labels=3))  # the label matters to it
    gan.save_pretrained(tmp_path / "gan")
    loaded = GAN.from_pretrained(tmp_path / "gan")
    assert torch.equal(loaded.sample(4, generator=gen(0), class_labels=7), sevens)


def test_spectral_norm_covers_the_projection_embedding():
    gan = GAN(num_classes=10, discriminator_norm="spectral", **DCGAN)
    embeddings = [m for m in gan.discriminator.modules() if isinstance(m, nn.Embedding)]
    assert embeddings and all(hasattr(m, "parametrizations") for m in embeddings)


@pytest.mark.parametrize("cls, prior", [(VAE, "gmm"), (AE, "gmm"), (AE, "gaussian")])
def test_conditional_autoencoders_fit_their_prior_on_labelled_batches(cls, prior):
    torch.manual_seed(0)
    model = cls(num_classes=10, architecture="mlp", hidden_dims=(16,), latent_dim=2, prior=prior, prior_components=2)
    images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    model.on_train_end([(images[:20], labels[:20]), (images[20:], labels[20:])])
    assert model.can_sample
    latents = model.training_latents([(images, labels)])
    assert not torch.allclose(latents, model.training_latents([(images, (labels + 1) % 10)]))  # labels are used
    assert model.sample(3, generator=gen(0), class_labels=4).shape == (3, 1, 28, 28)
