"""Sample-quality options: EMA generator, DiffAugment, spectral norm, hinge loss, R1, and Gaussian-mixture priors."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from model_helpers import gen, tiny_kwargs
from safetensors.torch import load_file
from training_utils import model_tensors, read_metrics, reset_accelerate_state, tiny_config

from vaegan import AE, GAN, VAE, AutoModel
from vaegan.errors import ConfigError
from vaegan.models.augment import cutout, diff_augment, translation
from vaegan.models.ema import warmed_up_decay
from vaegan.models.regularizers import r1_penalty
from vaegan.priors import GaussianMixturePrior
from vaegan.training import Trainer, train
from vaegan.training.config import config_from_dict
from vaegan.training.trainer import list_checkpoints

DATA = Path(__file__).parent / "data"
MLP_GAN = tiny_kwargs("gan-mlp", discriminator_dropout=0.0)
DCGAN = tiny_kwargs("gan")
TINY_AE = {"architecture": "conv", "block_out_channels": (4, 8), "strides": (2, 2), "latent_dim": 3}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


def _sgd_step(model: GAN, phase: str, lr: float = 0.1) -> None:
    """One plain optimizer step of ``phase`` followed by the model's hook, as the trainer does it."""
    model.zero_grad()
    model.compute_loss(phase, torch.rand(4, *model.image_shape), step=0)["loss"].backward()
    with torch.no_grad():
        for param in model.phase_parameters(phase):
            param -= lr * param.grad
    model.after_optimizer_step(phase)


# ------------------------------------------------------------------ EMA
@pytest.mark.parametrize("decay", [0.999, 0.05])
def test_ema_after_one_step_follows_the_documented_formula(decay):
    torch.manual_seed(0)
    model = GAN(**MLP_GAN, ema_decay=decay)
    before = {k: v.clone() for k, v in model.generator.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in model.generator_ema.network.state_dict().items())
    _sgd_step(model, "discriminator")  # the discriminator's steps leave the average alone
    assert int(model.generator_ema.updates) == 0
    _sgd_step(model, "generator")
    d = min(decay, 2 / 11)  # (1 + t) / (10 + t) with t = 1
    assert warmed_up_decay(decay, 1) == d
    after, ema = model.generator.state_dict(), model.generator_ema.network.state_dict()
    params = {name for name, _ in model.generator.named_parameters()}
    assert params and int(model.generator_ema.updates) == 1
    # (A linear bias in front of batch-norm gets no gradient, so not every weight moves.)
    assert sum(not torch.equal(before[name], after[name]) for name in params) >= len(params) // 2
    for name in after:
        if name in params:
            torch.testing.assert_close(ema[name], d * before[name] + (1 - d) * after[name], rtol=1e-6, atol=1e-7)
        else:  # batch-norm statistics are copied
            assert torch.equal(ema[name], after[name]), name


def test_ema_weights_are_buffers_not_parameters():
    model = GAN(**MLP_GAN, ema_decay=0.99)
    names = [name for name, _ in model.named_parameters()]
    assert not [name for name in names if "ema" in name]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in GAN(**MLP_GAN).parameters())
    assert any(name.startswith("generator_ema.network.") for name in model.state_dict())


def test_sample_uses_the_ema_generator_unless_told_otherwise():
    torch.manual_seed(0)
    model = GAN(**MLP_GAN, ema_decay=0.5)
    for _ in range(3):
        _sgd_step(model, "generator", lr=1.0)
    latents = model.prior_latents(5, gen(0))
    with model._eval_mode():
        via_ema = (torch.tanh(model.generator_ema(latents)) + 1) / 2
        via_raw = (torch.tanh(model.generator(latents)) + 1) / 2
    assert not torch.allclose(via_ema, via_raw)
    torch.testing.assert_close(model.sample(5, generator=gen(0)), via_ema, rtol=0, atol=0)
    torch.testing.assert_close(model.sample(5, generator=gen(0), use_ema=False), via_raw, rtol=0, atol=0)
    assert model.use_ema  # restored after use_ema=False
    model.use_ema = False
    torch.testing.assert_close(model.sample(5, generator=gen(0)), via_raw, rtol=0, atol=0)


def test_pipeline_samples_the_ema_generator():
    from vaegan.pipelines import GANPipeline

    torch.manual_seed(0)
    model = GAN(**MLP_GAN, ema_decay=0.5)
    for _ in range(3):
        _sgd_step(model, "generator", lr=1.0)
    images = GANPipeline(model)(batch_size=3, generator=gen(0), output_type="pt").images
    torch.testing.assert_close(images, model.sample(3, generator=gen(0)), rtol=0, atol=0)
    assert not torch.allclose(images, model.sample(3, generator=gen(0), use_ema=False))


def test_ema_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = GAN(**DCGAN, ema_decay=0.9)
    for _ in range(2):
        _sgd_step(model, "generator")
    model.save_pretrained(tmp_path, model_card=False)
    saved = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert "generator_ema.updates" in saved and any(k.startswith("generator_ema.network.") for k in saved)
    loaded = GAN.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(loaded.sample(3, generator=gen(1)), model.sample(3, generator=gen(1)))
    # A GAN saved without EMA has no EMA tensors and still loads strictly.
    GAN(**DCGAN).save_pretrained(tmp_path / "plain", model_card=False)
    assert not GAN.from_pretrained(tmp_path / "plain").has_ema


def test_ema_resume_is_bit_exact(tmp_path):
    """Checkpoints hold the EMA (Accelerate's save_state), so a resumed run ends with the same average."""
    model = {"class": "GAN", **MLP_GAN, "ema_decay": 0.9}
    base = tiny_config("gan", tmp_path / "straight", epochs=2)
    straight = train(dataclasses.replace(base, model=model))
    first = tiny_config("gan", tmp_path / "resumed", epochs=2, checkpoint_every=5, max_steps=11)
    first = dataclasses.replace(first, model=model)
    train(first)
    checkpoint = list_checkpoints(tmp_path / "resumed")[-1]
    in_checkpoint = load_file(checkpoint / "model.safetensors")
    assert int(in_checkpoint["model.generator_ema.updates"]) == 10
    reset_accelerate_state()
    resumed = train(dataclasses.replace(first, train=dataclasses.replace(first.train, max_steps=None)),
                    resume="latest")
    expected, actual = model_tensors(straight), model_tensors(resumed)
    assert expected.keys() == actual.keys() and int(actual["generator_ema.updates"]) == 16
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


# ------------------------------------------------------------------ DiffAugment
def test_diff_augment_off_is_the_identity():
    images = torch.rand(3, 1, 8, 8)
    for policy in (None, "", " , "):
        assert diff_augment(images, policy) is images
    model = GAN(**MLP_GAN)
    assert model.augment(images) is images


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diff_augment_keeps_shapes_is_seeded_and_differentiable(policy):
    images = (torch.rand(6, 3, 12, 10) * 2 - 1).requires_grad_(True)
    out = diff_augment(images, policy, gen(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(out, diff_augment(images, policy, gen(0)))
    assert not torch.equal(out, diff_augment(images, policy, gen(1)))
    (out * torch.randn_like(out)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_translation_shifts_whole_images_with_zeros_moving_in():
    images = torch.rand(64, 2, 16, 16) + 1  # no zeros inside, so the padding is recognisable
    out = translation(images, gen(0))
    shifts = set()
    for image, moved in zip(images, out, strict=True):
        found = [(dy, dx) for dy, dx in itertools.product(range(-2, 3), repeat=2)
                 if torch.equal(moved, _shift(image, dy, dx))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 10  # per-image shifts, not one for the batch


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[:, max(-dy, 0):h - max(dy, 0),
                                                                         max(-dx, 0):w - max(dx, 0)]
    return out


def test_cutout_zeroes_one_square_per_image():
    images = torch.rand(32, 1, 12, 12) + 1
    out = cutout(images, gen(0))
    for image, cut in zip(images, out, strict=True):
        zero = (cut == 0)[0]
        assert torch.equal(cut[:, ~zero], image[:, ~zero])  # the rest is untouched
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 6 and 0 < len(cols) <= 6
        assert zero.sum() == len(rows) * len(cols)  # a (clipped) rectangle


def test_diff_augment_policy_parsing():
    assert GAN(**MLP_GAN, diff_augment=" translation, cutout").augment_policy == ("translation", "cutout")
    assert GAN(**MLP_GAN, diff_augment=["color", "cutout"]).augment_policy == ("color", "cutout")
    with pytest.raises(ConfigError, match="unknown policy 'flip'.*color, translation, cutout"):
        GAN(**MLP_GAN, diff_augment="translation,flip")
    with pytest.raises(ConfigError, match="twice"):
        GAN(**MLP_GAN, diff_augment="cutout,cutout")
    with pytest.raises(ConfigError, match="comma-separated"):
        GAN(**MLP_GAN, diff_augment=3)


def test_diff_augment_gradients_reach_the_generator():
    torch.manual_seed(0)
    model = GAN(**DCGAN, diff_augment="color,translation,cutout")
    model.compute_loss("generator", torch.rand(4, 1, 28, 28), step=0)["loss"].backward()
    grads = [p.grad for p in model.generator.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


# ------------------------------------------------------------------ spectral norm, hinge, R1
def _largest_singular_value(matrix: torch.Tensor, iterations: int = 200) -> float:
    """Power iteration on ``matrix^T matrix``, independent of torch's stored ``_u`` / ``_v``."""
    v = torch.randn(matrix.shape[1], generator=gen(0), dtype=torch.float64)
    matrix = matrix.double()
    for _ in range(iterations):
        v = matrix.T @ (matrix @ v)
        v = v / v.norm()
    return float((matrix @ v).norm())


@pytest.mark.parametrize("settings", [DCGAN, MLP_GAN], ids=["dcgan", "mlp"])
def test_spectral_norm_keeps_the_largest_singular_value_near_one(settings):
    torch.manual_seed(0)
    model = GAN(**settings, discriminator_norm="spectral", loss="hinge")
    for _ in range(5):
        _sgd_step(model, "discriminator", lr=0.01)
    model.eval()
    layers = [m for m in model.discriminator.modules() if hasattr(m, "parametrizations")]
    assert len(layers) >= 2
    for layer in layers:
        weight = layer.weight.detach().flatten(1)
        assert abs(_largest_singular_value(weight) - 1) < 0.05
    # ... while the raw weights' are not 1: the normalisation does the work.
    raw = [_largest_singular_value(layer.parametrizations.weight.original.detach().flatten(1)) for layer in layers]
    assert all(abs(sigma - 1) > 0.1 for sigma in raw), raw
    assert not [m for m in model.discriminator.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_spectral_norm_discriminator_saves_and_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = GAN(**DCGAN, discriminator_norm="spectral", loss="hinge")
    _sgd_step(model, "discriminator")
    model.save_pretrained(tmp_path, model_card=False)
    saved = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert any(k.endswith("parametrizations.weight.0._u") for k in saved)
    loaded = GAN.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    images = torch.rand(3, 1, 28, 28)
    with model._eval_mode(), loaded._eval_mode():
        assert torch.equal(model.discriminate(images), loaded.discriminate(images))


def test_hinge_loss_values():
    model = GAN(**MLP_GAN, loss="hinge")
    logits = iter([torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])])
    model._critic = lambda images, noise_std, labels=None: (next(logits), torch.zeros(()))  # (logits, class loss)
    d_loss = model.compute_loss("discriminator", torch.rand(2, 1, 28, 28), step=0)["loss"]
    assert d_loss.item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)  # relu(1 - real) + relu(1 + fake)
    model._critic = lambda images, noise_std, labels=None: (torch.tensor([2.0, -1.0]), torch.zeros(()))
    assert model.compute_loss("generator", torch.rand(2, 1, 28, 28), step=0)["loss"].item() == pytest.approx(-0.5)
    assert model.n_critic == 1


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    weight = torch.randn(1, 12, generator=gen(0), requires_grad=True)
    real = torch.randn(5, 1, 3, 4, generator=gen(1)).requires_grad_(True)
    penalty = r1_penalty(real.flatten(1) @ weight.T, real)
    torch.testing.assert_close(penalty, weight.pow(2).sum())
    penalty.backward()
    torch.testing.assert_close(weight.grad, 2 * weight.detach())


def test_r1_is_added_to_the_discriminator_loss():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 28, 28)
    plain, with_r1 = GAN(**MLP_GAN), GAN(**MLP_GAN, r1_gamma=10.0)
    with_r1.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    base = plain.compute_loss("discriminator", images, step=0)
    torch.manual_seed(1)
    regularised = with_r1.compute_loss("discriminator", images, step=0)
    assert regularised["r1_penalty"] > 0
    torch.testing.assert_close(regularised["loss"], base["loss"] + 5.0 * regularised["r1_penalty"])


# ------------------------------------------------------------------ priors
def _known_mixture(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weights = torch.tensor([0.2, 0.3, 0.5])
    means = torch.tensor([[-4.0, 0.0], [4.0, 1.0], [0.0, 6.0]])
    g = gen(0)
    index = torch.multinomial(weights, n, replacement=True, generator=g)
    scales = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.7, 0.0], [0.0, 0.7]], [[0.5, 0.0], [-0.3, 1.0]]])
    points = means[index] + torch.einsum("nij,nj->ni", scales[index], torch.randn(n, 2, generator=g))
    return points, weights, means


def _match(found_means: torch.Tensor, means: torch.Tensor) -> list[int]:
    return [int((found_means - mean).norm(dim=1).argmin()) for mean in means]


def test_gmm_prior_recovers_a_known_mixture_and_samples_it():
    points, weights, means = _known_mixture(3000)
    prior = GaussianMixturePrior(latent_dim=2, components=3)
    prior.fit(points)
    order = _match(prior.means, means)
    assert sorted(order) == [0, 1, 2]
    torch.testing.assert_close(prior.weights[order].float(), weights, atol=0.03, rtol=0)
    torch.testing.assert_close(prior.means[order].float(), means, atol=0.1, rtol=0)
    # Sampling (torch only) reproduces the mixture's weights and is seeded.
    drawn = prior.sample(20000, gen(3))
    nearest = torch.cdist(drawn, means).argmin(1)
    torch.testing.assert_close(torch.bincount(nearest, minlength=3) / 20000, weights, atol=0.02, rtol=0)
    assert torch.equal(prior.sample(10, gen(3)), prior.sample(10, gen(3)))
    assert not torch.equal(prior.sample(10, gen(3)), prior.sample(10, gen(4)))


@pytest.mark.parametrize("cls", [AE, VAE])
def test_gmm_prior_is_saved_and_loaded_strictly(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(**TINY_AE, prior="gmm", prior_components=3)
    assert not model.can_sample
    with pytest.raises(RuntimeError, match="not fitted yet|no latent prior yet"):
        model.sample(2)
    model.on_train_end(torch.rand(40, 1, 28, 28).split(16))
    assert model.can_sample
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert {"latent_prior.weights", "latent_prior.means", "latent_prior.scale_trils"} <= saved.keys()
    assert "prior_mean" not in saved
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.prior == "gmm" and loaded.can_sample
    assert torch.equal(loaded.sample(4, generator=gen(2)), model.sample(4, generator=gen(2)))
    assert (tmp_path / "samples.png").is_file()  # the model card's grid


def test_vae_standard_prior_is_the_default_and_needs_no_fitting():
    vae = VAE(**TINY_AE)
    assert vae.config.prior == "standard" and vae.can_sample
    assert not [k for k in vae.state_dict() if "prior" in k]
    torch.testing.assert_close(vae.prior_latents(3, gen(0)), torch.randn(3, 3, generator=gen(0)))
    with pytest.raises(ValueError, match="prior='gmm'"):
        vae.fit_prior(torch.randn(10, 3))


def test_unknown_prior_is_a_config_error():
    with pytest.raises(ConfigError, match="prior"):
        AE(**TINY_AE, prior="standard")
    with pytest.raises(ConfigError, match="prior"):
        VAE(**TINY_AE, prior="gaussian")


def test_ae_saved_before_priors_existed_still_loads():
    """A folder written before `prior` existed (tests/data, saved with that code) loads and samples the same."""
    folder = DATA / "ae-gaussian-prior-v0"
    assert "prior" not in json.loads((folder / "config.json").read_text())
    model = AE.from_pretrained(folder)
    assert model.config.prior == "gaussian" and model.has_prior
    expected = load_file(DATA / "ae-gaussian-prior-v0-samples.safetensors")["samples"]
    torch.testing.assert_close(model.sample(4, generator=gen(0)), expected, rtol=0, atol=0)


# ------------------------------------------------------------------ tiny end-to-end runs
def _config(tmp_path: Path, model: dict):
    return config_from_dict({
        "model": model,
        "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path), "epochs": 1, "max_steps": 4, "batch_size": 32, "log_every": 1,
                  "checkpoint_every": 1000, "num_preview_images": 4, "sample_every_epochs": 1},
    })


@pytest.mark.parametrize("model", [
    {"class": "GAN", **MLP_GAN, "ema_decay": 0.99},
    {"class": "GAN", **MLP_GAN, "diff_augment": "color,translation,cutout"},
    {"class": "GAN", **DCGAN, "discriminator_norm": "spectral", "loss": "hinge"},
    {"class": "GAN", **DCGAN, "r1_gamma": 1.0},
    {"class": "GAN", **DCGAN, "discriminator_norm": "spectral", "loss": "hinge", "ema_decay": 0.99,
     "diff_augment": "translation,cutout", "r1_gamma": 0.1},
    {"class": "AE", **TINY_AE, "prior": "gmm", "prior_components": 4},
    {"class": "VAE", **TINY_AE, "prior": "gmm", "prior_components": 4},
], ids=["ema", "diffaugment", "sngan-hinge", "r1", "all-gan-options", "ae-gmm", "vae-gmm"])
def test_tiny_run_of_each_option_has_finite_losses(tmp_path, model):
    model_dir = train(_config(tmp_path, {k: list(v) if isinstance(v, tuple) else v for k, v in model.items()}))
    metrics = read_metrics(tmp_path)
    losses = [v for m in metrics for k, v in m.items() if k.endswith("loss")]
    assert len(metrics) == 4 and losses and all(math.isfinite(v) for v in losses)
    loaded = AutoModel.from_pretrained(model_dir)
    images = loaded.sample(3, generator=gen(0))
    assert images.shape == (3, 1, 28, 28) and torch.isfinite(images).all()


def test_fine_tuning_can_switch_the_new_options_on_and_off(tmp_path):
    """--init-from a model saved without EMA / with another prior: the new state is built, not refused."""
    torch.manual_seed(0)
    GAN(**MLP_GAN).save_pretrained(tmp_path / "gan", model_card=False)
    config = _config(tmp_path / "gan-ema", {"class": "GAN", **MLP_GAN, "ema_decay": 0.9})
    model = Trainer(config, init_from=str(tmp_path / "gan")).model
    assert model.has_ema and int(model.generator_ema.updates) == 0
    for name, tensor in model.generator.state_dict().items():
        assert torch.equal(model.generator_ema.network.state_dict()[name], tensor), name
    reset_accelerate_state()
    model.save_pretrained(tmp_path / "gan-with-ema", model_card=False)
    config = _config(tmp_path / "gan-plain", {"class": "GAN", **MLP_GAN, "ema_decay": 0.0})
    assert not Trainer(config, init_from=str(tmp_path / "gan-with-ema")).model.has_ema
    reset_accelerate_state()
    config = _config(tmp_path / "ae-gmm", {"class": "AE", **TINY_AE, "prior": "gmm", "prior_components": 2})
    model = Trainer(config, init_from=str(DATA / "ae-gaussian-prior-v0")).model
    assert model.config.prior == "gmm" and not model.has_prior  # refitted at the end of training
