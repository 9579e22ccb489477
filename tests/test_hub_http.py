"""Publishing to the Hub for real: push_to_hub / from_pretrained over HTTP against the local Hub server
(tests/hub_server.py) with the real huggingface_hub client, revisions, private repos, offline mode and refusal of
unsafe repos (pickle weights, unknown classes, absurd sizes)."""

from __future__ import annotations

import io
import json
import pickle
import re
import resource
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from model_helpers import tiny_kwargs

from vaegan import AE, GAN, VAE, AutoModel, CheckpointError, ConfigError

MODEL_FILES = ["README.md", "config.json", "diffusion_pytorch_model.safetensors", "samples.png"]



def seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def make(cls=VAE, weights_seed: int = 0, **kwargs):
    torch.manual_seed(weights_seed)
    return cls(**(kwargs or tiny_kwargs(cls.__name__.lower())))


def repo_files(repo_id: str, **kwargs) -> list[str]:
    return sorted(f for f in HfApi().list_repo_files(repo_id, **kwargs) if f != ".gitattributes")


def cached_snapshots(hub) -> list[Path]:
    return sorted(hub.cache_dir.glob("models--*/snapshots/*"))


class Evil:
    """Unpickling this writes a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def upload_raw(hub, repo_id: str, files: dict[str, bytes], tmp_path: Path) -> None:
    """Publish arbitrary files with the real client (what an attacker could do)."""
    folder = tmp_path / re.sub(r"\W", "_", repo_id)
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    api = HfApi()
    api.create_repo(repo_id)
    api.upload_folder(repo_id=repo_id, folder_path=folder)


# ---------------------------------------------------------------------------------------------------- push / pull
def test_push_then_load_into_an_empty_cache(hub):
    vae = make()
    url = vae.push_to_hub("org/mnist-vae", training_summary={"dataset": "mnist-5k", "epochs": 1,
                                                              "metrics": {"loss": 1.5}})
    api = HfApi()
    commits = api.list_repo_commits("org/mnist-vae")
    assert [c.title for c in commits] == ["Upload VAE with vaegan", "initial commit"]  # one commit for the model
    assert url == f"{hub.url}/org/mnist-vae/commit/{commits[0].commit_id}"
    assert repo_files("org/mnist-vae") == MODEL_FILES

    assert cached_snapshots(hub) == []
    loaded = VAE.from_pretrained("org/mnist-vae")
    assert [p.name for p in cached_snapshots(hub)] == [commits[0].commit_id]  # it came over HTTP
    assert torch.equal(loaded.sample(8, generator=seed()), vae.sample(8, generator=seed()))  # bit-identical
    for name, tensor in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name

    card = ModelCard.load("org/mnist-vae")  # the card, fetched from the Hub, and its snippet
    assert card.data.library_name == "vaegan" and card.data.datasets == ["ylecun/mnist"]
    assert "| Epochs | 1 |" in card.text and "| `loss` | 1.5 |" in card.text
    [snippet] = re.findall(r"```python\n(.*?)```", card.text, flags=re.S)
    assert 'VAE.from_pretrained("org/mnist-vae")' in snippet
    namespace: dict = {}
    exec(snippet.replace('"my_samples.png"', repr(str(hub.home / "my_samples.png"))), namespace)  # runs as written
    assert torch.equal(namespace["images"], vae.sample(16, generator=seed()))

    again = AutoModel.from_pretrained("org/mnist-vae", cache_dir=hub.home / "other-cache")
    assert type(again) is VAE and torch.equal(again.sample(2, generator=seed()), vae.sample(2, generator=seed()))


def test_pinned_revisions_load_that_version(hub):
    api = HfApi()
    v1, v2 = make(weights_seed=1), make(weights_seed=2)
    v1.push_to_hub("org/vae", commit_message="v1")
    first = api.list_repo_commits("org/vae")[0].commit_id
    api.create_tag("org/vae", tag="v1.0")
    v2.push_to_hub("org/vae", commit_message="v2")
    assert [c.title for c in api.list_repo_commits("org/vae")] == ["v2", "v1", "initial commit"]

    expect1, expect2 = v1.sample(4, generator=seed()), v2.sample(4, generator=seed())
    assert not torch.equal(expect1, expect2)
    assert torch.equal(VAE.from_pretrained("org/vae").sample(4, generator=seed()), expect2)
    assert torch.equal(VAE.from_pretrained("org/vae", revision="v1.0").sample(4, generator=seed()), expect1)
    assert torch.equal(AutoModel.from_pretrained("org/vae", revision=first).sample(4, generator=seed()), expect1)
    for load in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(RevisionNotFoundError, match="no-such-tag"):
            load("org/vae", revision="no-such-tag")


def test_a_new_push_removes_files_the_model_no_longer_has(hub):
    ae = make(AE)
    ae.fit_prior(torch.randn(20, ae.latent_dim))
    ae.push_to_hub("org/ae")
    assert repo_files("org/ae") == MODEL_FILES
    make(AE).push_to_hub("org/ae")  # no prior: no samples
    assert repo_files("org/ae") == ["README.md", "config.json", "diffusion_pytorch_model.safetensors"]
    assert len(HfApi().list_repo_commits("org/ae")) == 3
    assert "cannot generate samples" in Path(hf_hub_download("org/ae", "README.md")).read_text()


def test_private_repo_needs_the_owner_token(hub, monkeypatch):
    vae = make()
    vae.push_to_hub("org/secret", private=True)
    assert HfApi().model_info("org/secret").private

    for token in (hub.other_token, False):  # another user; anonymous
        for load in (VAE.from_pretrained, AutoModel.from_pretrained):
            with pytest.raises(RepositoryNotFoundError, match="(?s)org/secret.*private or gated repo.*authenticated"):
                load("org/secret", token=token)
    monkeypatch.delenv("HF_TOKEN")  # nothing configured at all
    with pytest.raises(RepositoryNotFoundError, match="private or gated repo"):
        VAE.from_pretrained("org/secret")
    assert issubclass(RepositoryNotFoundError, OSError)  # code catching OSError (diffusers' error) still works
    assert cached_snapshots(hub) == []

    loaded = VAE.from_pretrained("org/secret", token=hub.token)
    assert torch.equal(loaded.sample(3, generator=seed()), vae.sample(3, generator=seed()))


def test_offline_mode_loads_from_the_cache(hub):
    vae = make()
    vae.push_to_hub("org/vae")
    make(weights_seed=5).push_to_hub("org/never-downloaded")
    VAE.from_pretrained("org/vae")  # one download
    hub.offline()
    hub.server.reset()  # the server forgets everything: only the cache can answer now
    loaded = VAE.from_pretrained("org/vae")
    assert torch.equal(loaded.sample(3, generator=seed()), vae.sample(3, generator=seed()))
    assert type(AutoModel.from_pretrained("org/vae")) is VAE
    with pytest.raises(OSError, match="org/never-downloaded"):
        VAE.from_pretrained("org/never-downloaded")


def test_gan_repo_holds_both_networks_and_automodel_loads_it(hub):
    gan = make(GAN)
    gan.push_to_hub("org/gan")
    assert repo_files("org/gan") == MODEL_FILES
    meta = HfApi().parse_safetensors_file_metadata("org/gan", "diffusion_pytorch_model.safetensors")
    names = set(meta.tensors)
    assert names == set(gan.state_dict())
    assert {name.split(".")[0] for name in names} == {"generator", "discriminator"}
    assert sum(meta.parameter_count.values()) == sum(t.numel() for t in gan.state_dict().values())

    loaded = AutoModel.from_pretrained("org/gan")
    assert type(loaded) is GAN
    assert torch.equal(loaded.sample(4, generator=seed()), gan.sample(4, generator=seed()))
    images = torch.rand(4, 1, 28, 28)
    gan.eval(), loaded.eval()
    assert torch.equal(loaded.discriminate(images), gan.discriminate(images))  # the discriminator came too
    assert "gan" in ModelCard.load("org/gan").data.tags


# ---------------------------------------------------------------------------------------------------- refusals
def test_pickle_only_repo_is_refused_without_unpickling(hub, tmp_path):
    marker = tmp_path / "pwned.txt"
    config = json.dumps({"_class_name": "VAE", **tiny_kwargs("vae")}).encode()
    upload_raw(hub, "org/evil", {"config.json": config, "diffusion_pytorch_model.bin": pickle.dumps(Evil(marker))},
               tmp_path)
    assert repo_files("org/evil") == ["config.json", "diffusion_pytorch_model.bin"]
    for load in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(CheckpointError, match="safetensors"):
            load("org/evil")
        with pytest.raises(ValueError, match="trust_remote_code"):
            load("org/evil", trust_remote_code=True)
        with pytest.raises(CheckpointError):
            load("org/evil", use_safetensors=False)
    assert not marker.exists()
    assert not list(hub.cache_dir.rglob("*.bin"))  # never even downloaded
    pickle.loads(pickle.dumps(Evil(marker)))  # the payload is real: unpickling it does write the marker
    assert marker.read_text() == "pwned"


SHARD = "diffusion_pytorch_model-00001-of-00001.bin"
INDEX = "diffusion_pytorch_model.safetensors.index.json"


def evil_sharded_files(model, marker: Path, tmp_path: Path, index: str = INDEX, weights: str | None = None) -> dict:
    """A saved model's files plus an index mapping its tensors to a malicious pickle (diffusers would torch.load
    it, whatever use_safetensors says)."""
    folder = tmp_path / f"saved-{index}"
    model.save_pretrained(folder, model_card=False)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    if weights:
        files[weights] = files.pop("diffusion_pytorch_model.safetensors")
    files[index] = json.dumps({"metadata": {}, "weight_map": dict.fromkeys(model.state_dict(), SHARD)}).encode()
    files[SHARD] = torch_saved(dict.fromkeys(model.state_dict(), Evil(marker)))
    return files


def torch_saved(obj) -> bytes:
    """``obj`` in torch.save's format, what a real ``*.bin`` shard holds."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("index, variant", [
    (INDEX, None),
    ("diffusion_pytorch_model.safetensors.index.fp16.json", "fp16"),
    ("diffusion_pytorch_model.safetensors.fp16.index.json", "fp16"),  # diffusers' legacy variant index name
])
def test_repo_whose_index_maps_weights_to_a_pickle_is_refused_without_unpickling(hub, tmp_path, index, variant,
                                                                                  vulnerable_torch_load):
    marker = tmp_path / "pwned.txt"
    weights = f"diffusion_pytorch_model.{variant}.safetensors" if variant else None
    upload_raw(hub, "org/evil-shards", evil_sharded_files(make(), marker, tmp_path, index, weights), tmp_path)
    for load in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(CheckpointError, match=f"org/evil-shards: {re.escape(index)} maps weights to {SHARD}"):
            load("org/evil-shards", variant=variant)
    assert vulnerable_torch_load == [] and not marker.exists()
    assert not list(hub.cache_dir.rglob("*.bin"))  # refused before the shard was even downloaded
    hub.offline()  # the cached index is checked the same way offline
    with pytest.raises(CheckpointError, match=SHARD):
        VAE.from_pretrained("org/evil-shards", variant=variant)
    assert vulnerable_torch_load == [] and not marker.exists()


def test_pipeline_repo_whose_model_index_maps_weights_to_a_pickle_is_refused(hub, tmp_path, vulnerable_torch_load):
    from diffusers import DiffusionPipeline

    from vaegan import GenerativePipeline, VAEPipeline

    marker = tmp_path / "pwned.txt"
    VAEPipeline(make()).save_pretrained(tmp_path / "pipe")
    files = {p.relative_to(tmp_path / "pipe").as_posix(): p.read_bytes()
             for p in (tmp_path / "pipe").rglob("*") if p.is_file()}
    files.update({f"vae/{name}": data for name, data in evil_sharded_files(make(), marker, tmp_path).items()})
    folder = tmp_path / "upload"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    HfApi().create_repo("org/evil-pipe")
    HfApi().upload_folder(repo_id="org/evil-pipe", folder_path=folder)
    for load in (GenerativePipeline.from_pretrained, VAEPipeline.from_pretrained, DiffusionPipeline.from_pretrained):
        with pytest.raises(CheckpointError, match=f"{INDEX} maps weights to {SHARD}"):
            load("org/evil-pipe")
    assert vulnerable_torch_load == [] and not marker.exists()


def test_a_push_between_the_check_and_the_load_is_not_read(hub, tmp_path, monkeypatch, vulnerable_torch_load):
    """The safety checks and diffusers' load read one commit: a push to the branch in between changes nothing."""
    import vaegan.models.base as base

    marker = tmp_path / "pwned.txt"
    vae = make()
    vae.push_to_hub("org/vae")
    check = base.refuse_unsafe_shards

    def check_then_push(source, kwargs):
        check(source, kwargs)
        evil = evil_sharded_files(make(weights_seed=1), marker, tmp_path)
        HfApi().upload_file(repo_id="org/vae", path_or_fileobj=evil[INDEX], path_in_repo=INDEX)
        HfApi().upload_file(repo_id="org/vae", path_or_fileobj=evil[SHARD], path_in_repo=SHARD)

    monkeypatch.setattr(base, "refuse_unsafe_shards", check_then_push)
    loaded = VAE.from_pretrained("org/vae")
    assert torch.equal(loaded.sample(3, generator=seed()), vae.sample(3, generator=seed()))
    assert vulnerable_torch_load == [] and not marker.exists()
    assert INDEX in repo_files("org/vae")  # the push did happen


def test_sharded_safetensors_repo_loads(hub, tmp_path, vulnerable_torch_load):
    vae = make()
    vae.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / INDEX).is_file()
    HfApi().create_repo("org/sharded")
    HfApi().upload_folder(repo_id="org/sharded", folder_path=tmp_path / "sharded")
    loaded = AutoModel.from_pretrained("org/sharded")
    assert torch.equal(loaded.sample(3, generator=seed()), vae.sample(3, generator=seed()))
    assert vulnerable_torch_load == []


@pytest.mark.parametrize("config, match", [
    ({"_class_name": "EvilNet", "latent_dim": 3}, "Unknown vaegan model class 'EvilNet'"),
    ({"_class_name": "VAE", "latent_dim": 10**9}, r"latent_dim must be an integer in \[1, 65536\]"),
    ({"_class_name": "GAN", "image_size": 1024, "base_channels": 1024}, "parameters, more than"),
    ({"_class_name": "VAE", "latent_dim": 3, "evil_hook": "os.system"}, "keys that VAE does not accept"),
])
def test_bad_configs_are_refused_before_allocation(hub, tmp_path, config, match):
    weights = tmp_path / "w"
    make().save_pretrained(weights, model_card=False)
    upload_raw(hub, "org/bad", {"config.json": json.dumps(config).encode(),
                                "diffusion_pytorch_model.safetensors":
                                    (weights / "diffusion_pytorch_model.safetensors").read_bytes()}, tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ConfigError, match=match):
        AutoModel.from_pretrained("org/bad")
    if config["_class_name"] != "EvilNet":
        with pytest.raises(ConfigError, match=match):
            getattr(__import__("vaegan"), config["_class_name"]).from_pretrained("org/bad")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024  # nothing big was allocated


@pytest.mark.parametrize("text, kind", [("[1, 2]", "array"), ("{not json", "not valid JSON")])
def test_config_json_that_is_not_a_json_object_is_one_config_error_naming_it(hub, tmp_path, text, kind):
    upload_raw(hub, "org/odd", {"config.json": text.encode()}, tmp_path)
    for load in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(ConfigError, match=f"org/odd: config.json (is|holds a JSON) {kind}"):
            load("org/odd")


def test_weights_dtype_and_values_are_checked_over_http(hub, tmp_path, caplog):
    from safetensors.torch import load_file, save_file

    vae = make()
    vae.save_pretrained(tmp_path / "m", model_card=False)
    weights = tmp_path / "m" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    save_file({k: v.double() for k, v in tensors.items()}, weights)
    HfApi().create_repo("org/f64")
    HfApi().upload_folder(repo_id="org/f64", folder_path=tmp_path / "m")
    with caplog.at_level("WARNING"):
        loaded = VAE.from_pretrained("org/f64")
    assert any("org/f64: weights stored as float64" in r.getMessage() for r in caplog.records)
    assert torch.equal(loaded.sample(2, generator=seed()), vae.sample(2, generator=seed()))

    tensors["decoder.layers.6.bias"] = torch.full_like(tensors["decoder.layers.6.bias"], float("nan"))
    save_file(tensors, weights)
    HfApi().create_repo("org/nan")
    HfApi().upload_folder(repo_id="org/nan", folder_path=tmp_path / "m")
    with pytest.raises(CheckpointError, match=r"org/nan hold NaN or infinite values in decoder\.layers\.6\.bias"):
        AutoModel.from_pretrained("org/nan")


def test_no_trust_remote_code_anywhere(hub):
    make().push_to_hub("org/vae")
    for load in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(ValueError, match="never runs code"):
            load("org/vae", trust_remote_code=True)
