"""The `vaegan` command and `python -m vaegan.train`, run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bernoulli_family
import pytest
import torch
import yaml
from PIL import Image
from training_utils import TINY_MODELS

from vaegan import AE, VAE, AutoModel
from vaegan.cli import main

VAEGAN = [sys.executable, "-m", "vaegan.cli"]


def run(args: list[str], env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env or {**os.environ})
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def tiny_config_file(tmp_path: Path, family: str = "vae") -> Path:
    path = tmp_path / f"{family}.yaml"
    path.write_text(yaml.safe_dump({
        "model": TINY_MODELS[family],
        "data": {"source": "mnist-5k", "limit": 128},
        "train": {"output_dir": str(tmp_path / "out"), "epochs": 1, "batch_size": 32, "num_preview_images": 4},
    }))
    return path


@pytest.fixture(scope="module")
def saved_vae(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "vae"
    VAE(latent_dim=4, block_out_channels=[16, 32], strides=[2, 2]).save_pretrained(folder)
    return folder


def test_sample_writes_a_grid_and_is_seeded(saved_vae, tmp_path):
    run([*VAEGAN, "sample", str(saved_vae), "-n", "9", "-o", str(tmp_path / "a.png"), "--seed", "3"])
    run([*VAEGAN, "sample", str(saved_vae), "-n", "9", "-o", str(tmp_path / "b.png"), "--seed", "3"])
    run([*VAEGAN, "sample", str(saved_vae), "-n", "9", "-o", str(tmp_path / "c.png"), "--seed", "4"])
    a, b, c = (Image.open(tmp_path / f"{n}.png") for n in "abc")
    assert a.size == (3 * 30 + 2, 3 * 30 + 2)  # 3x3 grid of 28 px images, 2 px padding
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def test_interpolate_writes_strip_and_gif(saved_vae, tmp_path):
    run([*VAEGAN, "interpolate", str(saved_vae), "-o", str(tmp_path / "s.png"), "--steps", "6", "--mode", "lerp",
         "--gif", str(tmp_path / "s.gif")])
    assert Image.open(tmp_path / "s.png").size == (6 * 30 + 2, 32)
    gif = Image.open(tmp_path / "s.gif")
    assert gif.format == "GIF" and gif.n_frames >= 6


def test_sample_and_interpolate_ask_the_model_what_it_can_do(tmp_path, capsys):
    """In-process (the latent-free family is registered in this process only): what each model can do decides."""
    with bernoulli_family.registered():
        bernoulli_family.make(num_classes=3).save_pretrained(tmp_path / "bernoulli")
        assert main(["sample", str(tmp_path / "bernoulli"), "-n", "4", "-o", str(tmp_path / "b.png"),
                     "--label", "2"]) == 0
        assert Image.open(tmp_path / "b.png").size == (2 * 30 + 2, 2 * 30 + 2)
        assert main(["interpolate", str(tmp_path / "bernoulli"), "-o", str(tmp_path / "i.png")]) == 2
    err = capsys.readouterr().err
    assert (f"{tmp_path / 'bernoulli'} (PixelBernoulli) has no latent space, so it cannot interpolate; use "
            f"`vaegan sample {tmp_path / 'bernoulli'}`") in err and "Traceback" not in err
    assert not (tmp_path / "i.png").exists()

    torch.manual_seed(0)
    AE(latent_dim=2, block_out_channels=[8, 8], strides=[2, 2]).save_pretrained(tmp_path / "ae")  # no prior yet
    assert main(["sample", str(tmp_path / "ae"), "-o", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "This AE has no latent prior yet" in err and "fit_prior(latents)" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "some/model", "--port", "99999"], "--port must be between 1 and 65535, got 99999."),
    (["demo", "some/model", "--port", "0"], "--port must be between 1 and 65535, got 0."),
    (["sample", "MODEL", "-n", "1000000"], "--num-samples must be between 1 and 1024, got 1000000"),
    (["sample", "MODEL", "-n", "0"], "--num-samples must be between 1 and 1024, got 0"),
    (["sample", "MODEL", "--temperature", "nan"], "--temperature must be a finite number, got nan"),
    (["sample", "MODEL", "--temperature", "-1"], "--temperature must be between 0 and 2, got -1"),
    (["sample", "MODEL", "--temperature", "inf"], "--temperature must be a finite number, got inf"),
    (["interpolate", "MODEL", "--steps", "100000"], "--steps must be between 2 and 256, got 100000"),
    (["interpolate", "MODEL", "--steps", "1"], "--steps must be between 2 and 256, got 1"),
])
def test_out_of_range_options_are_one_line_errors(saved_vae, tmp_path, capsys, argv, message):
    """Caps like the demo's (vaegan.demo.limits), before the model is even loaded; nothing is written."""
    argv = [str(saved_vae) if arg == "MODEL" else arg for arg in argv]
    if argv[0] != "demo":
        argv += ["-o", str(tmp_path / "out.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_train_command_end_to_end(tmp_path):
    config = tiny_config_file(tmp_path)
    result = run([*VAEGAN, "train", str(config), "--set", "train.seed=1"])
    assert "Model written to" in result.stdout
    out = tmp_path / "out"
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["seed"] == 1
    model = AutoModel.from_pretrained(out / "model")
    assert isinstance(model, VAE)


def test_python_m_vaegan_train_and_errors(tmp_path):
    config = tiny_config_file(tmp_path)
    bad = run([sys.executable, "-m", "vaegan.train", str(config), "--set", "train.epoch=2"], check=False)
    assert bad.returncode == 2
    assert "unknown key 'train.epoch'. Did you mean 'epochs'?" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run([*VAEGAN, "sample", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.png")], check=False)
    assert missing.returncode != 0


@pytest.mark.slow
def test_trainer_pushes_to_hub(tmp_path, hub):
    config = tiny_config_file(tmp_path)
    run([*VAEGAN, "train", str(config), "--push-to-hub", "org/cli-vae"], env=hub.env)
    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files("org/cli-vae"))
    assert {"config.json", "diffusion_pytorch_model.safetensors", "README.md"} <= files
    pulled = VAE.from_pretrained("org/cli-vae")
    local = VAE.from_pretrained(tmp_path / "out" / "model")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(pulled.sample(4, generator=g()), local.sample(4, generator=g()))
