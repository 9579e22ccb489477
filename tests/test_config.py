"""YAML configs: every shipped config loads, overrides apply, mistakes get messages that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vaegan.errors import ConfigError
from vaegan.training import Trainer, load_config
from vaegan.training.config import config_from_dict
from vaegan.training.finetune import recorded_training_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
VAE_CONFIG = Path(__file__).parents[1] / "configs" / "mnist-vae.yaml"
EXPECTED = {"mnist-ae", "mnist-vae", "mnist-vae-16d", "mnist-gan", "mnist-dcgan", "mnist-wgan", "mnist-wgan-gp",
            "mnist-sngan", "mnist-cvae", "mnist-cdcgan", "mnist-pixelcnn", "mnist-cpixelcnn", "mnist-vqvae",
            "mnist-cvqvae",
            "cifar10-dcgan",
            "celeba64-vae", "celeba64-dcgan",
            "fashion-mnist-vae"}  # the last four: test_rgb_configs


def test_every_seed_model_has_a_config():
    assert {p.stem for p in CONFIGS} == EXPECTED


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem.startswith("mnist-")], ids=lambda p: p.stem)
def test_shipped_configs_load_and_build(path):
    config = load_config(path)
    model = config.model_class(**config.model_kwargs)
    assert model.image_shape == (1, 28, 28)
    assert config.data.source == "mnist-5k"
    assert "#" in path.read_text()  # documented with comments


def test_overrides_are_parsed_as_yaml(tmp_path):
    config = load_config(VAE_CONFIG, ["train.epochs=3", "train.betas=[0.5, 0.9]", "data.limit=null",
                                      "model.latent_dim=8", f"train.output_dir={tmp_path}"])
    assert (config.train.epochs, config.train.betas, config.data.limit) == (3, [0.5, 0.9], None)
    assert config.model["latent_dim"] == 8 and config.train.output_dir == str(tmp_path)


def test_exponent_floats_in_yaml_files_are_numbers(tmp_path):
    """PyYAML reads YAML 1.1, where 1e-3 is a string; config files read it as YAML 1.2 does, like --set."""
    raw = yaml.safe_load(VAE_CONFIG.read_text())
    text = yaml.safe_dump(raw).replace("train:\n", "train:\n  learning_rate: 1e-3\n  weight_decay: 1E-5\n"
                                       "  max_grad_norm: +2.5e+1\n  phase_learning_rates: {model: 5.e-4}\n"
                                       "  betas: [5e-1, .9e0]\n", 1)
    text += "hub:\n  repo_id: '1e-3'\n"  # quoted: still a string
    (tmp_path / "c.yaml").write_text(text)
    config = load_config(tmp_path / "c.yaml")
    t = config.train
    assert (t.learning_rate, t.weight_decay, t.max_grad_norm, t.phase_learning_rates, t.betas) == (
        1e-3, 1e-5, 25.0, {"model": 5e-4}, [0.5, 0.9])
    assert config.hub.repo_id == "1e-3"
    assert load_config(tmp_path / "c.yaml", ["train.learning_rate=2e-4"]).train.learning_rate == 2e-4
    # A model's training_config.yaml (what `vaegan train MODEL` fine-tunes with) is read the same way.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "training_config.yaml").write_text(text)
    assert recorded_training_config(str(tmp_path / "model"))["train"]["learning_rate"] == 1e-3


def test_resolved_config_round_trips(tmp_path):
    config = load_config(VAE_CONFIG, ["train.epochs=2"])
    config.save(tmp_path / "config.yaml")
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == config


@pytest.mark.parametrize(("override", "message"), [
    ("train.epoch=3", r"unknown key 'train.epoch'. Did you mean 'epochs'\?"),
    ("train.learning_rte=1", r"Did you mean 'learning_rate'\?"),
    ("model.latent_dims=3", r"unknown key 'model.latent_dims' for VAE. Did you mean 'latent_dim'\?"),
    ("trian.epochs=3", r"unknown section 'trian'.* Did you mean 'train'\?"),
    ("train.epochs=many", r"'train.epochs' must be of type int, got 'many'"),
    ("train.epochs=0", r"'train.epochs' must be >= 1, got 0"),
    ("train.mixed_precision=fp8", r"'train.mixed_precision' must be one of no, fp16, bf16"),
    ("train.optimizer=adamm", r"'train.optimizer' must be one of adam"),
    ("train.phase_learning_rates={generator: 0.1}", r"unknown phase 'generator'; VAE trains the phases model"),
    ("data.holdout_fraction=1.5", r"'data.holdout_fraction' must be in \(0, 1\)"),
    ("model.class=VEA", r"Unknown vaegan model class 'VEA'. Did you mean 'VAE'\?"),
    ("epochs=3", r"--set expects section.key=value"),
])
def test_config_errors_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(VAE_CONFIG, [override])


def test_bad_model_value_fails_before_training(tmp_path):
    config = load_config(VAE_CONFIG, ["model.strides=[2, 2, 2, 2]", f"train.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"strides=\[2, 2, 2, 2\] downsample by 16, but image_size=28"):
        Trainer(config)


def test_bad_data_path_is_reported(tmp_path):
    config = load_config(VAE_CONFIG, [f"data.source=imagefolder:{tmp_path / 'missing'}",
                                      f"train.output_dir={tmp_path / 'out'}"])
    with pytest.raises(FileNotFoundError, match="missing"):
        Trainer(config)


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
