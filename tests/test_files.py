"""Saved folders follow the umask; a missing local model folder is named as such; no misleading diffusers warning."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file
from training_utils import reset_accelerate_state

from vaegan import VAE, AutoModel, WeightsMismatchError
from vaegan.cli import main as cli_main
from vaegan.errors import ConfigError, DiskFullError
from vaegan.training import train
from vaegan.training.checkpoints import checkpoint_problem
from vaegan.training.config import config_from_dict
from vaegan.training.trainer import list_checkpoints


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


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("files") / "vae"
    VAE(latent_dim=2, block_out_channels=[4, 4], strides=[2, 2]).save_pretrained(folder)
    return folder


def test_output_paths_that_are_files_or_folders_are_named_in_words(tmp_path, tiny_vae, capsys):
    """A file where a folder must go (or the reverse) is one sentence saying so, not an errno."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    cases = [
        (["sample", str(tiny_vae), "-o", str(afile / "grid.png")], f"{afile} is a file, not a folder"),
        (["sample", str(tiny_vae), "-o", str(tmp_path)], f"-o {tmp_path} is a folder, not a file"),
        (["interpolate", str(tiny_vae), "-o", str(tmp_path / "s.png"), "--gif", str(afile / "x" / "s.gif")],
         f"--gif {afile / 'x' / 's.gif'} cannot be written: {afile} is a file, not a folder"),
        (["evaluate", str(tiny_vae), "--metrics", "recon_mse", "--output", str(afile / "r.json")],
         f"--output {afile / 'r.json'} cannot be written: {afile} is a file, not a folder"),
    ]
    for argv, message in cases:
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert afile.read_text() == "mine" and not (tmp_path / "s.png").exists()
    for output_dir, message in [(afile, f"train.output_dir {afile} is a file, not a folder"),
                                (afile / "run", f"train.output_dir {afile / 'run'} cannot be created: {afile} is a "
                                                "file, not a folder")]:
        config = config_from_dict({"model": {"class": "AE", "latent_dim": 2, "block_out_channels": [4, 4],
                                             "strides": [2, 2]}, "data": {"source": "mnist-5k", "limit": 64},
                                   "train": {"output_dir": str(output_dir), "batch_size": 32}})
        with pytest.raises(ConfigError, match=re.escape(message)):
            try:
                train(config)
            finally:
                reset_accelerate_state()
    assert afile.read_text() == "mine"


def _tiny_run_config(output_dir: Path, **train) -> dict:
    return {"model": {"class": "AE", "latent_dim": 2, "block_out_channels": [4, 4], "strides": [2, 2]},
            "data": {"source": "mnist-5k", "limit": 64},
            "train": {"output_dir": str(output_dir), "epochs": 1, "batch_size": 32, "checkpoint_every": 1,
                      "num_preview_images": 4, **train}}


def _partial_files(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".partial" in p.name]


def _full_disk_save(real_save, when):
    """PIL's Image.save, except that ``when(format)`` saves hit a full disk after writing a few bytes."""
    def save(self, fp, format=None, **params):
        if when(format or Path(fp).suffix):
            Path(fp).write_bytes(b"GIF8")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, format, **params)
    return save


@pytest.mark.parametrize("failure", ["enospc", "torch"])
def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    from accelerate import Accelerator

    out = tmp_path / "run"
    real_save_state, calls = Accelerator.save_state, []

    def save_state(self, output_dir=None, **kwargs):
        calls.append(output_dir)
        if len(calls) < 2:
            return real_save_state(self, output_dir, **kwargs)
        (Path(output_dir) / "model.safetensors").write_bytes(b"\0" * 10)  # what was written before the disk filled
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(output_dir) / "optimizer.bin"))
        # torch.save on a full disk says only this; the free space tells what happened
        monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 0))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    with pytest.raises(DiskFullError) as info:
        try:
            train(config_from_dict(_tiny_run_config(out)))
        finally:
            reset_accelerate_state()
    first = out / "checkpoints" / "step_00000001"
    assert str(info.value) == (
        f"No space left on device while writing {out / 'checkpoints' / 'step_00000002'}: free space or choose "
        f"another train.output_dir; the previous checkpoint {first} is kept: continue from it with --resume latest "
        "once there is space.")
    assert list_checkpoints(out) == [first] and checkpoint_problem(first) is None
    assert not _partial_files(out)


def test_disk_full_at_the_end_of_training_is_one_line_and_leaves_no_empty_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_tiny_run_config(out)))
    monkeypatch.setattr(Image.Image, "save", _full_disk_save(Image.Image.save, lambda fmt: fmt == "GIF"))
    try:
        assert cli_main(["train", str(config)]) == 2
    finally:
        reset_accelerate_state()
    err = capsys.readouterr().err
    assert err == (f"vaegan train: error: No space left on device while writing {out / 'interpolation.gif'}: free "
                   f"space or choose another train.output_dir; the previous checkpoint "
                   f"{out / 'checkpoints' / 'step_00000002'} is kept: continue from it with --resume latest once "
                   "there is space.\n")
    assert not (out / "interpolation.gif").exists() and not _partial_files(out)
    assert not (out / "training_summary.json").exists()  # the run is not marked finished
    monkeypatch.undo()  # space again: the advice works
    try:
        assert cli_main(["train", str(config), "--resume", "latest"]) == 0
    finally:
        reset_accelerate_state()
    assert (out / "interpolation.gif").stat().st_size > 0 and (out / "training_summary.json").is_file()


def test_disk_full_while_sampling_keeps_the_earlier_picture(tmp_path, tiny_vae, monkeypatch, capsys):
    grid = tmp_path / "grid.png"
    assert cli_main(["sample", str(tiny_vae), "-n", "4", "-o", str(grid)]) == 0
    before = grid.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(Image.Image, "save", _full_disk_save(Image.Image.save, lambda fmt: True))
    assert cli_main(["sample", str(tiny_vae), "-n", "9", "-o", str(grid)]) == 2
    assert capsys.readouterr().err == (f"vaegan sample: error: No space left on device while writing {grid}: free "
                                       "space or write to another disk.\n")
    assert grid.read_bytes() == before and not _partial_files(tmp_path)


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
