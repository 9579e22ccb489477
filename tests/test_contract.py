"""vaegan.testing's contract suite run against vaegan's own families and the test plugin's (tests/plugin_pkg).

The plugin module is loaded from its source under a private name, so tests/test_plugins.py still imports the
installed package itself; the contract registers its classes only while their tests run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from model_helpers import TINY_CONFIGS, tiny_kwargs

from vaegan import AE, GAN, VAE, PixelCNN
from vaegan.models.registry import get_model_class, registered_class
from vaegan.testing import GenerativeModelContract, registered

NAMES = [str(digit) for digit in range(10)]


def _plugin_source():
    path = Path(__file__).parent / "plugin_pkg" / "vaegan_tiny_plugin" / "__init__.py"
    spec = importlib.util.spec_from_file_location("vaegan_tiny_plugin_source", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


plugin = _plugin_source()


class TestAE(GenerativeModelContract):
    model_class = AE
    tiny_config = tiny_kwargs("ae")
    invalid_configs = [({"latent_dim": 0}, "latent_dim"), ({"architecture": "transformer"}, "architecture")]


class TestConditionalMLPAE(GenerativeModelContract):
    model_class = AE
    tiny_config = tiny_kwargs("ae-mlp", num_classes=10)
    invalid_configs = [({"hidden_dims": []}, "hidden_dims"), ({"class_names": ["a", "b"]}, "class_names")]


class TestVAE(GenerativeModelContract):
    model_class = VAE
    tiny_config = tiny_kwargs("vae")
    invalid_configs = [({"beta": -1.0}, "beta"), ({"block_out_channels": [4, 8], "strides": [2]}, "strides")]


class TestConditionalMLPVAE(GenerativeModelContract):
    model_class = VAE
    tiny_config = tiny_kwargs("vae-mlp", num_classes=10, class_names=NAMES)


class TestGAN(GenerativeModelContract):
    model_class = GAN
    tiny_config = tiny_kwargs("gan")
    invalid_configs = [({"loss": "hinge-ish"}, "loss"), ({"n_critic": 0}, "n_critic")]


class TestMLPGAN(GenerativeModelContract):
    model_class = GAN
    tiny_config = tiny_kwargs("gan-mlp", loss="wgan_gp")


class TestConditionalACGAN(GenerativeModelContract):
    model_class = GAN
    tiny_config = tiny_kwargs("gan-acgan")


class TestPixelCNN(GenerativeModelContract):
    model_class = PixelCNN
    tiny_config = {"image_size": 8, "channels": 8, "num_layers": 2, "head_channels": 8}
    invalid_configs = [({"kernel_size": 4}, "kernel_size"), ({"output": "gaussian"}, "output")]

    def example_images(self, model, n=None, seed=0):  # a bernoulli PixelCNN's likelihood is of binary images
        return (super().example_images(model, n, seed) > 0.5).to(model.dtype)


class TestConditionalCategoricalPixelCNN(GenerativeModelContract):
    model_class = PixelCNN
    tiny_config = {"image_size": 6, "channels": 8, "num_layers": 2, "head_channels": 8, "output": "categorical",
                   "num_classes": 10, "class_names": NAMES}


class TestPluginTinyAE(GenerativeModelContract):
    """The old-signature plugin (methods without class_labels, adapted by vaegan)."""

    model_class = plugin.TinyAE
    tiny_config = {"image_size": 8, "latent_dim": 3}
    invalid_configs = [({"latent_dim": 65}, "latent_dim")]


class TestPluginPixelBernoulli(GenerativeModelContract):
    """The latent-free explicit-density plugin: compute_loss, sample and log_likelihood only."""

    model_class = plugin.PixelBernoulli
    tiny_config = {"image_size": 8}
    invalid_configs = [({"image_size": 1000}, "image_size")]


def test_capability_tests_are_picked_by_capabilities():
    collected = {name for name in dir(TestPluginPixelBernoulli)
                 if name.startswith("test") and callable(getattr(TestPluginPixelBernoulli, name))}
    assert "test_log_likelihood" in collected and "test_short_training_run" in collected
    assert not collected & {"test_latent_space", "test_encoder", "test_reconstruction", "test_likelihood_bounds"}
    vae_tests = {name for name in dir(TestVAE) if callable(getattr(TestVAE, name))}
    assert {"test_latent_space", "test_encoder", "test_reconstruction"} <= vae_tests
    assert TestGAN.test_encoder is None and callable(TestGAN.test_latent_space)


def test_the_contract_registers_a_class_only_while_its_tests_run():
    assert registered_class("PixelBernoulli") is None and registered_class("TinyAE") is None


def test_contract_settings_are_checked():
    with pytest.raises(TypeError, match="model_class must be a vaegan.GenerativeModel subclass"):
        type("TestNotAModel", (GenerativeModelContract,), {"model_class": dict})


def test_every_tiny_config_builds():
    for name, (cls, kwargs) in TINY_CONFIGS.items():
        assert isinstance(cls(**kwargs), cls), name


def test_registered_forgets_only_what_it_registered():
    pixels = plugin.PixelBernoulli
    with registered(pixels):
        assert get_model_class("PixelBernoulli") is pixels
    assert registered_class("PixelBernoulli") is None
    with registered(VAE):
        pass
    assert registered_class("VAE") is VAE
    impostor = type("VAE", (pixels,), {})
    with pytest.raises(AssertionError, match="needs a name of its own"), registered(impostor):
        pass
    assert registered_class("VAE") is VAE


class _GreyPixels(plugin.PixelBernoulli):
    def sample(self, num_samples, generator=None, temperature=1.0, class_labels=None):
        return super().sample(num_samples, generator, temperature, class_labels) * 2  # values up to 2


class _UnseededPixels(plugin.PixelBernoulli):
    def sample(self, num_samples, generator=None, temperature=1.0, class_labels=None):
        return super().sample(num_samples, None, temperature, class_labels)  # ignores the generator


class _BatchNormalisedPixels(plugin.PixelBernoulli):
    def log_likelihood(self, images, class_labels=None):
        values = super().log_likelihood(images, class_labels)
        return values - values.mean() + images.mean()  # depends on the rest of the batch


@pytest.mark.parametrize(("broken", "test", "message"), [
    (_GreyPixels, "test_sample_shape_range_and_dtype", "values must lie in"),
    (_UnseededPixels, "test_sample_is_deterministic_with_a_generator", "the same generator seed gave other images"),
    (_BatchNormalisedPixels, "test_log_likelihood", "depends on the other images of its batch"),
])
def test_the_contract_catches_broken_families(broken, test, message):
    contract = type(f"Test{broken.__name__}", (GenerativeModelContract,),
                    {"model_class": broken, "tiny_config": {"image_size": 8}})()
    with registered(broken), pytest.raises(AssertionError, match=message):
        getattr(contract, test)()
    unbroken = type("TestPixels", (GenerativeModelContract,),
                    {"model_class": plugin.PixelBernoulli, "tiny_config": {"image_size": 8}})()
    with registered(plugin.PixelBernoulli):
        getattr(unbroken, test)()


class TestFlowPriorAE(GenerativeModelContract):
    model_class = AE
    tiny_config = tiny_kwargs("ae-mlp", prior="flow", prior_flow_layers=2, prior_flow_hidden_dim=8)
    invalid_configs = [({"prior_flow_layers": 0}, "prior_flow_layers")]


class TestFlowPriorVAE(GenerativeModelContract):
    model_class = VAE
    tiny_config = tiny_kwargs("vae-mlp", prior="flow", prior_flow_layers=2, prior_flow_hidden_dim=8)
    invalid_configs = [({"prior_flow_hidden_dim": 0}, "prior_flow_hidden_dim")]
