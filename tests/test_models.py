"""Tests for the model families (AE, VAE, GAN): shapes, value ranges, defaults, losses and validation."""

from __future__ import annotations

import math

import pytest
import torch
from model_helpers import TINY_CONFIGS, gen
from torch import nn

import vaegan
from vaegan import AE, GAN, VAE, ConfigError
from vaegan.interpolation import interpolate_latents
from vaegan.models.vae import LatentGaussian

# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------

SIZES = {"28x28x1": (28, 1), "32x32x3": (32, 3), "64x64x3": (64, 3)}

# Small networks keep the suite fast; the default (textbook) configuration is tested on its own below.
FAMILIES = {name: TINY_CONFIGS[name] for name in ("ae", "ae-mlp", "vae", "vae-mlp", "gan", "gan-mlp")}




def make(family: str, size: str = "28x28x1", **overrides) -> vaegan.GenerativeModel:
    """A small model of ``family``; an AE gets a fitted prior so that it can sample."""
    torch.manual_seed(0)
    cls, kwargs = FAMILIES[family]
    image_size, channels = SIZES[size]
    model = cls(image_size=image_size, in_channels=channels, **{**kwargs, **overrides})
    if isinstance(model, AE):
        model.fit_prior(torch.randn(64, model.latent_dim, generator=gen(123)))
    return model


def images_for(model: vaegan.GenerativeModel, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *model.image_shape, generator=gen(seed))


def assert_images(x: torch.Tensor, n: int, model: vaegan.GenerativeModel) -> None:
    assert isinstance(x, torch.Tensor)
    assert tuple(x.shape) == (n, *model.image_shape)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.min().item() >= 0.0 and x.max().item() <= 1.0, (x.min().item(), x.max().item())


# ----------------------------------------------------------------------------------------------------------
# shapes and value ranges of every public method
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_generation_shapes_and_range(family, size):
    model = make(family, size)
    image_size, channels = SIZES[size]
    assert model.image_shape == (channels, image_size, image_size)

    z = model.prior_latents(3, generator=gen(1))
    assert tuple(z.shape) == (3, model.latent_dim) and z.dtype == torch.float32

    assert_images(model.sample(2, generator=gen(0)), 2, model)
    # Saturating latents: the output activation, not luck, must keep images in [0, 1].
    extreme = model.sample(2, generator=gen(0), temperature=200.0)
    assert_images(extreme, 2, model)
    assert extreme.max() - extreme.min() > 0.5

    with torch.no_grad():
        assert_images(model.decode_latents(z), 3, model)
        assert_images(model.decode_latents(200 * z), 3, model)

    for mode in ("lerp", "slerp"):
        path = model.interpolate(z[0], z[1], steps=4, mode=mode)
        assert_images(path, 4, model)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("family", [f for f in FAMILIES if not f.startswith("gan")])
def test_autoencoder_methods_shapes_and_range(family, size):
    model = make(family, size)
    x = images_for(model, 2)
    with torch.no_grad():
        enc = model.encode(x)
        if isinstance(model, VAE):
            dist = enc.latent_dist
            assert isinstance(dist, LatentGaussian)
            assert tuple(dist.mean.shape) == tuple(dist.logvar.shape) == (2, model.latent_dim)
            assert tuple(dist.sample(generator=gen(0)).shape) == (2, model.latent_dim)
            latents = dist.mode()
            (tuple_dist,) = model.encode(x, return_dict=False)
            assert torch.equal(tuple_dist.mean, dist.mean)
        else:
            latents = enc.latent
            assert torch.equal(model.encode(x, return_dict=False)[0], latents)
        assert tuple(latents.shape) == (2, model.latent_dim)
        assert torch.equal(model.encode_images(x), latents)

        decoded = model.decode(latents).sample
        assert_images(decoded, 2, model)
        assert torch.equal(model.decode(latents, return_dict=False)[0], decoded)
        assert_images(model(x).sample, 2, model)
        assert torch.allclose(model(x).sample, decoded, atol=1e-6)
        if isinstance(model, VAE):
            assert_images(model(x, sample_posterior=True, generator=gen(0)).sample, 2, model)
    assert_images(model.reconstruct(x), 2, model)
    assert torch.allclose(model.reconstruct(x), decoded, atol=1e-6)

    for mode in ("lerp", "slerp"):
        # image end points, with and without a batch dimension, and mixed image / latent end points
        assert_images(model.interpolate(x[0], x[1], steps=5, mode=mode), 5, model)
        assert_images(model.interpolate(x[:1], x[1:], steps=3, mode=mode), 3, model)
        assert_images(model.interpolate(x[0], latents[1], steps=3, mode=mode), 3, model)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("family", ["gan", "gan-mlp"])
def test_gan_methods_shapes_and_range(family, size):
    model = make(family, size).eval()
    z = model.prior_latents(3, generator=gen(0))
    with torch.no_grad():
        assert_images(model(z).sample, 3, model)
        assert torch.equal(model(z).sample, model.decode_latents(z))
        assert torch.equal(model(z, return_dict=False)[0], model(z).sample)
        logits = model.discriminate(images_for(model, 3))
    assert tuple(logits.shape) == (3,)
    # A GAN has no encoder: image end points are refused with a hint to pass latents.
    image = images_for(model, 1)[0]
    with pytest.raises(NotImplementedError, match="latent"):
        model.interpolate(image, z[0])


def test_sample_and_interpolate_reject_bad_arguments():
    model = make("vae-mlp")
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)
    z = model.prior_latents(2, generator=gen(0))
    with pytest.raises(ConfigError, match="mode"):
        model.interpolate(z[0], z[1], mode="cubic")
    with pytest.raises(ConfigError, match="steps"):
        model.interpolate(z[0], z[1], steps=1)
    with pytest.raises(ValueError, match="latent vector of size 3"):
        model.interpolate(torch.zeros(5), z[1])
    with pytest.raises(ValueError, match="image of shape"):
        model.interpolate(torch.zeros(1, 32, 32), z[1])


def test_sample_restores_training_mode_and_keeps_no_graph():
    model = make("gan").train()
    out = model.sample(2, generator=gen(0))
    assert model.training
    assert not out.requires_grad


# ----------------------------------------------------------------------------------------------------------
# determinism and interpolation
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_seed_same_samples_different_seed_different(family):
    model = make(family)
    a = model.sample(3, generator=gen(7))
    b = model.sample(3, generator=gen(7))
    c = model.sample(3, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.equal(model.prior_latents(2, generator=gen(7)), model.prior_latents(2, generator=gen(7)))
    # the three samples of one call differ from each other
    assert not torch.allclose(a[0], a[1])


@pytest.mark.parametrize("mode", ["lerp", "slerp"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_interpolation_end_points_are_the_decoded_end_latents(family, mode):
    model = make(family).eval()
    z = model.prior_latents(2, generator=gen(3))
    path = model.interpolate(z[0], z[1], steps=6, mode=mode)
    with torch.no_grad():
        ends = model.decode_latents(z)
    assert torch.allclose(path[0], ends[0], atol=1e-5)
    assert torch.allclose(path[-1], ends[1], atol=1e-5)
    assert not torch.allclose(path[0], path[-1], atol=1e-3)
    # the inner points are on the way, not copies of an end
    assert not torch.allclose(path[2], ends[0], atol=1e-4)


@pytest.mark.parametrize("mode", ["lerp", "slerp"])
@pytest.mark.parametrize("family", ["ae", "vae", "vae-mlp"])
def test_interpolation_between_images_starts_and_ends_at_reconstructions(family, mode):
    model = make(family)
    x = images_for(model, 2, seed=5)
    path = model.interpolate(x[0], x[1], steps=4, mode=mode)
    recon = model.reconstruct(x)
    assert torch.allclose(path[0], recon[0], atol=1e-5)
    assert torch.allclose(path[-1], recon[1], atol=1e-5)


def _recorded_path(model, start, end, steps, mode):
    seen = []
    original = model.decode_latents

    def spy(latents, class_labels=None):
        seen.append(latents.detach().clone())
        return original(latents, class_labels=class_labels)

    model.decode_latents = spy
    try:
        model.interpolate(start, end, steps=steps, mode=mode)
    finally:
        del model.decode_latents
    (path,) = seen
    return path


def test_slerp_keeps_latent_norms_between_the_end_norms_and_lerp_does_not():
    model = make("gan-mlp", latent_dim=64)
    z = model.prior_latents(2, generator=gen(11))
    lo, hi = sorted(z.norm(dim=1).tolist())

    slerp_path = _recorded_path(model, z[0], z[1], steps=9, mode="slerp")
    assert tuple(slerp_path.shape) == (9, 64)
    assert torch.allclose(slerp_path[0], z[0], atol=1e-5) and torch.allclose(slerp_path[-1], z[1], atol=1e-5)
    norms = slerp_path.norm(dim=1)
    assert (norms >= 0.97 * lo).all() and (norms <= 1.03 * hi).all(), (lo, hi, norms)

    lerp_path = _recorded_path(model, z[0], z[1], steps=9, mode="lerp")
    # a straight line through a Gaussian's shell dips towards the origin (two nearly orthogonal vectors)
    assert lerp_path[4].norm() < 0.9 * lo
    assert torch.allclose(lerp_path[4], (z[0] + z[1]) / 2, atol=1e-5)


def test_slerp_of_equal_norm_latents_stays_on_the_sphere():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])
    path = interpolate_latents(a, b, steps=5, mode="slerp")
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)
    mid = 3.0 / math.sqrt(2.0)
    assert torch.allclose(path[2], torch.tensor([mid, mid, 0.0]), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# textbook defaults
# ----------------------------------------------------------------------------------------------------------


def _layers(module: nn.Module, kind: type) -> list:
    return [m for m in module.modules() if type(m) is kind]


@pytest.mark.parametrize("cls", [VAE, AE])
def test_textbook_default_conv_autoencoder(cls):
    model = cls()
    cfg = model.config
    assert (cfg.image_size, cfg.in_channels, cfg.latent_dim, cfg.architecture) == (28, 1, 2, "conv")
    assert list(cfg.block_out_channels) == [32, 64, 64, 64]
    assert list(cfg.strides) == [1, 2, 2, 1]
    assert cfg.kernel_size == 3
    assert cfg.reconstruction_loss == ("bce" if cls is VAE else "mse")

    convs = _layers(model.encoder, nn.Conv2d)
    assert [c.out_channels for c in convs] == [32, 64, 64, 64]
    assert [c.in_channels for c in convs] == [1, 32, 64, 64]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (2, 2), (1, 1)]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert not _layers(model.encoder, nn.ConvTranspose2d)
    heads = _layers(model.encoder, nn.Linear)
    assert len(heads) == 1
    # 28 -> 28 -> 14 -> 7 -> 7: a 64 x 7 x 7 feature map; a VAE predicts mean and log-variance
    assert heads[0].in_features == 64 * 7 * 7
    assert heads[0].out_features == (4 if cls is VAE else 2)

    deconvs = _layers(model.decoder, nn.ConvTranspose2d)
    assert [d.out_channels for d in deconvs] == [64, 64, 32, 1]
    assert [d.stride for d in deconvs] == [(1, 1), (2, 2), (2, 2), (1, 1)]
    assert not _layers(model.decoder, nn.Conv2d)
    (project,) = _layers(model.decoder, nn.Linear)
    assert (project.in_features, project.out_features) == (2, 64 * 7 * 7)

    x = torch.rand(2, 1, 28, 28, generator=gen(0))
    assert tuple(model.encode_images(x).shape) == (2, 2)
    with torch.no_grad():
        assert tuple(model.decode_latents(torch.zeros(2, 2)).shape) == (2, 1, 28, 28)


def test_default_vae_and_gan_settings():
    vae = VAE()
    assert vae.config.beta == 1.0 and vae.config.kl_warmup_steps == 0
    assert vae.training_phases == ("model",) and vae.family == "vae"
    gan = GAN()
    assert (gan.config.latent_dim, gan.config.architecture, gan.config.loss) == (100, "dcgan", "non_saturating")
    assert gan.training_phases == ("discriminator", "generator") and gan.family == "gan"
    assert gan.n_critic == 1
    assert tuple(gan.sample(1, generator=gen(0)).shape) == (1, 1, 28, 28)


# ----------------------------------------------------------------------------------------------------------
# losses and the training protocol
# ----------------------------------------------------------------------------------------------------------


def _check_loss(model, phase, step=0, batch=4):
    model.train()
    model.zero_grad(set_to_none=True)
    out = model.compute_loss(phase, images_for(model, batch, seed=step), step)
    loss = out["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss.requires_grad
    for name, value in out.items():
        assert torch.isfinite(value).all(), name
    loss.backward()
    params = model.phase_parameters(phase)
    assert params
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    return out


@pytest.mark.parametrize("recon", ["mse", "bce"])
@pytest.mark.parametrize("family", ["ae", "ae-mlp"])
def test_ae_loss(family, recon):
    model = make(family, reconstruction_loss=recon)
    assert model.training_phases == ("model",)
    out = _check_loss(model, "model")
    assert out["loss"] > 0
    assert len(model.phase_parameters("model")) == len(list(model.parameters()))


@pytest.mark.parametrize("recon", ["mse", "bce"])
@pytest.mark.parametrize("family", ["vae", "vae-mlp"])
def test_vae_loss(family, recon):
    model = make(family, reconstruction_loss=recon, beta=0.5)
    out = _check_loss(model, "model", step=3)
    assert set(out) >= {"loss", "reconstruction", "kl"}
    assert out["kl"] >= 0
    assert torch.allclose(out["loss"].detach(), out["reconstruction"] + 0.5 * out["kl"], rtol=1e-5)


@pytest.mark.parametrize("loss", ["minimax", "non_saturating", "wgan", "wgan_gp", "hinge"])
@pytest.mark.parametrize("family", ["gan", "gan-mlp"])
def test_gan_losses_for_each_phase(family, loss):
    model = make(family, loss=loss)
    d_out = _check_loss(model, "discriminator")
    # the discriminator step must not push gradients into the generator
    assert all(p.grad is None for p in model.generator.parameters())
    assert {"d_real", "d_fake"} <= set(d_out)
    if loss == "wgan_gp":
        assert d_out["gradient_penalty"] >= 0
    if loss in ("wgan", "wgan_gp"):
        assert "wasserstein_distance" in d_out

    _check_loss(model, "generator")
    generator_ids = {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in model.phase_parameters("generator")} == generator_ids
    assert {id(p) for p in model.phase_parameters("discriminator")} == {id(p) for p in model.discriminator.parameters()}


def test_gan_instance_noise_anneals():
    model = make("gan-mlp", instance_noise=0.2, instance_noise_anneal_steps=100)
    assert model.instance_noise_std(0) == pytest.approx(0.2)
    assert model.instance_noise_std(50) == pytest.approx(0.1)
    assert model.instance_noise_std(500) == 0.0
    _check_loss(model, "discriminator", step=10)


@pytest.mark.parametrize(("loss", "n_critic", "expected"), [
    ("wgan", None, 5), ("wgan_gp", None, 5), ("non_saturating", None, 1), ("minimax", None, 1), ("wgan", 3, 3),
    ("non_saturating", 2, 2), ("hinge", None, 1),
])
def test_gan_phase_is_active_follows_n_critic(loss, n_critic, expected):
    model = make("gan-mlp", loss=loss, n_critic=n_critic)
    assert model.n_critic == expected
    steps = range(20)
    assert all(model.phase_is_active("discriminator", s) for s in steps)
    generator_steps = [s for s in steps if model.phase_is_active("generator", s)]
    assert generator_steps == [s for s in steps if (s + 1) % expected == 0]
    assert len(generator_steps) == 20 // expected


def test_non_gan_phase_always_active():
    model = make("vae-mlp")
    assert all(model.phase_is_active("model", s) for s in range(5))


def _fill_discriminator(model, seed=0):
    g = gen(seed)
    with torch.no_grad():
        for p in model.discriminator.parameters():
            p.copy_(torch.empty_like(p).uniform_(-1.0, 1.0, generator=g))


def test_wgan_clips_discriminator_weights_after_its_step():
    model = make("gan-mlp", loss="wgan", clip_value=0.05)
    _fill_discriminator(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    model.after_optimizer_step("generator")  # not the discriminator phase: nothing changes
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    model.after_optimizer_step("discriminator")
    after = model.state_dict()
    for name, p in model.discriminator.named_parameters():
        old = before[f"discriminator.{name}"]
        assert p.abs().max() <= 0.05 + 1e-9
        assert torch.equal(p, old.clamp(-0.05, 0.05))
    assert any((p.abs() == 0.05).any() for p in model.discriminator.parameters())
    for k in before:
        if k.startswith("generator."):
            assert torch.equal(after[k], before[k])


@pytest.mark.parametrize("loss", ["wgan_gp", "non_saturating"])
def test_other_losses_do_not_clip(loss):
    model = make("gan-mlp", loss=loss)
    _fill_discriminator(model)
    before = [p.clone() for p in model.discriminator.parameters()]
    model.after_optimizer_step("discriminator")
    assert all(torch.equal(p, b) for p, b in zip(model.discriminator.parameters(), before, strict=True))


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic_and_positive_otherwise():
    model = make("gan-mlp", loss="wgan_gp")
    pixels = math.prod(model.image_shape)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 1, bias=False))
    w = torch.randn(1, pixels, generator=gen(0))
    with torch.no_grad():
        critic[1].weight.copy_(w / w.norm())  # a linear critic with ||grad|| == 1 everywhere
    model.discriminator = critic
    real = torch.rand(4, *model.image_shape, generator=gen(1)) * 2 - 1
    fake = torch.rand(4, *model.image_shape, generator=gen(2)) * 2 - 1

    penalty = model.gradient_penalty(real, fake)
    assert penalty.ndim == 0
    assert penalty.item() == pytest.approx(0.0, abs=1e-8)

    with torch.no_grad():
        critic[1].weight.mul_(3.0)  # ||grad|| == 3: penalty (3 - 1)^2
    penalty = model.gradient_penalty(real, fake)
    assert penalty.item() == pytest.approx(4.0, rel=1e-4)
    penalty.backward()  # the penalty trains the critic (create_graph=True)
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0

    with torch.no_grad():
        critic[1].weight.mul_(0.5 / 3.0)  # ||grad|| == 0.5
    assert model.gradient_penalty(real, fake).item() == pytest.approx(0.25, rel=1e-4)


def test_gradient_penalty_of_a_random_critic_is_positive():
    model = make("gan", loss="wgan_gp")
    real = torch.rand(3, *model.image_shape, generator=gen(1)) * 2 - 1
    fake = torch.rand(3, *model.image_shape, generator=gen(2)) * 2 - 1
    assert model.gradient_penalty(real, fake).item() > 1e-3


def test_vae_kl_weight_warmup():
    model = make("vae-mlp", beta=0.5, kl_warmup_steps=10)
    assert model.kl_weight(0) == 0.0
    assert model.kl_weight(5) == pytest.approx(0.25)
    assert model.kl_weight(10) == pytest.approx(0.5)
    assert model.kl_weight(1000) == pytest.approx(0.5)
    weights = [model.kl_weight(s) for s in range(12)]
    assert weights == sorted(weights)

    out = model.compute_loss("model", images_for(model, 4), step=0)
    assert torch.allclose(out["loss"].detach(), out["reconstruction"], rtol=1e-6)
    assert out["kl"] > 0
    out = model.compute_loss("model", images_for(model, 4), step=5)
    assert torch.allclose(out["loss"].detach(), out["reconstruction"] + 0.25 * out["kl"], rtol=1e-5)

    no_warmup = make("vae-mlp", beta=2.0)
    assert no_warmup.kl_weight(0) == 2.0 and no_warmup.kl_weight(100) == 2.0


def test_latent_gaussian_kl_and_mode_match_the_closed_form():
    g = gen(0)
    mean = torch.randn(3, 4, generator=g)
    logvar = torch.rand(3, 4, generator=g) * 4 - 2
    dist = LatentGaussian(torch.cat([mean, logvar], dim=1))

    assert torch.equal(dist.mode(), mean)
    assert torch.equal(dist.mean, mean)
    by_hand = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=1)
    kl = dist.kl()
    assert tuple(kl.shape) == (3,)
    assert torch.allclose(kl, by_hand, atol=1e-5)
    std = (0.5 * logvar).exp()
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mean, std),
                                                  torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl, reference, atol=1e-5)

    other_mean, other_logvar = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g) - 0.5
    other = LatentGaussian(torch.cat([other_mean, other_logvar], dim=1))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std), torch.distributions.Normal(other_mean, (0.5 * other_logvar).exp())
    ).sum(1)
    assert torch.allclose(dist.kl(other), reference, atol=1e-5)

    x = torch.randn(3, 4, generator=g)
    nll = -torch.distributions.Normal(mean, std).log_prob(x).sum(1)
    assert torch.allclose(dist.nll(x), nll, atol=1e-5)

    # the standard normal has zero KL to the prior
    assert torch.allclose(LatentGaussian(torch.zeros(2, 8)).kl(), torch.zeros(2), atol=1e-7)


def test_vae_sampling_uses_the_posterior_spread():
    dist = LatentGaussian(torch.cat([torch.zeros(20000, 2), torch.full((20000, 2), math.log(4.0))], dim=1))
    draws = dist.sample(generator=gen(0))
    assert draws.std(0).tolist() == pytest.approx([2.0, 2.0], rel=0.05)


# ----------------------------------------------------------------------------------------------------------
# the AE's fitted prior
# ----------------------------------------------------------------------------------------------------------


def test_ae_sample_before_fit_prior_raises():
    model = AE(architecture="mlp", hidden_dims=(16,))
    assert not model.has_prior
    with pytest.raises(RuntimeError, match="fit_prior"):
        model.sample(2, generator=gen(0))
    with pytest.raises(RuntimeError, match="fit_prior"):
        model.prior_latents(2)
    # decoding given latents does not need the prior
    z = torch.randn(2, 2, generator=gen(0))
    assert tuple(model.interpolate(z[0], z[1], steps=3).shape) == (3, 1, 28, 28)


def test_ae_fit_prior_matches_a_known_gaussian_and_samples_follow_it():
    model = AE(architecture="mlp", hidden_dims=(16,), latent_dim=3)
    mean = torch.tensor([1.0, -2.0, 0.5])
    tril = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.4]])
    cov = tril @ tril.T
    latents = mean + torch.randn(20000, 3, generator=gen(0)) @ tril.T

    model.fit_prior(latents)
    assert model.has_prior
    assert torch.allclose(model.latent_prior.mean, mean, atol=0.05)
    fitted_cov = model.latent_prior.scale_tril @ model.latent_prior.scale_tril.T
    assert torch.allclose(fitted_cov, cov, atol=0.05)
    assert torch.equal(model.latent_prior.scale_tril, model.latent_prior.scale_tril.tril())

    draws = model.prior_latents(20000, generator=gen(1))
    assert tuple(draws.shape) == (20000, 3)
    assert torch.allclose(draws.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(draws.T), cov, atol=0.05)
    # temperature scales the spread around the fitted mean
    assert torch.equal(model.prior_latents(4, generator=gen(2), temperature=0.0), model.latent_prior.mean.expand(4, 3))
    half = model.prior_latents(20000, generator=gen(3), temperature=0.5)
    assert torch.allclose(torch.cov(half.T), 0.25 * cov, atol=0.03)

    assert tuple(model.sample(4, generator=gen(4)).shape) == (4, 1, 28, 28)


def test_ae_fit_prior_rejects_bad_latents():
    model = AE(architecture="mlp", hidden_dims=(16,), latent_dim=3)
    with pytest.raises(ValueError, match="latents of size 3"):
        model.fit_prior(torch.randn(10, 4))
    with pytest.raises(ValueError, match="at least 2"):
        model.fit_prior(torch.randn(1, 3))
    assert not model.has_prior


def test_ae_on_train_end_fits_the_prior_to_the_training_latents():
    model = make("ae")
    model.latent_prior.fitted.zero_()
    model.train()
    batches = [images_for(model, 4, seed=s) for s in range(3)]
    model.on_train_end(iter(batches))
    assert model.has_prior
    assert model.training  # the mode is restored

    model.eval()
    with torch.no_grad():
        latents = torch.cat([model.encode_images(b) for b in batches])
    assert torch.allclose(model.latent_prior.mean, latents.mean(0), atol=1e-5)
    fitted_cov = model.latent_prior.scale_tril @ model.latent_prior.scale_tril.T
    assert torch.allclose(fitted_cov, torch.cov(latents.T), atol=1e-4, rtol=1e-3)


def test_other_families_ignore_on_train_end():
    model = make("vae-mlp")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.on_train_end([images_for(model, 2)])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------------------------------------
# configuration validation
# ----------------------------------------------------------------------------------------------------------

INVALID_CONFIGS = [
    # (class, kwargs, words the message must contain)
    (VAE, {"latent_dim": 0}, ["latent_dim", "0"]),
    (VAE, {"latent_dim": -4}, ["latent_dim", "-4"]),
    (AE, {"latent_dim": 0}, ["latent_dim"]),
    (GAN, {"latent_dim": -1}, ["latent_dim"]),
    (VAE, {"latent_dim": 2.5}, ["latent_dim"]),
    (VAE, {"image_size": 30}, ["strides", "image_size=30"]),
    (AE, {"strides": (2, 2, 2, 1)}, ["strides", "image_size=28"]),
    (VAE, {"kernel_size": 4}, ["kernel_size", "odd"]),
    (AE, {"kernel_size": 2}, ["kernel_size", "odd"]),
    (VAE, {"architecture": "resnet"}, ["architecture", "'conv'", "'mlp'"]),
    (AE, {"architecture": "dcgan"}, ["architecture", "'conv'", "'mlp'"]),
    (GAN, {"architecture": "stylegan"}, ["architecture", "'mlp'", "'dcgan'"]),
    (GAN, {"loss": "lsgan"}, ["loss", "'minimax'", "'non_saturating'", "'wgan'", "'wgan_gp'", "'hinge'"]),
    (VAE, {"activation": "tanh"}, ["activation", "'leaky_relu'", "'relu'", "'gelu'"]),
    (AE, {"activation": "swish"}, ["activation", "'silu'"]),
    (VAE, {"reconstruction_loss": "l1"}, ["reconstruction_loss", "'bce'", "'mse'"]),
    (AE, {"reconstruction_loss": "huber"}, ["reconstruction_loss", "'bce'", "'mse'"]),
    (VAE, {"strides": (1, 2, 2)}, ["strides", "block_out_channels"]),
    (AE, {"block_out_channels": (32, 64)}, ["strides", "block_out_channels"]),
    (VAE, {"decoder_block_out_channels": (8,)}, ["decoder_block_out_channels"]),
    (VAE, {"block_out_channels": ()}, ["block_out_channels"]),
    (VAE, {"hidden_dims": (0,), "architecture": "mlp"}, ["hidden_dims"]),
    (VAE, {"dropout": 1.0}, ["dropout"]),
    (VAE, {"beta": -1.0}, ["beta"]),
    (VAE, {"batch_norm": "yes"}, ["batch_norm"]),
    (VAE, {"image_size": 2}, ["image_size"]),
    (GAN, {"image_size": 7}, ["image_size", "mlp"]),
    (GAN, {"discriminator_norm": "weight"}, ["discriminator_norm", "'batch'", "'layer'", "'spectral'"]),
    (GAN, {"n_critic": 0}, ["n_critic"]),
    (GAN, {"clip_value": 0.0}, ["clip_value"]),
    (GAN, {"base_channels": 0}, ["base_channels"]),
    # absurd sizes
    (VAE, {"latent_dim": 10**9}, ["latent_dim", "1000000000"]),
    (AE, {"latent_dim": 10**9}, ["latent_dim"]),
    (GAN, {"latent_dim": 10**9}, ["latent_dim"]),
    (VAE, {"image_size": 10**6}, ["image_size"]),
    (AE, {"latent_dim": 65_536, "architecture": "mlp", "hidden_dims": (1,)}, ["latent_dim"]),
    (VAE, {"architecture": "mlp", "hidden_dims": (65_536, 65_536)}, ["parameters", "1,000,000,000"]),
    (GAN, {"image_size": 1024, "in_channels": 3, "base_channels": 1024}, ["parameters", "1,000,000,000"]),
    (GAN, {"architecture": "mlp", "generator_hidden_dims": (65_536, 65_536)}, ["parameters"]),
]


@pytest.mark.parametrize(("cls", "kwargs", "words"), INVALID_CONFIGS,
                         ids=[f"{c.__name__}-{'-'.join(map(str, k))}" for c, k, _ in INVALID_CONFIGS])
def test_invalid_configuration_raises_config_error_naming_the_field(cls, kwargs, words):
    # Built on the meta device: if validation ever regressed, an absurd size could not exhaust memory.
    with torch.device("meta"), pytest.raises(ConfigError) as info:
        cls(**kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert isinstance(info.value, vaegan.VaeganError) and isinstance(info.value, ValueError)


def test_config_error_suggests_the_closest_value():
    with pytest.raises(ConfigError, match="Did you mean 'wgan_gp'"):
        GAN(loss="wgan-gp")


def test_valid_non_default_configurations_build():
    # the validation is not so strict that it refuses sensible models
    assert VAE(image_size=30, strides=(1, 2, 1), block_out_channels=(4, 8, 8), kernel_size=5).image_shape == (1, 30, 30)
    assert AE(latent_dim=1000, architecture="mlp", hidden_dims=(8,)).latent_dim == 1000
    assert GAN(image_size=30, base_channels=4, latent_dim=4).sample(1).shape == (1, 1, 30, 30)
    mlp_gan = GAN(image_size=7, architecture="mlp", generator_hidden_dims=(8,), discriminator_hidden_dims=(8,))
    assert mlp_gan.image_shape == (1, 7, 7)
