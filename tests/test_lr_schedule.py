"""train.lr_scheduler / train.lr_warmup_steps: the learning rate over a stage, continued exactly on resume."""

from __future__ import annotations

import json
import math

import pytest
from training_utils import model_tensors, reset_accelerate_state, stop_after_checkpoint, tiny_config

from vaegan.errors import ConfigError
from vaegan.training import Trainer, train
from vaegan.training.config import config_from_dict
from vaegan.training.schedules import lr_factor


def test_factors_follow_the_diffusers_shapes():
    assert [lr_factor("constant", 0, s, 10) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor("constant", 3, s, 10) for s in (0, 1, 2, 3)] == [0.25, 0.5, 0.75, 1.0]  # warm-up from ~0
    assert [lr_factor("linear", 0, s, 10) for s in (0, 5)] == [1.0, 0.5]
    assert lr_factor("cosine", 0, 0, 10) == 1.0
    assert math.isclose(lr_factor("cosine", 0, 5, 10), 0.5)
    assert math.isclose(lr_factor("cosine", 2, 6, 10), 0.5)  # half-way through the steps after the warm-up
    assert 0 < lr_factor("cosine", 0, 9, 10) < 0.03 and lr_factor("linear", 0, 9, 10) == pytest.approx(0.1)


def test_cosine_schedule_is_applied_recorded_and_resumes_bit_exactly(tmp_path, monkeypatch):
    settings = {"epochs": 2, "learning_rate": 1e-3, "lr_scheduler": "cosine", "lr_warmup_steps": 2,
                "checkpoint_every": 6}
    trainer = Trainer(tiny_config("vae", tmp_path / "straight", **settings))
    trainer.train()  # 256 digits in batches of 32: 16 steps
    [[optimizer]] = [list(optimizers.values()) for optimizers in trainer.stage_optimizers.values()]
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(1e-3 * lr_factor("cosine", 2, 15, 16))]
    summary = json.loads((tmp_path / "straight" / "training_summary.json").read_text())
    assert summary["optimizer"] == "adam (lr 0.001, cosine schedule, 2 warm-up steps)"
    reset_accelerate_state()
    constant = train(tiny_config("vae", tmp_path / "constant", **{**settings, "lr_scheduler": "constant"}))
    reset_accelerate_state()

    original = stop_after_checkpoint(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config("vae", tmp_path / "split", **settings))
    reset_accelerate_state()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = train(tiny_config("vae", tmp_path / "split", **settings), resume="latest")
    expected, actual = model_tensors(tmp_path / "straight" / "model"), model_tensors(resumed)
    assert all(_equal(expected[name], actual[name]) for name in expected)
    assert not all(_equal(expected[name], tensor) for name, tensor in model_tensors(constant).items())


def _equal(a, b):
    return a.shape == b.shape and bool((a == b).all())


def test_a_stage_takes_its_own_schedule_and_bad_values_are_named():
    config = config_from_dict({"model": {"class": "VQVAE", "num_codes": 8},
                               "train": {"stages": {"prior": {"lr_scheduler": "cosine", "lr_warmup_steps": 10}}}})
    assert config.stage_settings("prior").lr_scheduler == "cosine"
    assert config.stage_settings("prior").lr_warmup_steps == 10
    assert config.stage_settings("vqvae").lr_scheduler == "constant"
    with pytest.raises(ConfigError, match=r"'train.lr_scheduler' must be one of constant, linear, cosine, got 'cosin'"):
        config_from_dict({"model": {"class": "VAE"}, "train": {"lr_scheduler": "cosin"}})
    with pytest.raises(ConfigError, match=r"'train.stages.prior.lr_warmup_steps' must be >= 0"):
        config_from_dict({"model": {"class": "VQVAE"}, "train": {"stages": {"prior": {"lr_warmup_steps": -1}}}})
