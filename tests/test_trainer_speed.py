"""The training step does not wait for the host; divergence is found at the next sync; compile and channels-last."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from training_utils import model_tensors, reset_accelerate_state, tiny_config

import vaegan
from vaegan.training import Trainer, TrainingDivergedError
from vaegan.training.trainer import list_checkpoints

#: vaegan's own source files (not torch's, even in a checkout or venv whose path holds a folder named vaegan).
PACKAGE_DIR = str(Path(vaegan.__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


@pytest.mark.parametrize("family", ["vae", "wgan-gp"])
def test_host_syncs_only_at_logging_steps(tmp_path, monkeypatch, family):
    """No Tensor -> Python conversion (item, float, bool, tolist) by vaegan code inside a training step.

    (torch's own Adam reads its step counter, a CPU tensor even when training on a GPU: not a device sync.)"""
    trainer = Trainer(tiny_config(family, tmp_path, epochs=1, log_every=3, checkpoint_every=1000))
    synced_at: list[int] = []
    in_loop = {"on": False}
    original_batch = trainer._train_batch

    def train_batch(images, labels=None):
        in_loop["on"] = True
        try:
            return original_batch(images, labels)
        finally:
            in_loop["on"] = False

    monkeypatch.setattr(trainer, "_train_batch", train_batch)
    original_reduce = type(trainer.accelerator).reduce

    def reduce(self, tensor, *args, **kwargs):
        synced_at.append(trainer.state.step)
        return original_reduce(self, tensor, *args, **kwargs)

    monkeypatch.setattr(type(trainer.accelerator), "reduce", reduce)
    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            if in_loop["on"] and Path(sys._getframe(1).f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR):
                raise AssertionError(f"Tensor.{_name} (a host sync) inside a training step {trainer.state.step + 1}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    trainer.train()
    total = trainer.state.step
    assert total == 8  # 256 images / 32
    assert set(synced_at) == {3, 6, 8}


def test_nan_found_at_the_next_sync_names_the_step_range_and_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny_config("vae", tmp_path, log_every=4, checkpoint_every=3))
    original = trainer.model.compute_loss

    def poisoned(phase, images, step, class_labels=None):
        losses = original(phase, images, step, class_labels=class_labels)
        return {**losses, "loss": losses["loss"] * float("nan")} if step == 4 else losses

    monkeypatch.setattr(trainer.model, "compute_loss", poisoned)
    # step 5 is poisoned; the sync before the step-6 checkpoint finds it, nothing diverged is checkpointed
    with pytest.raises(TrainingDivergedError, match=r"diverged: .*loss.* became NaN or infinite at a "
                                                    r"step from 5 to 6 .*last good checkpoint is .*step_00000003"):
        trainer.train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003"]
    assert not (tmp_path / "model").exists()


def test_channels_last(tmp_path):
    trainer = Trainer(tiny_config("vae", tmp_path, epochs=1, max_steps=3, channels_last=True))
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    model_dir = trainer.train()
    assert all(torch.isfinite(t).all() for t in model_tensors(model_dir).values())


@pytest.mark.slow
def test_compile(tmp_path):
    trainer = Trainer(tiny_config("vae", tmp_path, epochs=1, max_steps=3, compile=True))
    assert all(getattr(net, "_compiled_call_impl", None) is not None for net in trainer.model.children())
    model_dir = trainer.train()
    assert set(model_tensors(model_dir)) == set(trainer.model.state_dict())  # names unchanged by compiling
