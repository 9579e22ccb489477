"""The trainer asks capabilities, never family names: a latent-free family trains end to end, figures follow what a
model can do, nothing after the model save fails a run, and families trained in stages run them in order (config,
exact mid-stage resume, --stage)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
import yaml
from diffusers.configuration_utils import register_to_config
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from training_utils import read_metrics, reset_accelerate_state, stop_after_checkpoint, tiny_config, weights_sha256

from vaegan import AutoModel, GenerativeModel
from vaegan.cli import main as cli_main
from vaegan.errors import ConfigError
from vaegan.figures import interpolation_frames, seeded
from vaegan.images import make_grid
from vaegan.models.registry import register_model
from vaegan.training import Trainer, train
from vaegan.training.checkpoints import list_checkpoints, write_manifest
from vaegan.training.config import config_from_dict, load_config


@register_model
class CoinPixels(GenerativeModel):
    """A latent-free family: one learned logit per pixel, images drawn pixel by pixel. Only the required methods."""

    family = "pixel-bernoulli"

    @register_to_config
    def __init__(self, image_size: int = 28, in_channels: int = 1):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(in_channels, image_size, image_size))

    def compute_loss(self, phase, images, step, class_labels=None):
        logits = self.logits.expand_as(images)
        return {"loss": F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1).mean()}

    def sample(self, num_samples, generator=None, temperature=1.0, class_labels=None):
        uniform = torch.rand((num_samples, *self.logits.shape), generator=generator).to(self.device)
        return (uniform < torch.sigmoid(self.logits.detach())).float()


@register_model
class BrokenAfterTraining(CoinPixels):
    """Samples during training; its sampling breaks in ``on_train_end`` (after it, the model is saved)."""

    def on_train_end(self, batches):
        self.broken = True

    def sample(self, num_samples, generator=None, temperature=1.0, class_labels=None):
        if getattr(self, "broken", False):
            raise RuntimeError("sampler exploded")
        return super().sample(num_samples, generator, temperature, class_labels)


@register_model
class SamplesAfterTraining(CoinPixels):
    """Cannot sample (nor reconstruct) before ``on_train_end``: no previews, but a final samples.png."""

    @property
    def can_sample(self):
        return getattr(self, "ready", False)

    def on_train_end(self, batches):
        self.ready = True


@register_model
class TwoStageToy(GenerativeModel):
    """A linear autoencoder trained first, then a diagonal Gaussian prior over its codes (a second phase)."""

    family = "two-stage-toy"
    training_phases = ("model", "prior")
    training_stages = (("autoencoder", ("model",)), ("prior", ("prior",)))
    stage_calls: ClassVar[list[str]] = []

    @register_to_config
    def __init__(self, image_size: int = 28, in_channels: int = 1, latent_dim: int = 2):
        super().__init__()
        pixels = in_channels * image_size * image_size
        self.encoder = nn.Linear(pixels, latent_dim)
        self.decoder = nn.Linear(latent_dim, pixels)
        self.prior_mean = nn.Parameter(torch.zeros(latent_dim))
        self.prior_log_scale = nn.Parameter(torch.zeros(latent_dim))

    def phase_parameters(self, phase):
        if phase == "prior":
            return [self.prior_mean, self.prior_log_scale]
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def encode_images(self, images, class_labels=None):
        return self.encoder(images.flatten(1))

    def decode_latents(self, latents, class_labels=None):
        return torch.sigmoid(self.decoder(latents)).view(-1, *self.image_shape)

    def prior_latents(self, num_samples, generator=None, temperature=1.0):
        noise = randn_tensor((num_samples, self.config.latent_dim), generator=generator, device=self.device)
        return self.prior_mean + temperature * noise * self.prior_log_scale.exp()

    def compute_loss(self, phase, images, step, class_labels=None):
        if phase == "model":
            return {"loss": F.mse_loss(self.decode_latents(self.encode_images(images)), images)}
        codes = self.encode_images(images).detach()
        scaled = (codes - self.prior_mean) / self.prior_log_scale.exp()
        return {"loss": (0.5 * scaled**2 + self.prior_log_scale).sum(1).mean()}

    def on_stage_start(self, stage, batches):
        """Starts the prior at the mean code: a second call mid-stage (or a missed one) changes the result."""
        type(self).stage_calls.append(stage)
        with torch.no_grad():
            codes = torch.cat([self.encode_images(images.to(self.device)) for images in batches])
            self.prior_mean.copy_(codes.mean(0))


@pytest.fixture(autouse=True)
def _fresh_state():
    TwoStageToy.stage_calls.clear()
    yield
    reset_accelerate_state()


def _raw(model_class: str, out: Path, stages: dict | None = None, **train_settings) -> dict:
    return {
        "model": {"class": model_class},
        "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(out), "epochs": 1, "batch_size": 32, "log_every": 1, "checkpoint_every": 1000,
                  "num_preview_images": 4, **({"stages": stages} if stages is not None else {}), **train_settings},
    }


def _config(model_class: str, out: Path, stages: dict | None = None, **train_settings):
    return config_from_dict(_raw(model_class, out, stages, **train_settings))


TWO_STAGES = {"autoencoder": {"max_steps": 2}, "prior": {"max_steps": 3, "learning_rate": 0.05}}


# ---------------------------------------------------------------------------------------------- latent-free family
def test_a_latent_free_family_trains_end_to_end(tmp_path, capsys):
    model_dir = train(_config("CoinPixels", tmp_path, epochs=2, max_steps=None, learning_rate=1e-12))
    assert (model_dir / "config.json").is_file() and (tmp_path / "training_summary.json").is_file()
    assert (tmp_path / "samples.png").is_file()
    assert not (tmp_path / "interpolation.png").exists() and not (tmp_path / "interpolation.gif").exists()
    assert "No interpolation: CoinPixels has no latent space." in capsys.readouterr().out
    assert all("stage" not in line for line in read_metrics(tmp_path))  # one stage: the log is as it always was
    model = AutoModel.from_pretrained(model_dir)
    assert type(model) is CoinPixels
    # Previews are model.sample with the run's seed: the same draw at every epoch (lr ~ 0 keeps the logits).
    first, second = (Image.open(tmp_path / "samples" / f"epoch_00{i}.png") for i in (1, 2))
    assert first.tobytes() == second.tobytes()
    expected = make_grid(model.sample(4, generator=seeded(0)))
    assert second.tobytes() == expected.tobytes()


def test_interpolation_needs_a_latent_space():
    with pytest.raises(NotImplementedError, match="CoinPixels has no latent space"):
        interpolation_frames(CoinPixels(image_size=8), steps=3)


def test_a_model_that_cannot_sample_yet_gets_no_preview_but_a_final_grid(tmp_path):
    train(_config("SamplesAfterTraining", tmp_path, max_steps=2))
    assert not (tmp_path / "samples").exists()  # neither samples nor reconstructions during training
    assert (tmp_path / "samples.png").is_file()


def _trainer_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "vaegan.training.trainer"]


def test_a_figure_that_fails_after_the_model_save_does_not_fail_the_run(tmp_path, caplog, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text(yaml.safe_dump(_raw("BrokenAfterTraining", tmp_path / "out", max_steps=2)))
    with caplog.at_level(logging.WARNING, logger="vaegan.training.trainer"):
        assert cli_main(["train", str(config)]) == 0
    out = tmp_path / "out"
    assert (out / "training_summary.json").is_file() and (out / "model" / "training_summary.json").is_file()
    assert not (out / "samples.png").exists()
    warnings = _trainer_warnings(caplog)
    assert len(warnings) == 1 and "Could not write samples.png (RuntimeError: sampler exploded)" in warnings[0]
    assert type(AutoModel.from_pretrained(out / "model")) is BrokenAfterTraining


def test_failing_end_of_run_figures_of_a_latent_model_are_warnings(tmp_path, caplog, monkeypatch):
    import vaegan.figures

    def explode(*args, **kwargs):
        raise ValueError("no figure today\nsecond line")

    monkeypatch.setattr(vaegan.figures, "save_sample_grid", explode)
    monkeypatch.setattr(vaegan.figures, "save_interpolation", explode)
    with caplog.at_level(logging.WARNING, logger="vaegan.training.trainer"):
        model_dir = train(tiny_config("vae", tmp_path, epochs=1, max_steps=2))
    assert json.loads((tmp_path / "training_summary.json").read_text())["steps"] == 2
    assert (model_dir / "diffusion_pytorch_model.safetensors").is_file()
    warnings = _trainer_warnings(caplog)
    assert [w.split(" (")[0] for w in warnings] == ["Could not write samples.png", "Could not write interpolation.png"]
    assert all("ValueError: no figure today)" in w and "second line" not in w for w in warnings)


def test_a_failing_final_evaluation_keeps_the_saved_model(tmp_path, caplog, monkeypatch):
    import vaegan.metrics

    def broken(*args, **kwargs):
        raise RuntimeError("metrics broke\nmore")

    monkeypatch.setattr(vaegan.metrics, "evaluate", broken)
    with caplog.at_level(logging.WARNING, logger="vaegan.training.trainer"):
        model_dir = train(tiny_config("vae", tmp_path, epochs=1, max_steps=2, eval_metrics=["recon_mse"]))
    assert AutoModel.from_pretrained(model_dir).latent_dim == 2  # saved before the evaluation ran
    assert "evaluation" not in json.loads((tmp_path / "training_summary.json").read_text())
    [warning] = _trainer_warnings(caplog)
    assert warning.startswith("The final evaluation failed (RuntimeError: metrics broke); the model is saved in")
    assert "--update-card" in warning


def test_the_final_evaluation_goes_into_the_saved_card(tmp_path):
    model_dir = train(tiny_config("vae", tmp_path, epochs=1, max_steps=2, eval_metrics=["recon_mse"]))
    assert "recon_mse" in (model_dir / "README.md").read_text()
    assert "recon_mse" in json.loads((tmp_path / "training_summary.json").read_text())["evaluation"]["metrics"]


# ---------------------------------------------------------------------------------------------- stages
def _checkpoint_weights(checkpoint: Path, prefix: str) -> dict[str, torch.Tensor]:
    return {k.split("model.", 1)[1]: v for k, v in load_file(checkpoint / "model.safetensors").items()
            if k.split("model.", 1)[1].startswith(prefix)}


def test_stages_run_in_order_each_with_its_phases_and_settings(tmp_path):
    trainer = Trainer(_config("TwoStageToy", tmp_path, TWO_STAGES, checkpoint_every=2, learning_rate=0.01))
    assert [(s.name, s.start, s.end) for s in trainer.plan] == [("autoencoder", 0, 2), ("prior", 2, 5)]
    assert trainer.stage_optimizers["autoencoder"]["model"].param_groups[0]["lr"] == 0.01
    assert trainer.stage_optimizers["prior"]["prior"].param_groups[0]["lr"] == 0.05
    model_dir = trainer.train()
    metrics = read_metrics(tmp_path)
    assert [(m["step"], m["stage"]) for m in metrics] == [(1, "autoencoder"), (2, "autoencoder"), (3, "prior"),
                                                          (4, "prior"), (5, "prior")]
    assert all(("model/loss" in m) == (m["stage"] == "autoencoder") for m in metrics)
    assert all(("prior/loss" in m) == (m["stage"] == "prior") for m in metrics)
    assert TwoStageToy.stage_calls == ["prior"]
    step2, step4 = list_checkpoints(tmp_path)
    assert [json.loads((c / "trainer_state.json").read_text())["stage"] for c in (step2, step4)] == ["prior", "prior"]
    # The autoencoder stage leaves the prior alone; the prior stage leaves the autoencoder alone.
    assert all(torch.equal(v, torch.zeros_like(v)) for v in _checkpoint_weights(step2, "prior_").values())
    final = load_file(model_dir / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(final[k], v) for k, v in _checkpoint_weights(step2, "encoder").items())
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["stages"] == {"autoencoder": 2, "prior": 3} and summary["steps"] == 5
    assert (tmp_path / "interpolation.png").is_file()  # this family has a latent space


@pytest.mark.parametrize("stop_at, calls_before, calls_after", [(2, [], ["prior"]), (4, ["prior"], [])])
def test_resume_continues_a_stage_exactly(tmp_path, monkeypatch, stop_at, calls_before, calls_after):
    """2 + 3 steps straight == interrupted after the checkpoint at ``stop_at`` (the stage boundary, or mid-stage)
    and resumed: the hook runs when a stage begins, also on resume at its first step, never twice."""
    straight = train(_config("TwoStageToy", tmp_path / "straight", TWO_STAGES, checkpoint_every=2))
    reset_accelerate_state()
    TwoStageToy.stage_calls.clear()
    original = stop_after_checkpoint(monkeypatch, stop_at)
    config = _config("TwoStageToy", tmp_path / "split", TWO_STAGES, checkpoint_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert TwoStageToy.stage_calls == calls_before
    reset_accelerate_state()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    TwoStageToy.stage_calls.clear()
    resumed = train(config, resume="latest")
    assert TwoStageToy.stage_calls == calls_after
    assert weights_sha256(AutoModel.from_pretrained(resumed)) == weights_sha256(AutoModel.from_pretrained(straight))


def test_resume_refuses_other_stage_lengths_and_another_stage_option(tmp_path):
    config = _config("TwoStageToy", tmp_path, TWO_STAGES, checkpoint_every=3)
    train(config)
    reset_accelerate_state()
    longer = _config("TwoStageToy", tmp_path, {**TWO_STAGES, "autoencoder": {"max_steps": 4}}, checkpoint_every=3)
    with pytest.raises(ConfigError, match=r"in the stage 'prior' at step 3, but the config's stage lengths put step 3 "
                                          r"in the stage 'autoencoder'"):
        Trainer(longer, resume="latest")
    reset_accelerate_state()
    with pytest.raises(ConfigError, match=r"trains every stage \(autoencoder, prior\), but this run trains --stage "
                                          r"prior; resume it with the same --stage"):
        Trainer(config, resume="latest", stage="prior")


def test_checkpoints_from_before_stages_resume(tmp_path):
    """A trainer_state.json without stage fields (written before stages existed) still resumes."""
    train(_config("CoinPixels", tmp_path, max_steps=2, checkpoint_every=2))
    reset_accelerate_state()
    [checkpoint] = list_checkpoints(tmp_path)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert (state["stage"], state["stages"]) == ("train", ["train"])
    (checkpoint / "trainer_state.json").write_text(json.dumps({k: state[k] for k in ("step", "epoch",
                                                                                      "batches_in_epoch")}))
    write_manifest(checkpoint)
    trainer = Trainer(_config("CoinPixels", tmp_path, max_steps=3, checkpoint_every=2), resume="latest")
    assert trainer.state.step == 2
    trainer.train()
    assert trainer.state.step == 3


def test_stage_option_trains_one_stage_of_a_trained_model(tmp_path):
    first = train(_config("TwoStageToy", tmp_path / "ae", {"autoencoder": {"max_steps": 2}, "prior": {"max_steps": 1}}))
    reset_accelerate_state()
    TwoStageToy.stage_calls.clear()
    config = tmp_path / "prior.yaml"
    config.write_text(yaml.safe_dump(_raw("TwoStageToy", tmp_path / "prior", TWO_STAGES)))
    assert cli_main(["train", str(config), "--stage", "prior", "--init-from", str(first)]) == 0
    assert TwoStageToy.stage_calls == ["prior"]  # a later stage of the model: its hook runs at the start
    metrics = read_metrics(tmp_path / "prior")
    assert [(m["step"], m["stage"]) for m in metrics] == [(1, "prior"), (2, "prior"), (3, "prior")]
    before = load_file(first / "diffusion_pytorch_model.safetensors")
    after = load_file(tmp_path / "prior" / "model" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder", "decoder")))
    assert not torch.equal(before["prior_log_scale"], after["prior_log_scale"])


def test_unknown_stage_option_is_one_line_naming_the_stages(tmp_path, capsys):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(_raw("TwoStageToy", tmp_path / "out")))
    assert cli_main(["train", str(config), "--stage", "priors"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--stage priors: TwoStageToy trains in the stages autoencoder, prior. Did you " \
                                   "mean 'prior'?" in err
    assert not (tmp_path / "out").exists()


def test_stage_option_is_documented():
    from vaegan.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "--stage NAME" in help_text and "train only this stage" in help_text


# ---------------------------------------------------------------------------------------------- stage config
@pytest.mark.parametrize(("model_class", "stages", "message"), [
    ("TwoStageToy", {"priors": {"max_steps": 2}},
     r"train.stages has unknown stage 'priors'; Did you mean 'prior'\? TwoStageToy trains in the stages "
     r"autoencoder, prior\."),
    ("VAE", {"prior": {"max_steps": 2}}, r"unknown stage 'prior'; VAE trains in the stages train\."),
    ("TwoStageToy", {"prior": {"batch_size": 8}},
     r"unknown key 'train.stages.prior.batch_size'\. Valid keys of 'train.stages.prior': epochs, max_steps"),
    ("TwoStageToy", {"prior": {"learning_rate": -1.0}}, r"'train.stages.prior.learning_rate' must be > 0, got -1.0"),
    ("TwoStageToy", {"prior": {"max_steps": "many"}},
     r"'train.stages.prior.max_steps' must be of type int \| None, got 'many'"),
    ("TwoStageToy", {"prior": {"optimizer": "adamm"}}, r"'train.stages.prior.optimizer' must be one of adam"),
    ("TwoStageToy", {"prior": {"phase_learning_rates": {"model": 0.1}}},
     r"train.stages.prior.phase_learning_rates has unknown phase 'model'; the stage 'prior' of TwoStageToy trains "
     r"the phases prior\."),
    ("TwoStageToy", ["prior"], r"'train.stages' must be a mapping of names to settings"),
    ("TwoStageToy", {"prior": 5}, r"section 'train.stages.prior' must be a mapping"),
])
def test_stage_config_errors(tmp_path, model_class, stages, message):
    raw = _raw("TwoStageToy", tmp_path, stages)
    raw["model"] = {"class": model_class, **({"latent_dim": 2} if model_class == "VAE" else {})}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_stage_settings_fall_back_to_the_train_section_and_round_trip(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(_raw("TwoStageToy", tmp_path / "out", learning_rate=0.01, epochs=3)))
    config = load_config(path, ["train.stages.prior.max_steps=7", "train.stages.prior.betas=[0.5, 0.9]"])
    prior, autoencoder = config.stage_settings("prior"), config.stage_settings("autoencoder")
    assert (prior.max_steps, prior.betas, prior.learning_rate, prior.epochs) == (7, [0.5, 0.9], 0.01, 3)
    assert autoencoder == config.train
    config.save(tmp_path / "saved.yaml")
    saved = yaml.safe_load((tmp_path / "saved.yaml").read_text())
    assert saved["train"]["stages"] == {"prior": {"max_steps": 7, "betas": [0.5, 0.9]}}  # only what a stage sets
    assert config_from_dict(saved) == config
    with pytest.raises(ConfigError, match=r"--set 'train.epochs.x=1': train.epochs is 3, not a mapping"):
        load_config(path, ["train.epochs=3", "train.epochs.x=1"])


@pytest.mark.slow
def test_stages_on_two_processes_keep_identical_weights(tmp_path):
    """Each process runs the stage hook; the weights it sets and every step after stay the same on both."""
    import os
    import subprocess
    import sys

    tests = Path(__file__).parent
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", str(tests / "ddp_stages_worker.py"), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["steps"] for r in ranks] == [5, 5]
    assert [r["stage_calls"] for r in ranks] == [["prior"], ["prior"]]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert [m["stage"] for m in read_metrics(tmp_path)] == ["autoencoder"] * 2 + ["prior"] * 3
