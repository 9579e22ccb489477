"""Class-conditional AE / VAE / GAN: shapes, determinism, labels, save/load, old folders and diffusers conventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.autoencoders.vae import DecoderOutput
from model_helpers import TINY_CONFIGS, gen
from safetensors.torch import load_file

from vaegan import AE, GAN, VAE, AutoModel, ConfigError
from vaegan.figures import class_grid

DATA = Path(__file__).parent / "data" / "pre-conditioning"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SIZES = {"28x28x1": (28, 1), "32x32x3": (32, 3)}
FAMILIES = TINY_CONFIGS


def make(family: str, size: str = "28x28x1", conditional: bool = True, **overrides):
    torch.manual_seed(0)
    cls, kwargs = FAMILIES[family]
    image_size, channels = SIZES[size]
    if conditional:
        kwargs = {**kwargs, "num_classes": 10, "class_names": NAMES}
    model = cls(image_size=image_size, in_channels=channels, **{**kwargs, **overrides})
    if isinstance(model, AE):
        model.fit_prior(torch.randn(64, model.latent_dim, generator=gen(123)))
    return model


def images_for(model, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *model.image_shape, generator=gen(seed))


# ---------------------------------------------------------------------------------------------------- generation
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_conditional_shapes_determinism_and_label_effect(family, size):
    model = make(family, size)
    assert model.num_classes == 10 and model.class_names == NAMES
    sevens = model.sample(4, generator=gen(0), class_labels=7)
    assert sevens.shape == (4, *model.image_shape) and 0 <= sevens.min() and sevens.max() <= 1
    assert torch.equal(sevens, model.sample(4, generator=gen(0), class_labels=7))
    assert not torch.equal(sevens, model.sample(4, generator=gen(1), class_labels=7))
    # The label changes the images, and every way of naming it gives the same ones.
    assert not torch.equal(sevens, model.sample(4, generator=gen(0), class_labels=2))
    for same in ("seven", [7, 7, 7, 7], ["seven"] * 4, torch.tensor(7), torch.full((4,), 7), np.int64(7),
                 np.array([7, 7, 7, 7])):
        assert torch.equal(model.sample(4, generator=gen(0), class_labels=same), sevens), same
    mixed = model.sample(3, generator=gen(0), class_labels=[1, "two", 3])
    assert mixed.shape == (3, *model.image_shape)


@pytest.mark.parametrize("family", ["vae-mlp", "gan"])
def test_no_labels_draws_them_uniformly_with_the_generator(family):
    model = make(family)
    a = model.sample(6, generator=gen(5))
    assert torch.equal(a, model.sample(6, generator=gen(5)))
    # Latents first, then labels, from the same generator: the drawn labels reproduce the images.
    g = gen(5)
    model.prior_latents(6, g)
    drawn = torch.randint(10, (6,), generator=g)
    assert torch.equal(a, model.sample(6, generator=gen(5), class_labels=drawn))
    labels = model.prepare_class_labels(None, 2000, gen(0), draw_missing=True)
    counts = torch.bincount(labels, minlength=10)
    assert counts.min() > 150 and counts.max() < 250  # uniform: 200 expected per class


@pytest.mark.parametrize("family", list(FAMILIES))
def test_generate_all_classes_is_one_row_per_latent(family):
    model = make(family)
    latents = model.prior_latents(2, gen(0))
    grid = model.generate_all_classes(latents)
    assert grid.shape == (20, *model.image_shape)
    with torch.no_grad():
        model.eval()
        for i in range(2):
            row = model.decode_latents(latents[i].expand(10, -1), torch.arange(10))
            assert torch.allclose(grid[i * 10:(i + 1) * 10], row, atol=1e-6)
    assert class_grid(model, per_class=2, seed=0).shape == (20, *model.image_shape)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_interpolate_with_labels(family):
    model = make(family).eval()
    z = model.prior_latents(2, gen(0))
    path = model.interpolate(z[0], z[1], steps=4, class_labels="three", mode="lerp")
    with torch.no_grad():
        ends = model.decode_latents(z, torch.tensor([3, 3]))
    assert torch.allclose(path[[0, -1]], ends, atol=1e-5)
    per_step = model.interpolate(z[0], z[1], steps=4, class_labels=[3, 3, 5, 5], mode="lerp")
    assert torch.allclose(per_step[0], path[0], atol=1e-6) and not torch.allclose(per_step[-1], path[-1])
    if model.has_encoder:  # image end points are encoded with the first and the last label
        x = images_for(model, 2)
        frames = model.interpolate(x[0], x[1], steps=3, class_labels=[1, 1, 4])
        assert torch.allclose(frames[0], model.reconstruct(x[:1], class_labels=1)[0], atol=1e-5)
        assert torch.allclose(frames[-1], model.reconstruct(x[1:], class_labels=4)[0], atol=1e-5)


# ---------------------------------------------------------------------------------------------------- bad labels
@pytest.mark.parametrize("family", ["vae", "ae-mlp", "gan"])
def test_bad_labels_raise_clear_errors(family):
    conditional, unconditional = make(family), make(family, conditional=False)
    with pytest.raises(ValueError, match="unconditional.*drop class_labels"):
        unconditional.sample(2, class_labels=1)
    with pytest.raises(ValueError, match="generate_all_classes needs a class-conditional"):
        unconditional.generate_all_classes(unconditional.prior_latents(1, gen(0)))
    with pytest.raises(ValueError, match=r"class label 10 is out of range.*10 classes \(labels 0 to 9\)"):
        conditional.sample(2, class_labels=10)
    with pytest.raises(ValueError, match="out of range"):
        conditional.sample(2, class_labels=torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="unknown class name 'sevn'. Did you mean 'seven'"):
        conditional.sample(2, class_labels="sevn")
    with pytest.raises(TypeError, match="integers in \\[0, 9\\] or class names, got float 7.0"):
        conditional.sample(2, class_labels=7.0)
    with pytest.raises(TypeError, match="integer tensor, got dtype torch.float32"):
        conditional.sample(2, class_labels=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="got bool"):
        conditional.sample(2, class_labels=True)
    with pytest.raises(ValueError, match="got 3 class labels for 2 samples"):
        conditional.sample(2, class_labels=[1, 2, 3])
    z = conditional.prior_latents(2, gen(0))
    with pytest.raises(ValueError, match="class-conditional.*pass class_labels"):
        conditional.interpolate(z[0], z[1])
    with pytest.raises(ValueError, match="class-conditional.*class_labels"):
        conditional(z if isinstance(conditional, GAN) else images_for(conditional, 2))
    nameless = make(family, class_names=None)
    with pytest.raises(ValueError, match="no class_names; pass an integer"):
        nameless.sample(1, class_labels="seven")


@pytest.mark.parametrize("kwargs, words", [
    ({"class_names": ["a", "b"]}, "class_names is set but num_classes is not"),
    ({"num_classes": 1}, "num_classes must be an integer in [2"),
    ({"num_classes": 2.0}, "num_classes must be an integer"),
    ({"num_classes": 3, "class_names": ["a", "b"]}, "class_names has 2 names but num_classes is 3"),
    ({"num_classes": 2, "class_names": ["a", "a"]}, "must be unique"),
    ({"num_classes": 2, "class_names": "ab"}, "list of non-empty strings"),
])
@pytest.mark.parametrize("cls", [AE, VAE, GAN])
def test_invalid_class_configuration(cls, kwargs, words):
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert words in str(info.value)


def test_invalid_gan_conditioning():
    with pytest.raises(ConfigError, match="conditioning='aux'.*'projection', 'acgan'"):
        GAN(num_classes=10, conditioning="aux")
    with pytest.raises(ConfigError, match="conditioning='acgan' needs a class-conditional GAN; set num_classes"):
        GAN(conditioning="acgan")


# ---------------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("family", list(FAMILIES))
def test_losses_train_the_label_embeddings(family):
    model = make(family).train()
    images, labels = images_for(model, 4), torch.tensor([0, 1, 2, 3])
    for phase in model.training_phases:
        model.zero_grad(set_to_none=True)
        losses = model.compute_loss(phase, images, step=0, class_labels=labels)
        assert torch.isfinite(losses["loss"])
        losses["loss"].backward()
        label_params = [(name, param) for name, param in model.named_parameters()
                        if "label_embedding" in name or "projection" in name or "classifier" in name]
        assert label_params
        for name, param in label_params:
            has_grad = param.grad is not None and param.grad.abs().sum() > 0
            if not isinstance(model, GAN) or name.startswith(phase):
                assert has_grad, (phase, name)  # the phase's own label weights learn
            elif phase == "discriminator":
                assert not has_grad, (phase, name)  # fakes for the D step come from a frozen generator
        if family == "gan-acgan":
            assert "class_loss" in losses


def test_gan_conditional_discriminators_have_their_own_weights():
    projection, acgan = make("gan"), make("gan-acgan")
    assert any(".projection." in k for k in projection.state_dict())
    assert any(".classifier." in k for k in acgan.state_dict())
    images = images_for(projection, 3)
    assert projection.discriminate(images, class_labels=[0, 1, 2]).shape == (3,)
    assert not torch.equal(projection.discriminate(images, class_labels=0), projection.discriminate(images, 1))
    assert acgan.discriminate(images).shape == (3,)  # the ACGAN's real/fake logit needs no label


# ---------------------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_load_gives_the_same_conditional_samples(tmp_path, family):
    model = make(family)
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModel.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.num_classes == 10 and loaded.class_names == NAMES
    for labels in (7, [0, 1, 2, 3], None):
        assert torch.equal(loaded.sample(4, generator=gen(3), class_labels=labels),
                           model.sample(4, generator=gen(3), class_labels=labels))


@pytest.mark.parametrize("family", ["vae", "ae", "gan"])
def test_folder_saved_before_class_conditioning_still_loads(family):
    """Folders written by vaegan before this feature (tests/data/pre-conditioning/make_fixtures.py) load strictly."""
    cls = {"vae": VAE, "ae": AE, "gan": GAN}[family]
    model = cls.from_pretrained(DATA / family)
    assert model.num_classes is None and model.class_names is None
    expected = load_file(DATA / f"{family}-samples.safetensors")["samples"]
    # Up to float rounding: the fixtures were made with another number of threads (other CPU kernels).
    torch.testing.assert_close(model.sample(3, generator=gen(0)), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(AutoModel.from_pretrained(DATA / family).sample(3, generator=gen(0)), expected,
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "gan-acgan"])  # acgan needs num_classes
def test_unconditional_weights_keep_their_names(family):
    names = set(make(family, conditional=False).state_dict())
    assert not any("label_embedding" in n or ".net." in n for n in names)
    assert all(n.split(".")[0] in {"encoder", "decoder", "generator", "discriminator", "latent_prior"} for n in names)


# ------------------------------------------------------------------------------- diffusers model conventions
def _plain_config(model) -> dict:
    return json.loads(json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}))


def _forward_inputs(model) -> dict:
    """What ``model(**inputs)`` takes: images for an AE/VAE, latents for a GAN (+ labels when conditional)."""
    inputs = ({"latents": model.prior_latents(3, gen(0))} if isinstance(model, GAN)
              else {"sample": images_for(model, 3)})
    if model.num_classes:
        inputs["class_labels"] = torch.tensor([1, 5, 9])
    return inputs


@pytest.mark.parametrize("family, conditional", [
    *[(family, conditional) for family in ("ae", "vae", "gan", "gan-mlp") for conditional in (0, 1)],
    ("gan-acgan", 1),  # acgan is a conditioning mode: there is no unconditional ACGAN
])
def test_diffusers_model_conventions(tmp_path, family, conditional):
    """What diffusers' ModelTesterMixin checks: output dataclass, return_dict equivalence, determinism, save/load."""
    model = make(family, conditional=conditional).eval()
    inputs = _forward_inputs(model)
    with torch.no_grad():
        output = model(**inputs)
        assert isinstance(output, DecoderOutput)
        as_tuple = model(**inputs, return_dict=False)
        assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.sample)
        assert torch.equal(output.to_tuple()[0], output.sample)
        assert torch.equal(model(**inputs).sample, output.sample)  # determinism
    assert output.sample.shape == (3, *model.image_shape)
    model.save_pretrained(tmp_path / "m")
    loaded = type(model).from_pretrained(tmp_path / "m").eval()
    assert _plain_config(loaded) == _plain_config(model)
    with torch.no_grad():
        assert (loaded(**inputs).sample - output.sample).abs().max() <= 5e-5
