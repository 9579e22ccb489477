"""Tiny training configs shared by the training tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from vaegan.training.config import config_from_dict

TINY_MODELS = {
    "ae": {"class": "AE", "latent_dim": 2, "block_out_channels": [16, 32], "strides": [2, 2]},
    "vae": {"class": "VAE", "latent_dim": 2, "block_out_channels": [16, 32], "strides": [2, 2]},
    "gan": {"class": "GAN", "architecture": "mlp", "latent_dim": 16, "generator_hidden_dims": [64],
            "discriminator_hidden_dims": [64], "discriminator_dropout": 0.0},
    "wgan-gp": {"class": "GAN", "architecture": "dcgan", "base_channels": 8, "latent_dim": 16, "loss": "wgan_gp",
                "n_critic": 2},
    "cluster-gan": {"class": "GAN", "architecture": "dcgan", "base_channels": 4, "latent_dim": 8, "clusters": 4,
                    "mode_seeking": 1.0},
}


def tiny_config(family: str, output_dir: Path, **train):
    """A config that trains ``family`` for a few seconds on 256 real MNIST digits."""
    return config_from_dict({
        "model": dict(TINY_MODELS[family]),
        "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(output_dir), "epochs": 2, "batch_size": 32, "log_every": 1,
                  "checkpoint_every": 1000, "num_preview_images": 4, **train},
    })


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]


def model_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(model_dir) / "diffusion_pytorch_model.safetensors")


def weights_sha256(model: torch.nn.Module) -> str:
    """One digest of a model's whole state (names and values): equal digests mean identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def reset_accelerate_state() -> None:
    """Accelerate keeps one global state per process; tests that train several times reset it in between."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def stop_after_checkpoint(monkeypatch, step: int):
    """Make training raise KeyboardInterrupt right after writing its checkpoint at ``step`` (a run interrupted there);
    returns the original ``Trainer.save_checkpoint`` to restore before resuming."""
    from vaegan.training import Trainer

    original = Trainer.save_checkpoint

    def save_then_stop(self):
        path = original(self)
        if self.state.step == step:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_stop)
    return original
