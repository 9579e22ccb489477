"""The Accelerate trainer: every family learns, resume is exact, NaNs stop the run, fine-tuning, bf16."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from training_utils import model_tensors, read_metrics, reset_accelerate_state, tiny_config

from vaegan import AE, AutoModel
from vaegan.errors import ConfigError
from vaegan.training import Trainer, TrainingDivergedError, train
from vaegan.training.trainer import list_checkpoints


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


def _first_last(values: list[float], k: int = 4) -> tuple[float, float]:
    return sum(values[:k]) / k, sum(values[-k:]) / k


@pytest.mark.parametrize("family", ["ae", "vae"])
def test_autoencoders_loss_goes_down(tmp_path, family):
    model_dir = train(tiny_config(family, tmp_path, learning_rate=3e-3))
    first, last = _first_last([m["loss"] for m in read_metrics(tmp_path)])
    assert last < 0.8 * first
    out = tmp_path
    for name in ("config.yaml", "samples.png", "interpolation.png", "interpolation.gif", "training_summary.json",
                 "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (out / name).is_file(), name
    model = AutoModel.from_pretrained(model_dir)
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 28, 28)


def test_gan_discriminator_learns(tmp_path):
    train(tiny_config("gan", tmp_path, learning_rate=2e-4, betas=[0.5, 0.999], epochs=3))
    metrics = read_metrics(tmp_path)
    d_loss = [m["discriminator/loss"] for m in metrics]
    first, last = _first_last(d_loss)
    assert last < first  # from ~log(4) down: D separates real digits from G's early samples
    assert all("generator/loss" in m for m in metrics)  # n_critic = 1: G steps every step


def test_wgan_gp_runs_n_critic(tmp_path):
    train(tiny_config("wgan-gp", tmp_path, learning_rate=1e-4, betas=[0.0, 0.9], epochs=1))
    metrics = read_metrics(tmp_path)
    with_g = [m["step"] for m in metrics if "generator/loss" in m]
    assert with_g and all(step % 2 == 0 for step in with_g)  # n_critic = 2
    assert all("discriminator/gradient_penalty" in m for m in metrics)


def test_ae_prior_is_fitted_and_saved(tmp_path):
    model = AE.from_pretrained(train(tiny_config("ae", tmp_path, epochs=1)))
    assert model.has_prior
    assert model.sample(2, generator=torch.Generator().manual_seed(1)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_resume_matches_uninterrupted_run(tmp_path, family):
    """Stop after a checkpoint, resume with --resume latest: same final weights as one straight run."""
    straight = train(tiny_config(family, tmp_path / "straight", epochs=2))  # 16 steps, crosses an epoch
    first = tiny_config(family, tmp_path / "resumed", epochs=2, checkpoint_every=5, max_steps=11)
    train(first)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["step_00000005", "step_00000010"]
    resumed = train(dataclasses.replace(first, train=dataclasses.replace(first.train, max_steps=None)),
                    resume="latest")
    expected, actual = model_tensors(straight), model_tensors(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_checkpoints_keep_the_last_k(tmp_path):
    train(tiny_config("vae", tmp_path, epochs=1, checkpoint_every=2, checkpoints_total_limit=2))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000006", "step_00000008"]
    assert not list((tmp_path / "checkpoints").glob(".*partial"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    config = tiny_config("vae", tmp_path, checkpoint_every=3)
    trainer = Trainer(config)
    original = trainer.model.compute_loss

    def poisoned(phase, images, step, class_labels=None):
        losses = original(phase, images, step, class_labels=class_labels)
        return {**losses, "loss": losses["loss"] * float("nan")} if step == 4 else losses

    monkeypatch.setattr(trainer.model, "compute_loss", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"step 5 .*step_00000003"):
        trainer.train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003"]
    assert not (tmp_path / "model").exists()


def test_divergence_before_any_checkpoint_advises_a_fresh_start(tmp_path, monkeypatch):
    trainer = Trainer(tiny_config("vae", tmp_path, checkpoint_every=100))
    original = trainer.model.compute_loss

    def poisoned(phase, images, step, class_labels=None):
        losses = original(phase, images, step, class_labels=class_labels)
        return {**losses, "loss": losses["loss"] * float("nan")} if step == 1 else losses

    monkeypatch.setattr(trainer.model, "compute_loss", poisoned)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.train()
    message = str(info.value)
    assert "no checkpoint was written yet" in message and "--resume" not in message
    assert "start the run again with --overwrite" in message
    reset_accelerate_state()
    # The advice works: a lower learning rate, --overwrite.
    Trainer(tiny_config("vae", tmp_path, learning_rate=1e-4, max_steps=2), overwrite=True).train()
    assert (tmp_path / "model" / "config.json").is_file()


def test_resume_trains_with_the_configs_learning_rate(tmp_path):
    """The advice after a divergence (lower train.learning_rate, then --resume latest) must take effect: the
    optimizer state of the checkpoint must not bring back its old learning rate."""
    train(tiny_config("gan", tmp_path, max_steps=2, checkpoint_every=2, learning_rate=1e-3))
    reset_accelerate_state()
    trainer = Trainer(tiny_config("gan", tmp_path, max_steps=4, learning_rate=1e-5,
                                  phase_learning_rates={"discriminator": 2e-5}), resume="latest")
    assert trainer.state.step == 2
    [optimizers] = trainer.stage_optimizers.values()  # one stage
    assert {phase: [g["lr"] for g in opt.param_groups] for phase, opt in optimizers.items()} == {
        "discriminator": [2e-5], "generator": [1e-5]}


def test_resume_latest_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(tiny_config("vae", tmp_path), resume="latest")


def test_bf16_mixed_precision_on_cpu(tmp_path):
    model_dir = train(tiny_config("vae", tmp_path, epochs=1, mixed_precision="bf16"))
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in read_metrics(tmp_path))
    assert all(t.dtype == torch.float32 for t in model_tensors(model_dir).values())


def test_init_from_fine_tunes_and_refuses_shape_changes(tmp_path):
    base = train(tiny_config("vae", tmp_path / "base", epochs=1))
    config = tiny_config("vae", tmp_path / "tuned", epochs=1, learning_rate=1e-12)
    config.model["beta"] = 0.5  # keeps the shapes: allowed
    tuned = AutoModel.from_pretrained(train(config, init_from=str(base)))
    assert tuned.config.beta == 0.5
    before, after = model_tensors(base), model_tensors(tmp_path / "tuned" / "model")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)  # lr ~ 0: weights kept
    config.model["latent_dim"] = 4
    with pytest.raises(ConfigError, match="latent_dim"):
        Trainer(config, init_from=str(base))


def test_init_from_other_family_is_refused(tmp_path):
    base = train(tiny_config("ae", tmp_path / "ae", epochs=1))
    with pytest.raises(ConfigError, match="holds a AE"):
        Trainer(tiny_config("vae", tmp_path / "vae"), init_from=str(base))


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """A real kill (SIGKILL) after a checkpoint, then `--resume latest`: same weights as a straight run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml
    from training_utils import TINY_MODELS

    straight = train(tiny_config("vae", tmp_path / "straight", epochs=8))
    config_file = tmp_path / "vae.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": TINY_MODELS["vae"], "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path / "killed"), "epochs": 8, "batch_size": 32, "log_every": 1,
                  "checkpoint_every": 4, "num_preview_images": 4},
    }))
    command = [sys.executable, "-m", "vaegan.train", str(config_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the straight run above uses one thread too (conftest)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while not list_checkpoints(tmp_path / "killed") or list_checkpoints(tmp_path / "killed")[-1].name < "step_00000012":
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "model").exists()
    subprocess.run([*command, "--resume", "latest"], check=True, capture_output=True, timeout=600, env=env)
    expected, actual = model_tensors(straight), model_tensors(tmp_path / "killed" / "model")
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_output_dir_with_checkpoints_needs_resume(tmp_path):
    config = tiny_config("vae", tmp_path, epochs=1, checkpoint_every=4)
    train(config)
    [checkpoint, *_] = list_checkpoints(tmp_path)
    assert not list(checkpoint.glob("custom_checkpoint_*"))  # trainer state is JSON, not a pickle
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume latest"):
        Trainer(config)
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        Trainer(config, resume=str(tmp_path / "samples"))
