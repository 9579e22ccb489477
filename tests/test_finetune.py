"""Bundled configs by name, the training config saved with a model, and one-command fine-tuning of a model folder
or Hub repo (`vaegan train org/model --set ...`), with the data's shape checked before any training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from training_utils import model_tensors, reset_accelerate_state, tiny_config

from vaegan import VAE
from vaegan.cli import main
from vaegan.errors import ConfigError
from vaegan.training import Trainer, load_config, train
from vaegan.training.bundled import config_descriptions, describe
from vaegan.training.config import config_from_dict
from vaegan.training.finetune import finetune_config, is_model_reference, shape_check_applies

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A tiny VAE trained for one epoch: its output folder (model/ holds training_config.yaml)."""
    out = tmp_path_factory.mktemp("base") / "tiny-base"
    train(tiny_config("vae", out, epochs=1))
    reset_accelerate_state()
    return out


# ------------------------------------------------------------------------------------------------ bundled configs
def test_every_config_file_is_bundled_with_a_description():
    descriptions = config_descriptions()
    assert sorted(descriptions) == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    assert all(text and "\n" not in text for text in descriptions.values())
    assert descriptions["mnist-vae"].startswith("The textbook variational autoencoder")


def test_describe_takes_the_first_sentence_of_the_header():
    text = "# A VAE. With more words.\n# Second line.\n#   vaegan train x\nmodel: {}\n"
    assert describe(text) == "A VAE"
    assert describe("# One long line that goes on: " + "x" * 200 + "\nmodel: {}") == "One long line that goes on"
    assert describe("model: {}\n") == ""


def test_bare_name_resolves_to_the_bundled_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    expected = load_config(ROOT / "configs" / "mnist-vae.yaml").to_dict()
    assert load_config("mnist-vae").to_dict() == expected
    assert load_config("mnist-vae.yaml", ["train.epochs=3"]).train.epochs == 3
    with pytest.raises(ConfigError, match=r"Did you mean 'mnist-vae'\?.*vaegan configs"):
        load_config("mnist-vea")
    (tmp_path / "mnist-vae.yaml").write_text(yaml.safe_dump({"model": {"class": "AE"}}))
    assert load_config("mnist-vae.yaml").model["class"] == "AE"  # a file given by path wins


def test_vaegan_configs_command(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name, description in config_descriptions().items():
        assert any(line.split(None, 1) == [name, description] for line in out.splitlines()), name
    assert main(["configs", "--paths"]) == 0
    paths = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert sorted(paths) == sorted(config_descriptions()) and all(Path(p).is_file() for p in paths.values())


# --------------------------------------------------------------------------------------- training config with model
def test_trained_model_folder_holds_its_training_config(base_run):
    text = (base_run / "model" / "training_config.yaml").read_text()
    recorded, run = yaml.safe_load(text), yaml.safe_load((base_run / "config.yaml").read_text())
    # the run's settings, less the folders of this machine (nothing to others; the run's config.yaml keeps them)
    assert "output_dir" not in recorded["train"] and "cache_dir" not in recorded["data"]
    assert str(base_run) not in text and run["train"]["output_dir"] == str(base_run)
    del run["train"]["output_dir"], run["data"]["cache_dir"]
    assert recorded == run
    assert config_from_dict(recorded).data.limit == 256


def test_model_references_are_told_from_configs(base_run, tmp_path):
    assert is_model_reference(str(base_run / "model")) and is_model_reference("org/mnist-vae")
    assert not is_model_reference("mnist-vae") and not is_model_reference("configs/mnist-vae.yaml")
    assert not is_model_reference(str(base_run))  # a run folder has no config.json at its top
    with pytest.raises(ConfigError, match=r"folder without config.json.*give .*tiny-base/model"):
        load_config(str(base_run))


# ------------------------------------------------------------------------------------------------------ fine-tuning
def test_finetune_config_uses_the_recorded_config_and_overrides(base_run):
    config, notes = finetune_config(str(base_run / "model"), ["train.max_steps=2", "train.learning_rate=0.5"])
    assert "recorded training_config.yaml" in notes[0]
    assert config.data.limit == 256 and config.train.batch_size == 32  # from the base run
    assert config.train.max_steps == 2 and config.train.learning_rate == 0.5  # overrides
    assert config.train.output_dir == "outputs/tiny-base-finetuned" and config.hub.repo_id is None
    assert config.model["latent_dim"] == 2 and config.model["block_out_channels"] == [16, 32]


HOSTILE_MACHINE_SETTINGS = {
    "data": {"num_workers": 100000, "cache_dir": "/root/.ssh", "limit": 64},
    "train": {"output_dir": "/home/alice/runs/faces", "trackers": ["wandb"], "mixed_precision": "bf16",
              "compile": True, "channels_last": True, "batch_size": 16},
    "hub": {"repo_id": "alice/faces", "private": True},
}


def _model_with_recorded_config(folder: Path, recorded: dict) -> Path:
    VAE(architecture="mlp", hidden_dims=(16,), latent_dim=3).save_pretrained(folder, training_config=recorded,
                                                                              model_card=False)
    return folder


def _assert_machine_settings_ignored(config, notes) -> None:
    assert config.data.num_workers is None and config.data.cache_dir is None  # the defaults
    assert config.train.trackers == [] and config.train.mixed_precision == "no"
    assert not config.train.compile and not config.train.channels_last
    assert config.hub.repo_id is None and config.hub.private is False
    assert config.data.limit == 64 and config.train.batch_size == 16  # the recipe is kept
    (line,) = [n for n in notes if "not taken" in n]
    for key in ("data.num_workers=100000", "data.cache_dir=/root/.ssh", "train.output_dir=/home/alice/runs/faces",
                "train.trackers=['wandb']", "train.mixed_precision=bf16", "train.compile=True",
                "train.channels_last=True", "hub.repo_id=alice/faces", "hub.private=True"):
        assert key in line, key
    assert "data.limit" not in line and "train.batch_size" not in line and "--set" in line


def test_recorded_machine_settings_are_not_taken(tmp_path):
    """A model's training_config.yaml was written on another machine: its workers, folders, loggers, precision
    and Hub repo are not this run's; they come from --set or the defaults, and the run says which it ignored."""
    folder = _model_with_recorded_config(tmp_path / "faces", HOSTILE_MACHINE_SETTINGS)
    config, notes = finetune_config(str(folder))
    _assert_machine_settings_ignored(config, notes)
    assert config.train.output_dir == "outputs/faces-finetuned"
    config, _ = finetune_config(str(folder), ["data.num_workers=2", "train.trackers=[tensorboard]"])
    assert config.data.num_workers == 2 and config.train.trackers == ["tensorboard"]  # the user's own choice


def test_recorded_machine_settings_of_a_hub_model_are_not_taken(tmp_path, hub):
    from huggingface_hub import HfApi

    folder = _model_with_recorded_config(tmp_path / "faces", HOSTILE_MACHINE_SETTINGS)
    HfApi().create_repo("org/faces")
    HfApi().upload_folder(repo_id="org/faces", folder_path=folder)
    config, notes = finetune_config("org/faces")
    _assert_machine_settings_ignored(config, notes)


def test_vaegan_push_leaves_local_folders_out_of_an_older_training_config(tmp_path, hub, capsys):
    from huggingface_hub import hf_hub_download

    older = {"data": {"source": "imagefolder:/home/alice/data/faces", "cache_dir": "/home/alice/cache"},
             "train": {"output_dir": "/home/alice/runs/faces", "epochs": 3}}
    folder = _model_with_recorded_config(tmp_path / "faces", older)  # as vaegan saved it before
    assert main(["push", str(folder), "org/faces"]) == 0, capsys.readouterr().err
    text = Path(hf_hub_download("org/faces", "training_config.yaml")).read_text()
    assert "/home/alice" not in text
    assert yaml.safe_load(text) == {"data": {"source": "imagefolder:./faces"}, "train": {"epochs": 3}}


def test_recorded_local_data_folder_is_not_used(tmp_path):
    """A local data source names a folder of the machine that trained: the user gives the data to fine-tune on."""
    recorded = {"data": {"source": "imagefolder:/home/alice/faces"}}
    folder = _model_with_recorded_config(tmp_path / "faces", recorded)
    with pytest.raises(ConfigError, match=r"imagefolder:/home/alice/faces.*--set data\.source="):
        finetune_config(str(folder))
    images = _colour_folder(tmp_path / "mine", n=4, size=28)
    config, _ = finetune_config(str(folder), [f"data.source=imagefolder:{images}"])
    assert config.data.source == f"imagefolder:{images}"


def test_saved_training_config_leaves_out_local_folders():
    config = config_from_dict({"model": {"class": "VAE"},
                               "data": {"source": "imagefolder:/home/alice/data/faces", "cache_dir": "/home/alice/c"},
                               "train": {"output_dir": "/home/alice/runs/x", "epochs": 3}})
    shared = config.shareable_dict()
    assert "/home/alice" not in yaml.safe_dump(shared)
    assert shared["data"]["source"] == "imagefolder:./faces" and shared["train"]["epochs"] == 3
    assert "output_dir" not in shared["train"] and "cache_dir" not in shared["data"]
    assert config.to_dict()["train"]["output_dir"] == "/home/alice/runs/x"  # the run itself keeps its folders


def test_model_without_training_config_gets_the_bundled_config_of_its_family(tmp_path):
    VAE(latent_dim=16).save_pretrained(tmp_path / "vae16")
    config, notes = finetune_config(str(tmp_path / "vae16"))
    assert "bundled config mnist-vae-16d" in notes[0]
    assert config.model["latent_dim"] == 16  # the model's own shape, not the bundled config's
    assert config.train.epochs == load_config("mnist-vae-16d").train.epochs


def test_cli_fine_tunes_a_model_folder(base_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", str(base_run / "model"), "--set", "train.max_steps=3", "--set", "train.learning_rate=1e-12"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "outputs" / "tiny-base-finetuned"
    assert "recorded training_config.yaml" in capsys.readouterr().out
    before, after = model_tensors(base_run / "model"), model_tensors(out / "model")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)  # started from the base weights
    summary = json.loads((out / "model" / "training_summary.json").read_text())
    assert summary["init_from"] == str(base_run / "model") and summary["base_model"] is None  # local: not a Hub id
    assert summary["changes"] == {"train.max_steps": [None, 3], "train.learning_rate": [0.001, 1e-12]}
    recorded = yaml.safe_load((out / "model" / "training_config.yaml").read_text())
    assert recorded["train"]["max_steps"] == 3 and recorded["data"]["limit"] == 256
    card = (out / "model" / "README.md").read_text()
    assert "## Fine-tuning" in card and "`train.learning_rate` | `0.001` → `1e-12`" in card
    assert "[`training_config.yaml`](training_config.yaml)" in card and "base_model" not in card


def test_cli_refuses_init_from_with_a_model_reference(base_run, capsys):
    assert main(["train", str(base_run / "model"), "--init-from", "org/x"]) == 2
    assert "drop --init-from" in capsys.readouterr().err


def _colour_folder(folder: Path, n: int = 40, size: int = 32) -> Path:
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels, "RGB").save(folder / f"{i:03d}.png")
    return folder


def test_data_of_another_shape_is_refused_before_training(base_run, tmp_path):
    colour = _colour_folder(tmp_path / "cifar-like")
    config = tiny_config("vae", tmp_path / "ft", epochs=1)
    config.data.source, config.data.limit = f"imagefolder:{colour}", None
    with pytest.raises(ConfigError, match=r"32x32x3 \(colour\) images, but the model .* takes 28x28x1 "
                                          r"\(grayscale\).*data\.resize=true"):
        Trainer(config, init_from=str(base_run / "model"))
    assert not (tmp_path / "ft").exists()  # nothing trained, nothing written
    reset_accelerate_state()
    config.data.resize = True  # asked for: resized and converted
    trainer = Trainer(config, init_from=str(base_run / "model"))
    assert trainer.train_set[0][0].shape == (1, 28, 28)


def test_shape_check_applies_to_other_data_when_fine_tuning(tmp_path):
    config = tiny_config("vae", tmp_path)
    base = {"data": {"source": "mnist-5k"}}
    assert not shape_check_applies(config, None, None)  # from scratch: resized to the config's model
    assert not shape_check_applies(config, "org/m", base)  # the base model's own data: resized as the base run did
    assert shape_check_applies(config, "org/m", None)  # base data unknown
    config.data.source = "imagefolder:other"
    assert shape_check_applies(config, "org/m", base)
    config.data.resize = True
    assert not shape_check_applies(config, "org/m", base)
    config.data.resize = False
    assert shape_check_applies(config, None, None)


def test_python_m_vaegan_train_fine_tunes_a_model_folder(base_run, tmp_path):
    """`accelerate launch -m vaegan.train MODEL ...` runs this module: the same command line, one process here."""
    result = subprocess.run([sys.executable, "-m", "vaegan.train", str(base_run / "model"), "--set",
                             "train.max_steps=2", "--output-dir", str(tmp_path / "ft")], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Fine-tuning" in result.stdout and (tmp_path / "ft" / "model" / "training_config.yaml").is_file()


def test_hub_round_trip_fine_tune_and_push(base_run, tmp_path, hub, monkeypatch, capsys):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    base = VAE.from_pretrained(base_run / "model")
    assert main(["push", str(base_run / "model"), "org/tiny"]) == 0, capsys.readouterr().err
    assert "training_config.yaml" in HfApi().list_repo_files("org/tiny")  # `vaegan push` uploads it too
    monkeypatch.chdir(tmp_path)
    assert main(["train", "org/tiny", "--set", "train.max_steps=5", "--set", "train.learning_rate=1e-12",
                 "--push-to-hub", "org/tiny-ft"]) == 0, capsys.readouterr().err
    files = set(HfApi().list_repo_files("org/tiny-ft"))
    assert {"training_config.yaml", "config.json", "diffusion_pytorch_model.safetensors", "README.md"} <= files
    text = Path(hf_hub_download("org/tiny-ft", "training_config.yaml")).read_text()
    recorded = yaml.safe_load(text)
    assert recorded["train"]["max_steps"] == 5 and recorded["hub"]["repo_id"] is None
    assert "output_dir" not in recorded["train"] and str(tmp_path) not in text  # no local folder is published
    card = ModelCard.load(hf_hub_download("org/tiny-ft", "README.md"))
    assert card.data.base_model == "org/tiny"
    assert "Fine-tuned from [org/tiny](https://huggingface.co/org/tiny)" in card.text
    assert "`vaegan train org/tiny-ft` fine-tunes this model" in card.text
    tuned = VAE.from_pretrained("org/tiny-ft")
    before, after = base.state_dict(), tuned.state_dict()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)  # the pushed weights, not fresh ones


@pytest.mark.slow
def test_two_process_accelerate_launch_fine_tunes_a_model_folder(base_run, tmp_path):
    accelerate = Path(sys.executable).parent / "accelerate"
    result = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "-m",
         "vaegan.train", str(base_run / "model"), "--set", "train.max_steps=3", "--output-dir", str(tmp_path / "ft")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Fine-tuning") == 1  # said once, not once per process
    summary = json.loads((tmp_path / "ft" / "model" / "training_summary.json").read_text())
    assert summary["hardware"] == "2 x cpu" and summary["init_from"] == str(base_run / "model")
