"""Class-conditional models through the trainer, the pipelines and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from model_helpers import gen
from PIL import Image
from training_utils import TINY_MODELS, reset_accelerate_state

from vaegan import GAN, VAE, AutoModel, ConfigError, GANPipeline, VAEPipeline
from vaegan.training import Trainer
from vaegan.training.config import config_from_dict

TESTS = Path(__file__).parent
VAEGAN = [sys.executable, "-m", "vaegan.cli"]
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def conditional_config(family: str, output_dir: Path, data: dict | None = None, **model) -> dict:
    return {
        "model": {**TINY_MODELS[family], "num_classes": 10, **model},
        "data": data or {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(output_dir), "epochs": 1, "batch_size": 32, "log_every": 1,
                  "checkpoint_every": 1000, "num_preview_images": 4},
    }


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


# ---------------------------------------------------------------------------------------------------- trainer
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_trainer_trains_a_conditional_model_and_writes_a_class_grid(tmp_path, family):
    model_dir = Trainer(config_from_dict(conditional_config(family, tmp_path))).train()
    model = AutoModel.from_pretrained(model_dir)
    assert model.num_classes == 10
    assert model.class_names == [str(d) for d in range(10)]  # taken from the dataset (mnist-5k's classes)
    # samples.png: one row per class (10 rows), 8 samples a row; 28 px images with 2 px padding.
    assert Image.open(tmp_path / "samples.png").size == (8 * 30 + 2, 10 * 30 + 2)
    # Epoch previews: one class a row; num_preview_images=4 is fewer than the classes -> one sample of each.
    assert Image.open(tmp_path / "samples" / "epoch_001.png").size == (32, 10 * 30 + 2)
    assert Image.open(tmp_path / "interpolation.png").size == (10 * 30 + 2, 32)
    assert model.sample(2, generator=gen(0), class_labels="7").shape == (2, 1, 28, 28)
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["steps"] == 256 // 32


def test_conditional_ae_keeps_configured_class_names_and_fits_its_prior(tmp_path):
    raw = conditional_config("ae", tmp_path, class_names=NAMES)
    raw["train"]["num_preview_images"] = 4
    model_dir = Trainer(config_from_dict(raw)).train()
    model = AutoModel.from_pretrained(model_dir)
    assert model.class_names == NAMES and model.can_sample  # the AE fitted its prior to label-aware latents
    # Before the prior exists the previews are reconstructions of held-out digits (with their labels): 2 x 2.
    assert Image.open(tmp_path / "samples" / "epoch_001.png").size == (62, 62)
    assert Image.open(tmp_path / "samples.png").size == (8 * 30 + 2, 10 * 30 + 2)


def test_dataset_without_labels_is_refused_before_training(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(8):
        Image.new("L", (28, 28), color=i * 30).save(flat / f"{i}.png")
    config = config_from_dict(conditional_config("vae", tmp_path / "out", data={"source": f"imagefolder:{flat}"}))
    with pytest.raises(ConfigError, match="without labels.*data.label_column.*one subfolder per class.*num_classes: "
                                          "null"):
        Trainer(config)
    assert not (tmp_path / "out").exists()


def test_more_classes_in_the_data_than_the_model_has_is_refused(tmp_path):
    config = config_from_dict(conditional_config("vae", tmp_path / "out", num_classes=5))
    with pytest.raises(ConfigError, match="has 10 classes but model.num_classes is 5; set model.num_classes: 10"):
        Trainer(config)


# ---------------------------------------------------------------------------------------------------- pipelines
def _small(cls):
    torch.manual_seed(0)
    kwargs = ({"architecture": "mlp", "hidden_dims": [16], "latent_dim": 2} if cls is VAE
              else {"base_channels": 4, "latent_dim": 8})
    return cls(num_classes=10, class_names=NAMES, **kwargs)


@pytest.mark.parametrize("cls, pipeline", [(VAE, VAEPipeline), (GAN, GANPipeline)])
def test_pipeline_class_labels_save_and_load(tmp_path, cls, pipeline):
    model = _small(cls)
    pipe = pipeline(model)
    images = pipe(class_labels=[3, "seven"], generator=gen(0), output_type="pt").images
    assert images.shape == (2, 1, 28, 28)  # one image per label, like DiTPipeline
    assert torch.equal(images, model.sample(2, generator=gen(0), class_labels=[3, 7]))
    fours = pipe(batch_size=3, class_labels=4, generator=gen(0), output_type="pt").images
    assert torch.equal(fours, model.sample(3, generator=gen(0), class_labels=4))
    assert pipe.id2label[7] == "seven" and pipe.get_label_ids(["seven", "two"]) == [7, 2]
    with pytest.raises(ValueError, match="unknown class name 'eleven'"):
        pipe.get_label_ids("eleven")
    strip = pipe.interpolate(0, 1, steps=4, class_labels="five", output_type="pt").images
    assert strip.shape == (4, 1, 28, 28)

    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert type(loaded) is pipeline and loaded.id2label == pipe.id2label
    again = loaded(class_labels=[3, "seven"], generator=gen(0), output_type="pt").images
    assert torch.equal(again, images)


# ---------------------------------------------------------------------------------------------------- CLI
def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ})
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_cli_sample_label_and_all_classes(tmp_path):
    _small(VAE).save_pretrained(tmp_path / "cvae")
    VAE(architecture="mlp", hidden_dims=[16]).save_pretrained(tmp_path / "vae")
    cvae = str(tmp_path / "cvae")
    by_name = run([*VAEGAN, "sample", cvae, "--label", "seven", "-n", "4", "-o", str(tmp_path / "a.png")])
    assert "class 7 (seven)" in by_name.stdout
    run([*VAEGAN, "sample", cvae, "--label", "7", "-n", "4", "-o", str(tmp_path / "b.png")])
    drawn = run([*VAEGAN, "sample", cvae, "-n", "4", "-o", str(tmp_path / "c.png")])
    assert "classes drawn at random (pick one with --label; classes: 0=zero, 1=one" in drawn.stdout
    assert Image.open(tmp_path / "a.png").tobytes() == Image.open(tmp_path / "b.png").tobytes()
    grid = run([*VAEGAN, "sample", cvae, "--all-classes", "-n", "3", "-o", str(tmp_path / "grid.png")])
    assert "0=zero" in grid.stdout and Image.open(tmp_path / "grid.png").size == (3 * 30 + 2, 10 * 30 + 2)
    run([*VAEGAN, "interpolate", cvae, "--label", "three", "--steps", "5", "-o", str(tmp_path / "s.png")])
    assert Image.open(tmp_path / "s.png").size == (5 * 30 + 2, 32)

    for args, message in (
        ([cvae, "--label", "10"], "class label 10 is out of range"),
        ([cvae, "--label", "sevn"], "unknown class name 'sevn'. Did you mean 'seven'?"),
        ([str(tmp_path / "vae"), "--label", "3"], "unconditional"),
        ([str(tmp_path / "vae"), "--all-classes"], "--all-classes needs a class-conditional model"),
    ):
        result = run([*VAEGAN, "sample", *args, "-o", str(tmp_path / "x.png")], check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, \
            result.stderr


# ---------------------------------------------------------------------------------------------------- two processes
@pytest.mark.slow
def test_two_cpu_processes_train_a_conditional_model_with_labels_sharded_with_images(tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", str(TESTS / "ddp_conditional_worker.py"), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    for report in ranks:
        assert report["checked"] == 4 * 32 and report["mismatched"] == 0  # every label is its own image's label
        assert len(report["classes_seen"]) == 10
    # The two processes saw different images (the batches were sharded, labels with them).
    assert not set(ranks[0]["images"]) & set(ranks[1]["images"])
    model = AutoModel.from_pretrained(tmp_path / "model")
    assert model.num_classes == 10 and model.sample(2, generator=gen(0), class_labels=1).shape == (2, 1, 28, 28)


# ---------------------------------------------------------------------------------------------------- model card
def test_model_card_of_a_conditional_model(tmp_path):
    import re

    model = _small(GAN)
    model.save_pretrained(tmp_path / "cgan")
    readme = (tmp_path / "cgan" / "README.md").read_text()
    assert "**class-conditional** (10 classes)" in readme and "0: `zero`" in readme and "9: `nine`" in readme
    assert "- class-conditional" in readme  # a Hub tag
    assert "Class grid: one row per class, 8 samples a row" in readme
    assert Image.open(tmp_path / "cgan" / "samples.png").size == (8 * 30 + 2, 10 * 30 + 2)
    (snippet,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert 'class_labels="nine"' in snippet
    assert "your-username/cgan" in snippet  # a local save has no Hub id: the snippet uses a placeholder
    script = (snippet.replace("your-username/cgan", "cgan")
              + "\nassert images.shape == (8, 1, 28, 28) and styles.shape == (40, 1, 28, 28)\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]

    GANPipeline(model).save_pretrained(tmp_path / "pipe")
    assert 'pipe(class_labels=["zero", "one"]' in (tmp_path / "pipe" / "README.md").read_text()
