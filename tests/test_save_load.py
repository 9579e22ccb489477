"""Tests for save_pretrained / from_pretrained: bit-identical round trips, strict loading and atomic saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from model_helpers import TINY_CONFIGS, gen
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vaegan.models.base
from vaegan import AE, GAN, VAE, AutoModel, CheckpointError, ConfigError, WeightsMismatchError

WEIGHTS = "diffusion_pytorch_model.safetensors"
SAVED_FILES = {"config.json", WEIGHTS, "README.md"}
CARD_IMAGES = {"samples.png"}  # the model card's sample grid, written when the model can sample

FAMILIES = {name: TINY_CONFIGS[name] for name in ("ae", "ae-mlp", "vae", "vae-mlp", "gan", "gan-mlp")}




def make(family: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    cls, kwargs = FAMILIES[family]
    model = cls(**{**kwargs, **overrides})
    if isinstance(model, AE):
        prior_mean = torch.tensor([1.0, -1.0, 0.5]) * (seed + 1)
        model.fit_prior(prior_mean + 0.3 * torch.randn(50, model.latent_dim, generator=gen(seed)))
    return model.eval()


def outputs(model, seed: int = 0) -> dict[str, torch.Tensor]:
    """Everything a user gets out of a model for a fixed seed."""
    out = {"sample": model.sample(3, generator=gen(seed)), "sample_one": model.sample(1, generator=gen(seed + 1))}
    z = torch.randn(2, model.latent_dim, generator=gen(seed + 100)).to(model.dtype)
    with torch.no_grad():
        out["decode"] = model.decode_latents(z)
    if not isinstance(model, GAN):
        out["reconstruct"] = model.reconstruct(torch.rand(2, *model.image_shape, generator=gen(seed + 200)))
    return out


def assert_same_outputs(a, b) -> None:
    oa, ob = outputs(a), outputs(b)
    assert oa.keys() == ob.keys()
    for key in oa:
        assert torch.equal(oa[key], ob[key]), key


def public_config(model) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if not k.startswith("_")}


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or "partial" in p.name)


# ----------------------------------------------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_load_round_trip_is_bit_identical(family, tmp_path):
    model = make(family)
    model.save_pretrained(tmp_path / "model")
    loaded = type(model).from_pretrained(tmp_path / "model")
    assert type(loaded) is type(model)
    assert public_config(loaded) == public_config(model)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert_same_outputs(model, loaded)
    # the test is sharp: another model with the same config gives other outputs
    assert not torch.equal(outputs(make(family, seed=1))["sample"], outputs(loaded)["sample"])


@pytest.mark.parametrize("family", ["ae", "ae-mlp"])
def test_ae_prior_survives_save_and_load(family, tmp_path):
    model = make(family)
    assert model.has_prior
    model.save_pretrained(tmp_path / "ae")
    stored = load_file(tmp_path / "ae" / WEIGHTS)
    assert {"latent_prior.mean", "latent_prior.scale_tril", "latent_prior.fitted"} <= stored.keys()
    assert torch.equal(stored["latent_prior.mean"], model.latent_prior.mean)

    loaded = AE.from_pretrained(tmp_path / "ae")
    assert loaded.has_prior
    assert torch.equal(loaded.latent_prior.mean, model.latent_prior.mean)
    assert torch.equal(loaded.latent_prior.scale_tril, model.latent_prior.scale_tril)
    assert torch.equal(loaded.sample(4, generator=gen(5)), model.sample(4, generator=gen(5)))


def test_ae_without_prior_loads_without_prior(tmp_path):
    model = AE(architecture="mlp", hidden_dims=(16,))
    model.save_pretrained(tmp_path / "ae")
    loaded = AE.from_pretrained(tmp_path / "ae")
    assert not loaded.has_prior
    with pytest.raises(RuntimeError, match="fit_prior"):
        loaded.sample(1)


@pytest.mark.parametrize("family", ["ae-mlp", "vae", "gan"])
def test_saved_files_are_config_safetensors_and_model_card(family, tmp_path):
    model = make(family)
    model.save_pretrained(tmp_path / "model")
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert SAVED_FILES <= names <= SAVED_FILES | CARD_IMAGES
    assert not [p for p in tmp_path.rglob("*") if p.suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
    model.save_pretrained(tmp_path / "bare", model_card=False)
    assert {p.name for p in (tmp_path / "bare").iterdir()} == {"config.json", WEIGHTS}
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["_class_name"] == type(model).__name__
    card = (tmp_path / "model" / "README.md").read_text()
    assert "vaegan" in card and type(model).__name__ in card
    assert leftovers(tmp_path) == []


def test_pickle_serialization_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="safetensors"):
        make("vae-mlp").save_pretrained(tmp_path / "model", safe_serialization=False)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("family", ["ae-mlp", "vae-mlp", "gan-mlp", "gan"])
def test_auto_model_picks_the_right_class(family, tmp_path):
    model = make(family)
    model.save_pretrained(tmp_path / "model")
    loaded = AutoModel.from_pretrained(tmp_path / "model")
    assert type(loaded) is type(model)
    assert_same_outputs(model, loaded)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("family", ["ae", "vae", "gan", "gan-mlp"])
def test_torch_dtype_loads_and_samples_in_that_dtype(family, dtype, tmp_path):
    model = make(family)
    model.save_pretrained(tmp_path / "model")
    loaded = type(model).from_pretrained(tmp_path / "model", torch_dtype=dtype)
    assert loaded.dtype == dtype
    assert all(p.dtype == dtype for p in loaded.parameters())
    samples = loaded.sample(2, generator=gen(0))
    assert samples.dtype == dtype
    assert samples.min() >= 0 and samples.max() <= 1
    # the same weights, at lower precision
    reference = model.sample(2, generator=gen(0))
    assert torch.allclose(samples.float(), reference, atol=0.03 if dtype == torch.bfloat16 else 0.01)
    assert AutoModel.from_pretrained(tmp_path / "model", torch_dtype=dtype).dtype == dtype


@pytest.mark.parametrize("family", ["vae-mlp", "ae-mlp", "gan-mlp"])
def test_subfolder(family, tmp_path):
    model = make(family)
    model.save_pretrained(tmp_path / "repo" / "sub")
    (tmp_path / "repo" / "README.md").write_text("a repo holding a model in a subfolder")
    loaded = type(model).from_pretrained(tmp_path / "repo", subfolder="sub")
    assert_same_outputs(model, loaded)
    assert type(AutoModel.from_pretrained(tmp_path / "repo", subfolder="sub")) is type(model)
    with pytest.raises(OSError):
        type(model).from_pretrained(tmp_path / "repo")


def test_gan_repo_holds_generator_and_discriminator(tmp_path):
    model = make("gan")
    model.save_pretrained(tmp_path / "gan")
    with safe_open(tmp_path / "gan" / WEIGHTS, "pt") as f:
        keys = set(f.keys())
    assert keys == set(model.state_dict())
    assert any(k.startswith("generator.") for k in keys)
    assert any(k.startswith("discriminator.") for k in keys)
    loaded = GAN.from_pretrained(tmp_path / "gan")
    real = torch.rand(3, *model.image_shape, generator=gen(0))
    with torch.no_grad():
        assert torch.equal(loaded.discriminate(real), model.discriminate(real))


# ----------------------------------------------------------------------------------------------------------
# strict loading
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def saved_vae(tmp_path) -> Path:
    folder = tmp_path / "vae"
    make("vae-mlp").save_pretrained(folder)
    return folder


@pytest.mark.parametrize("cls", [GAN, AE])
def test_loading_a_vae_with_another_class_raises_config_error(saved_vae, cls):
    with pytest.raises(ConfigError, match="VAE") as info:
        cls.from_pretrained(saved_vae)
    assert "AutoModel" in str(info.value)


def test_unknown_config_key_raises_config_error_naming_it(saved_vae):
    edit_config(saved_vae, dropoutt=0.1)
    with pytest.raises(ConfigError, match="dropoutt") as info:
        VAE.from_pretrained(saved_vae)
    assert "'dropout'" in str(info.value)  # suggests the key it probably meant
    with pytest.raises(ConfigError, match="dropoutt"):
        AutoModel.from_pretrained(saved_vae)


def test_invalid_config_value_raises_config_error(saved_vae):
    edit_config(saved_vae, activation="softmax")
    with pytest.raises(ConfigError, match="activation"):
        VAE.from_pretrained(saved_vae)


def test_missing_tensor_raises_weights_mismatch_naming_it(saved_vae):
    tensors = load_file(saved_vae / WEIGHTS)
    del tensors["decoder.layers.1.bias"]
    save_file(tensors, saved_vae / WEIGHTS)
    with pytest.raises(WeightsMismatchError, match=r"decoder\.layers\.1\.bias") as info:
        VAE.from_pretrained(saved_vae)
    assert "missing" in str(info.value)


def test_unexpected_tensor_raises_weights_mismatch_naming_it(saved_vae):
    tensors = load_file(saved_vae / WEIGHTS)
    tensors["encoder.extra_head.weight"] = torch.zeros(3, 3)
    save_file(tensors, saved_vae / WEIGHTS)
    with pytest.raises(WeightsMismatchError, match=r"encoder\.extra_head\.weight") as info:
        VAE.from_pretrained(saved_vae)
    assert "unexpected" in str(info.value)


def test_misshaped_tensor_raises_weights_mismatch_naming_it_and_the_shapes(saved_vae):
    tensors = load_file(saved_vae / WEIGHTS)
    assert tuple(tensors["encoder.layers.1.bias"].shape) == (16,)
    tensors["encoder.layers.1.bias"] = torch.zeros(17)
    save_file(tensors, saved_vae / WEIGHTS)
    with pytest.raises(WeightsMismatchError, match=r"encoder\.layers\.1\.bias") as info:
        VAE.from_pretrained(saved_vae)
    message = str(info.value)
    assert "17" in message and "16" in message


def test_config_that_disagrees_with_the_weights_raises_weights_mismatch(saved_vae):
    edit_config(saved_vae, latent_dim=5)
    with pytest.raises(WeightsMismatchError):
        VAE.from_pretrained(saved_vae)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header"])
def test_corrupt_safetensors_raises_checkpoint_error(saved_vae, damage):
    path = saved_vae / WEIGHTS
    data = path.read_bytes()
    corrupted = {
        "truncate": data[: len(data) // 2],
        "garbage": b"\x00\x01not a safetensors file" * 20,
        "empty": b"",
        "header": data[:8] + b"!" + data[9:],  # the JSON header no longer parses
    }[damage]
    path.write_bytes(corrupted)
    with pytest.raises(CheckpointError) as info:
        VAE.from_pretrained(saved_vae)
    assert not isinstance(info.value, WeightsMismatchError)
    assert "corrupt" in str(info.value) or "truncated" in str(info.value)


def test_missing_weights_file_raises_checkpoint_error(saved_vae):
    (saved_vae / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=WEIGHTS):
        VAE.from_pretrained(saved_vae)


@pytest.mark.parametrize("text, kind", [("[1, 2]", "array"), ('"VAE"', "string"), ("null", "null"), ("3", "number"),
                                        ("{not json", "not valid JSON"), ("", "not valid JSON"),
                                        ("\udcff".encode("utf-8", "surrogatepass"), "not valid JSON")])
@pytest.mark.parametrize("loader", [VAE.from_pretrained, AutoModel.from_pretrained], ids=["VAE", "AutoModel"])
def test_config_json_that_is_not_a_json_object_raises_one_config_error_naming_it(saved_vae, text, kind, loader):
    path = saved_vae / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as info:
        loader(saved_vae)
    message = str(info.value)
    assert str(path) in message and kind in message and "save_pretrained" in message and "\n" not in message


def _rewrite_weights(folder: Path, change) -> dict[str, torch.Tensor]:
    tensors = load_file(folder / WEIGHTS)
    save_file({name: change(name, tensor) for name, tensor in tensors.items()}, folder / WEIGHTS)
    return tensors


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_float_weights_of_another_precision_are_converted_with_a_note(saved_vae, dtype, caplog):
    tensors = _rewrite_weights(saved_vae, lambda name, t: t.to(dtype))
    with caplog.at_level("WARNING"):
        model = VAE.from_pretrained(saved_vae)
    assert {t.dtype for t in model.state_dict().values()} == {torch.float32}
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, tensors[name].to(dtype).float()), name
    (note,) = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert str(saved_vae) in note and str(dtype).removeprefix("torch.") in note and "float32" in note
    caplog.clear()
    with caplog.at_level("WARNING"):  # a dtype asked for is no surprise: no note
        assert VAE.from_pretrained(saved_vae, torch_dtype=torch.float16).dtype == torch.float16
    assert not [r for r in caplog.records if "converted" in r.getMessage()]


def test_sharded_weights_get_the_same_dtype_and_value_checks(tmp_path, caplog):
    folder = tmp_path / "sharded"
    model = make("vae-mlp")
    model.save_pretrained(folder, max_shard_size="2KB")
    shards = sorted(folder.glob("diffusion_pytorch_model-*.safetensors"))
    assert len(shards) > 1
    for shard in shards:
        save_file({k: v.double() for k, v in load_file(shard).items()}, shard)
    with caplog.at_level("WARNING"):
        assert_same_outputs(VAE.from_pretrained(folder), model)
    assert any("float64" in r.getMessage() and "converted" in r.getMessage() for r in caplog.records)
    tensors = load_file(shards[-1])
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].to(torch.int8)
    save_file(tensors, shards[-1])
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        VAE.from_pretrained(folder)


def test_float32_weights_load_without_a_note(saved_vae, caplog):
    with caplog.at_level("WARNING"):
        VAE.from_pretrained(saved_vae)
    assert not [r for r in caplog.records if "converted" in r.getMessage()]


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int64, torch.bool])
def test_integer_weights_for_float_tensors_are_refused(saved_vae, dtype):
    _rewrite_weights(saved_vae, lambda name, t: t.to(dtype) if name == "decoder.layers.1.weight" else t)
    with pytest.raises(CheckpointError, match=r"decoder\.layers\.1\.weight") as info:
        VAE.from_pretrained(saved_vae)
    assert str(dtype).removeprefix("torch.") in str(info.value) and "float32" in str(info.value)


def test_float_weights_for_an_integer_buffer_are_refused(tmp_path):
    folder = tmp_path / "gan"
    make("gan").save_pretrained(folder, model_card=False)
    tensors = load_file(folder / WEIGHTS)
    (name,) = [n for n, t in tensors.items() if t.dtype == torch.int64][:1]
    tensors[name] = tensors[name].float() + 0.5
    save_file(tensors, folder / WEIGHTS)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        GAN.from_pretrained(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("loader", [VAE.from_pretrained, AutoModel.from_pretrained], ids=["VAE", "AutoModel"])
def test_non_finite_weights_are_refused_naming_the_tensor(saved_vae, value, loader):
    def poison(name, tensor):
        if name == "encoder.layers.3.bias":
            tensor = tensor.clone()
            tensor[1] = value
        return tensor

    _rewrite_weights(saved_vae, poison)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.3\.bias") as info:
        loader(saved_vae)
    assert "NaN or infinite" in str(info.value)


def test_float64_weights_beyond_float32_range_are_refused(saved_vae):
    def huge(name, tensor):
        tensor = tensor.double()
        if name == "encoder.layers.3.bias":
            tensor[0] = 1e300  # finite in float64, infinite in float32
        return tensor

    _rewrite_weights(saved_vae, huge)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.3\.bias"):
        VAE.from_pretrained(saved_vae)


def test_missing_folder_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        VAE.from_pretrained(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------------------------------------
# atomic saves
# ----------------------------------------------------------------------------------------------------------


class Interrupted(RuntimeError):
    pass


def _interrupt_weights_write(monkeypatch):
    """Make safetensors write half a weights file and then fail, as on a full disk or a crash."""
    real_save_file = safetensors.torch.save_file
    calls = []

    def broken_save_file(tensors, filename, metadata=None):
        calls.append(filename)
        real_save_file(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        raise Interrupted("disk full while writing the weights")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save_file)
    return calls


def _interrupt_model_card(monkeypatch):
    """Fail after the weights and config were written, while writing the model card."""

    def broken_card(*args, **kwargs):
        raise Interrupted("interrupted while writing README.md")

    monkeypatch.setattr(vaegan.models.base, "write_model_card", broken_card)


INTERRUPTIONS = {"weights": _interrupt_weights_write, "model_card": _interrupt_model_card}


@pytest.mark.parametrize("where", list(INTERRUPTIONS))
def test_interrupted_save_over_an_existing_model_keeps_the_old_model(where, tmp_path, monkeypatch):
    old, new = make("vae-mlp", seed=0), make("vae-mlp", seed=1)
    target = tmp_path / "model"
    old.save_pretrained(target)
    (target / "notes.txt").write_text("my notes")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    old_outputs = outputs(old)

    calls = INTERRUPTIONS[where](monkeypatch)
    with pytest.raises(Interrupted):
        new.save_pretrained(target)
    if where == "weights":
        assert calls and Path(calls[0]).parent != target  # the half-written file went to a staging folder
    monkeypatch.undo()

    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    loaded = VAE.from_pretrained(target)
    restored = outputs(loaded)
    assert all(torch.equal(old_outputs[k], restored[k]) for k in old_outputs)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", list(INTERRUPTIONS))
def test_interrupted_save_into_a_new_folder_leaves_nothing(where, tmp_path, monkeypatch):
    target = tmp_path / "parent" / "model"
    INTERRUPTIONS[where](monkeypatch)
    with pytest.raises(Interrupted):
        make("gan-mlp").save_pretrained(target)
    monkeypatch.undo()
    assert not target.exists()
    assert leftovers(target.parent) == []
    with pytest.raises(OSError):
        GAN.from_pretrained(target)


def test_saving_over_an_existing_folder_replaces_weights_and_keeps_user_files(tmp_path):
    old, new = make("vae-mlp", seed=0), make("vae-mlp", seed=1)
    target = tmp_path / "model"
    old.save_pretrained(target)
    (target / "notes.txt").write_text("my notes")
    (target / "samples").mkdir()
    (target / "samples" / "grid.png").write_bytes(b"png")
    (target / "diffusion_pytorch_model.bin").write_bytes(b"stale pickle weights")

    new.save_pretrained(target)
    assert (target / "notes.txt").read_text() == "my notes"
    assert (target / "samples" / "grid.png").read_bytes() == b"png"
    assert not (target / "diffusion_pytorch_model.bin").exists()  # stale weights of the old model are removed
    assert SAVED_FILES | {"notes.txt", "samples"} <= {p.name for p in target.iterdir()}
    assert {p.name for p in target.iterdir()} <= SAVED_FILES | CARD_IMAGES | {"notes.txt", "samples"}
    loaded = VAE.from_pretrained(target)
    assert_same_outputs(new, loaded)
    assert not torch.equal(outputs(loaded)["sample"], outputs(old)["sample"])
    assert leftovers(tmp_path) == []


def test_saving_over_a_model_of_another_family(tmp_path):
    target = tmp_path / "model"
    make("vae-mlp").save_pretrained(target)
    gan = make("gan-mlp")
    gan.save_pretrained(target)
    assert type(AutoModel.from_pretrained(target)) is GAN
    with pytest.raises(ConfigError):
        VAE.from_pretrained(target)
    assert_same_outputs(gan, GAN.from_pretrained(target))


def test_save_into_a_file_path_is_refused(tmp_path):
    path = tmp_path / "model"
    path.write_text("not a folder")
    with pytest.raises(FileExistsError):
        make("vae-mlp").save_pretrained(path)
    assert path.read_text() == "not a folder"
    assert leftovers(tmp_path) == []
