"""Saved folders follow the umask; a missing local model folder is named as such; no misleading diffusers warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from training_utils import reset_accelerate_state

from vaegan import VAE, AutoModel, WeightsMismatchError
from vaegan.cli import main as cli_main
from vaegan.training import train
from vaegan.training.config import config_from_dict


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.fixture
def umask():
    def set_umask(value: int) -> None:
        os.umask(value)

    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_save_pretrained_follows_the_umask(tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    VAE(latent_dim=2, block_out_channels=[4, 4], strides=[2, 2]).save_pretrained(tmp_path / "model")
    modes = _modes(tmp_path / "model")
    assert {name: mode for name, mode in modes.items() if (tmp_path / "model" / name).is_dir()} == {".": folder_mode}
    assert set(modes.values()) == {folder_mode, file_mode}, modes


def test_training_outputs_and_checkpoints_follow_the_umask(tmp_path, umask):
    umask(0o022)
    config = config_from_dict({
        "model": {"class": "AE", "latent_dim": 2, "block_out_channels": [4, 4], "strides": [2, 2]},
        "data": {"source": "mnist-5k", "limit": 64},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 32, "checkpoint_every": 1,
                  "num_preview_images": 4},
    })
    try:
        train(config)
    finally:
        reset_accelerate_state()
    modes = _modes(tmp_path / "run")
    assert any(name.startswith("checkpoints/step_") for name in modes) and "model/config.json" in modes
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o755 if (tmp_path / "run" / name).is_dir() else 0o644)}
    assert not wrong


@pytest.mark.parametrize("name", ["missing", "./org/missing", "outputs/run/model", "~/no/such/model"])
def test_missing_local_folder_says_so(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"model folder .* does not exist.*owner/name"):
        AutoModel.from_pretrained(name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VAE.from_pretrained(tmp_path / name)


def test_cli_sample_and_init_from_name_the_missing_folder(tmp_path, capsys):
    assert cli_main(["sample", str(tmp_path / "nope"), "-o", str(tmp_path / "grid.png")]) == 2
    assert f"The model folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {class: VAE}\ntrain: {output_dir: " + str(tmp_path / "run") + "}\n")
    try:
        assert cli_main(["train", str(config), "--init-from", str(tmp_path / "nope" / "model")]) == 2
    finally:
        reset_accelerate_state()
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow  # huggingface_hub retries the connection for ~20 s
def test_hub_id_that_is_no_folder_and_no_reachable_hub(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run([sys.executable, "-m", "vaegan.cli", "sample", "org/mnist-vae", "-o", "g.png"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "org/mnist-vae is neither a local folder" in result.stderr
    assert "could not connect to http://127.0.0.1:9" in result.stderr and "HF_HUB_OFFLINE=1" in result.stderr


@pytest.mark.parametrize("damage", ["missing", "unexpected", "misshaped"])
def test_refused_load_prints_no_train_this_model_warning(tmp_path, capfd, damage):
    folder = tmp_path / "vae"
    VAE(latent_dim=2, block_out_channels=[4, 4], strides=[2, 2]).save_pretrained(folder, model_card=False)
    tensors = load_file(folder / "diffusion_pytorch_model.safetensors")
    if damage == "missing":
        tensors.pop(next(k for k in sorted(tensors) if k.startswith("decoder.") and k.endswith(".bias")))
    elif damage == "unexpected":
        tensors["encoder.extra.weight"] = torch.zeros(2)
    else:
        key = next(k for k in sorted(tensors) if k.startswith("encoder.") and k.endswith(".bias"))
        tensors[key] = torch.zeros(tensors[key].numel() + 1)
    save_file(tensors, folder / "diffusion_pytorch_model.safetensors")
    capfd.readouterr()
    with pytest.raises(WeightsMismatchError):
        VAE.from_pretrained(folder)
    err = capfd.readouterr().err
    assert "newly initialized" not in err and "TRAIN this model" not in err and "were not used" not in err
