"""Safety of loading: pickles are never unpickled, remote code never runs, absurd configs never allocate."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
from pathlib import Path

import pytest
import torch

from vaegan import AE, GAN, VAE, AutoModel, CheckpointError, ConfigError
from vaegan.models.base import GenerativeModel

PICKLE_NAMES = ["diffusion_pytorch_model.bin", "model.pt", "model.pkl"]



def small_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(architecture="mlp", hidden_dims=(16,), latent_dim=3)


class TouchOnUnpickle:
    """Unpickling an instance creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def malicious_pickle(marker: Path, fmt: str) -> bytes:
    """A checkpoint-looking pickle whose payload creates ``marker`` when loaded."""
    state = {"decoder.layers.1.weight": TouchOnUnpickle(marker), "encoder.layers.1.weight": torch.zeros(2)}
    if fmt == "torch":  # torch.save's zip format, what a real diffusion_pytorch_model.bin looks like
        path = marker.with_name("payload.pt")
        torch.save(state, path)
        data = path.read_bytes()
        path.unlink()
        return data
    return pickle.dumps(state)


@pytest.mark.parametrize("fmt", ["pickle", "torch"])
def test_the_malicious_pickle_really_is_malicious(tmp_path, fmt):
    """Guard against a harmless payload making the tests below pass vacuously."""
    marker = tmp_path / "MARKER"
    data = malicious_pickle(marker, fmt)
    assert not marker.exists()
    if fmt == "pickle":
        pickle.loads(data)
    else:
        path = tmp_path / "check.pt"
        path.write_bytes(data)
        torch.load(path, weights_only=False)
    assert marker.exists()


LOADERS = {
    "VAE": lambda path, **kw: VAE.from_pretrained(path, **kw),
    "AutoModel": lambda path, **kw: AutoModel.from_pretrained(path, **kw),
    "GAN": lambda path, **kw: GAN.from_pretrained(path, **kw),
    "VAE-use_safetensors=False": lambda path, **kw: VAE.from_pretrained(path, use_safetensors=False, **kw),
    "AutoModel-use_safetensors=False": lambda path, **kw: AutoModel.from_pretrained(path, use_safetensors=False,
                                                                                    **kw),
    "VAE-local_files_only": lambda path, **kw: VAE.from_pretrained(path, local_files_only=True, **kw),
}


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("with_config", [False, True], ids=["no-config", "with-config"])
@pytest.mark.parametrize("name", PICKLE_NAMES)
def test_pickle_only_folder_is_refused_and_never_unpickled(tmp_path, name, with_config, loader):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / name).write_bytes(malicious_pickle(marker, "torch" if name.endswith((".bin", ".pt")) else "pickle"))
    if with_config:
        small_vae().save_config(folder)

    with pytest.raises(CheckpointError) as info:
        LOADERS[loader](folder)
    message = str(info.value)
    assert "safetensors" in message
    if "use_safetensors" not in loader:
        assert name in message and "pickle" in message
    assert not marker.exists(), "a pickle was unpickled"


@pytest.mark.parametrize("loader", ["VAE", "AutoModel"])
def test_pickle_only_subfolder_is_refused(tmp_path, loader):
    marker = tmp_path / "MARKER"
    sub = tmp_path / "repo" / "vae"
    sub.mkdir(parents=True)
    small_vae().save_config(sub)
    (sub / "diffusion_pytorch_model.bin").write_bytes(malicious_pickle(marker, "torch"))
    with pytest.raises(CheckpointError, match="pickle"):
        LOADERS[loader](tmp_path / "repo", subfolder="vae")
    assert not marker.exists()


def test_pickle_beside_a_wrongly_named_safetensors_file_is_not_used(tmp_path):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    small_vae().save_pretrained(folder)
    os.rename(folder / "diffusion_pytorch_model.safetensors", folder / "weights.safetensors")
    (folder / "diffusion_pytorch_model.bin").write_bytes(malicious_pickle(marker, "torch"))
    for loader in ("VAE", "AutoModel", "VAE-use_safetensors=False"):
        with pytest.raises(CheckpointError, match="safetensors"):
            LOADERS[loader](folder)
    assert not marker.exists()


def test_safetensors_is_used_and_a_pickle_beside_it_ignored(tmp_path):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    model = small_vae()
    model.save_pretrained(folder)
    (folder / "diffusion_pytorch_model.bin").write_bytes(malicious_pickle(marker, "torch"))
    loaded = VAE.from_pretrained(folder)
    g = torch.Generator
    assert torch.equal(loaded.sample(2, generator=g().manual_seed(0)), model.sample(2, generator=g().manual_seed(0)))
    assert type(AutoModel.from_pretrained(folder)) is VAE
    with pytest.raises(CheckpointError):
        VAE.from_pretrained(folder, use_safetensors=False)
    assert not marker.exists()


@pytest.fixture
def saved(tmp_path) -> Path:
    folder = tmp_path / "model"
    small_vae().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("loader", ["VAE", "AutoModel"])
def test_trust_remote_code_is_refused(saved, loader):
    (saved / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        LOADERS[loader](saved, trust_remote_code=True)
    # without the flag the folder loads (the refusal is about the flag, not the folder)
    assert type(LOADERS[loader](saved)) is VAE


@pytest.mark.parametrize("loader", ["VAE", "AutoModel"])
def test_ignore_mismatched_sizes_is_refused(saved, loader):
    with pytest.raises(ValueError, match="ignore_mismatched_sizes"):
        LOADERS[loader](saved, ignore_mismatched_sizes=True)
    with pytest.raises(ValueError, match="ignore_mismatched_sizes"):
        LOADERS[loader](saved, ignore_mismatched_sizes=True, low_cpu_mem_usage=False)


def test_save_refuses_pickle_serialization(tmp_path):
    with pytest.raises(CheckpointError):
        small_vae().save_pretrained(tmp_path / "model", safe_serialization=False)
    assert not list(tmp_path.rglob("*.bin"))


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("loader", ["VAE", "AutoModel"])
def test_unregistered_class_name_lists_the_known_classes(saved, loader):
    _edit_config(saved, _class_name="EvilModel")
    with pytest.raises(ConfigError, match="EvilModel") as info:
        LOADERS[loader](saved)
    message = str(info.value)
    for known in ("AE", "GAN", "VAE"):
        assert known in message


def test_class_name_of_a_diffusers_model_is_not_imported(saved):
    _edit_config(saved, _class_name="AutoencoderKL")
    with pytest.raises(ConfigError, match="AutoencoderKL"):
        AutoModel.from_pretrained(saved)


def _forbid_building(monkeypatch) -> None:
    """Fail the test if a model's networks get built at all."""

    def refuse(self, factory):
        raise AssertionError(f"{type(self).__name__} started building its networks")

    monkeypatch.setattr(GenerativeModel, "_build", refuse)


@pytest.fixture
def no_allocation(monkeypatch):
    _forbid_building(monkeypatch)


@pytest.mark.parametrize("loader", ["VAE", "AutoModel"])
def test_absurd_latent_dim_in_config_is_refused_before_allocation(saved, loader, no_allocation):
    _edit_config(saved, latent_dim=10**9)
    with pytest.raises(ConfigError, match="latent_dim"):
        LOADERS[loader](saved)


@pytest.mark.parametrize("changes", [{"image_size": 10**6}, {"hidden_dims": [10**9]}, {"latent_dim": -1},
                                     {"architecture": "resnet"}])
def test_absurd_or_invalid_config_values_are_refused_before_allocation(saved, changes, no_allocation):
    _edit_config(saved, **changes)
    with pytest.raises(ConfigError, match=next(iter(changes))):
        VAE.from_pretrained(saved)


def test_config_over_the_parameter_limit_is_refused_on_the_meta_device(saved, monkeypatch):
    """A config with sane-looking fields but billions of parameters is counted on the meta device, not built."""
    _edit_config(saved, hidden_dims=[65_536, 65_536])
    built_for_real = []
    original = GenerativeModel._build

    def spy(self, factory):
        def checked_factory():
            nets = factory()
            built_for_real.extend(p.device.type for net in nets.values() for p in net.parameters())
            return nets

        return original(self, checked_factory)

    monkeypatch.setattr(GenerativeModel, "_build", spy)
    with pytest.raises(ConfigError, match="parameters"):
        VAE.from_pretrained(saved)
    assert built_for_real and set(built_for_real) == {"meta"}


def test_ae_with_a_huge_latent_prior_is_refused_before_allocation(tmp_path, monkeypatch):
    folder = tmp_path / "ae"
    AE(architecture="mlp", hidden_dims=(4,)).save_pretrained(folder, model_card=False)
    _edit_config(folder, latent_dim=65_536)  # its prior would be a 65536 x 65536 matrix (16 GiB)
    _forbid_building(monkeypatch)
    with pytest.raises(ConfigError, match="latent_dim"):
        AE.from_pretrained(folder)


# ------------------------------------------------------------------ sharded checkpoints (issue 23, item 2)
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"


def sharded_index(model, shard: str) -> bytes:
    """An index that maps every tensor of ``model`` to ``shard``, as diffusers' sharded save writes it."""
    return json.dumps({"metadata": {"total_size": 0}, "weight_map": dict.fromkeys(model.state_dict(), shard)}).encode()


def evil_sharded_folder(folder: Path, marker: Path, shard: str = "diffusion_pytorch_model-00001-of-00001.bin",
                        index: str = INDEX_NAME) -> VAE:
    """A real saved VAE (its safetensors file included) plus an index that maps its tensors to a malicious pickle."""
    model = small_vae()
    model.save_pretrained(folder)
    (folder / index).write_bytes(sharded_index(model, shard))
    (folder / Path(shard).name).write_bytes(malicious_pickle(marker, "torch"))
    return model


@pytest.mark.parametrize("loader", ["VAE", "AutoModel", "VAE-local_files_only"])
def test_index_mapping_weights_to_a_pickle_shard_is_refused_and_never_unpickled(tmp_path, loader,
                                                                                 vulnerable_torch_load):
    marker = tmp_path / "MARKER"
    evil_sharded_folder(tmp_path / "model", marker)
    with pytest.raises(CheckpointError) as info:
        LOADERS[loader](tmp_path / "model")
    message = str(info.value)
    assert INDEX_NAME in message and "diffusion_pytorch_model-00001-of-00001.bin" in message
    assert "not to safetensors files in" in message and "\n" not in message
    assert vulnerable_torch_load == [] and not marker.exists(), "a pickle shard was unpickled"


@pytest.mark.parametrize("shard", ["weights.gguf", "weights.pt", "../outside.safetensors", "sub/inner.safetensors",
                                   "weights.safetensors.bin"])
def test_index_naming_anything_but_a_safetensors_file_beside_it_is_refused(tmp_path, shard, vulnerable_torch_load):
    marker = tmp_path / "MARKER"
    evil_sharded_folder(tmp_path / "model", marker, shard=shard)
    with pytest.raises(CheckpointError, match=re.escape(shard)) as info:
        VAE.from_pretrained(tmp_path / "model")
    assert "not to safetensors files in" in str(info.value)
    assert vulnerable_torch_load == [] and not marker.exists()


# diffusers' names for a variant's index: the current one and the legacy one
@pytest.mark.parametrize("index", ["diffusion_pytorch_model.safetensors.index.fp16.json",
                                   "diffusion_pytorch_model.safetensors.fp16.index.json"])
def test_variant_index_mapping_weights_to_a_pickle_is_refused(tmp_path, index, vulnerable_torch_load):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "model"
    evil_sharded_folder(folder, marker, index=index)
    os.rename(folder / "diffusion_pytorch_model.safetensors", folder / "diffusion_pytorch_model.fp16.safetensors")
    with pytest.raises(CheckpointError, match=re.escape(index)):
        VAE.from_pretrained(folder, variant="fp16")
    assert vulnerable_torch_load == [] and not marker.exists()


def test_index_that_is_not_json_is_refused_naming_it(tmp_path):
    folder = tmp_path / "model"
    small_vae().save_pretrained(folder)
    (folder / INDEX_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match=re.escape(INDEX_NAME)):
        VAE.from_pretrained(folder)


def test_sharded_safetensors_checkpoint_still_loads(tmp_path, vulnerable_torch_load):
    """The refusal is about pickles: a model saved in safetensors shards loads as before."""
    model = small_vae()
    model.save_pretrained(tmp_path / "model", max_shard_size="2KB")
    assert len(list((tmp_path / "model").glob("diffusion_pytorch_model-*.safetensors"))) > 1
    assert (tmp_path / "model" / INDEX_NAME).is_file()
    loaded = VAE.from_pretrained(tmp_path / "model")
    g = torch.Generator
    assert torch.equal(loaded.sample(2, generator=g().manual_seed(0)), model.sample(2, generator=g().manual_seed(0)))
    assert vulnerable_torch_load == []


@pytest.mark.parametrize("how", ["VAEPipeline", "DiffusionPipeline"])
def test_pipeline_component_with_a_pickle_shard_is_refused(tmp_path, how, vulnerable_torch_load):
    from diffusers import DiffusionPipeline

    from vaegan import VAEPipeline

    marker = tmp_path / "MARKER"
    folder = tmp_path / "pipe"
    VAEPipeline(small_vae()).save_pretrained(folder)
    evil_sharded_folder(folder / "vae", marker)
    with pytest.raises(CheckpointError, match=re.escape(INDEX_NAME)):
        (VAEPipeline if how == "VAEPipeline" else DiffusionPipeline).from_pretrained(folder)
    assert vulnerable_torch_load == [] and not marker.exists()


@pytest.mark.parametrize("text", ["[1, 2]", "{not json"])
def test_pipeline_model_index_that_is_not_a_json_object_is_one_config_error(tmp_path, text):
    from vaegan import VAEPipeline

    folder = tmp_path / "pipe"
    VAEPipeline(small_vae()).save_pretrained(folder)
    (folder / "model_index.json").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(str(folder / "model_index.json"))):
        VAEPipeline.from_pretrained(folder)
