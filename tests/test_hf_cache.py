"""Loading from the Hugging Face cache offline, through huggingface_hub's real cache resolution.

The cache is written in huggingface_hub's real layout::

    models--org--mnist-vae/
        blobs/<etag>                                   file contents
        snapshots/<commit>/<path> -> ../../blobs/<etag> relative symlinks
        refs/main, refs/v1                             commit hashes

huggingface_hub and diffusers read ``HF_HUB_OFFLINE`` / ``HF_HUB_CACHE`` into module constants at import time,
so the in-process tests patch those constants; one test runs a fresh interpreter with the environment variables
set before import, which is the real offline path a user gets.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from model_helpers import gen
from safetensors.torch import load_file

from vaegan import AE, GAN, VAE, AutoModel, CheckpointError

# diffusers passes huggingface_hub a deprecated argument; not this library's concern.
pytestmark = pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated:UserWarning")

REPO = "org/mnist-vae"
COMMIT_MAIN = hashlib.sha1(b"first commit").hexdigest()
COMMIT_V1 = hashlib.sha1(b"second commit").hexdigest()




def small_vae(seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(architecture="mlp", hidden_dims=(16,), latent_dim=3).eval()


def small_gan(seed: int) -> GAN:
    torch.manual_seed(seed)
    return GAN(architecture="mlp", generator_hidden_dims=(16,), discriminator_hidden_dims=(16,), latent_dim=4).eval()


def saved_files(model, tmp: Path, prefix: str = "") -> dict[str, bytes]:
    """The files ``save_pretrained`` writes, as a repo would hold them (paths relative to the repo root)."""
    folder = tmp / f"saved-{id(model)}"
    model.save_pretrained(folder)
    return {prefix + p.name: p.read_bytes() for p in folder.iterdir()}


def write_cache_repo(cache: Path, repo_id: str, commit: str, files: dict[str, bytes], refs: tuple[str, ...] = ()):
    """Add one snapshot of ``repo_id`` to an HF cache, in huggingface_hub's real on-disk layout."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        # LFS files are addressed by their sha256, plain git files by their git blob sha1
        if rel.endswith(".safetensors") or rel.endswith(".bin"):
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (blobs / etag).write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blobs / etag, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return repo


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A cache holding org/mnist-vae: main = VAE #1 (+ VAE #3 in subfolder vae/), v1 = VAE #2; and org/gan."""
    tmp = tmp_path_factory.mktemp("hf")
    cache = tmp / "hub"
    main, v1, sub, gan = small_vae(1), small_vae(2), small_vae(3), small_gan(4)
    write_cache_repo(cache, REPO, COMMIT_MAIN, {**saved_files(main, tmp), **saved_files(sub, tmp, "vae/")}, ("main",))
    write_cache_repo(cache, REPO, COMMIT_V1, saved_files(v1, tmp), ("v1",))
    write_cache_repo(cache, "org/gan", COMMIT_MAIN, saved_files(gan, tmp), ("main",))
    return {"cache": cache, "tmp": tmp, "main": main, "v1": v1, "sub": sub, "gan": gan}


def samples(model) -> torch.Tensor:
    return model.sample(3, generator=gen(0))


@pytest.fixture
def offline(monkeypatch, hub_cache):
    """Offline mode and this cache, patched where huggingface_hub and diffusers read them; the network is cut."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache["cache"]))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache["cache"]))
    for module in ("diffusers.utils.hub_utils", "diffusers.loaders.lora_base", "diffusers.models.attention_dispatch"):
        if module in sys.modules and hasattr(sys.modules[module], "HF_HUB_OFFLINE"):
            monkeypatch.setattr(sys.modules[module], "HF_HUB_OFFLINE", True)
    return _cut_network(monkeypatch)


def _cut_network(monkeypatch) -> list[str]:
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:2] or args[:1]))
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_cache_layout_is_the_real_one(hub_cache):
    repo = hub_cache["cache"] / "models--org--mnist-vae"
    assert (repo / "refs" / "main").read_text() == COMMIT_MAIN
    link = repo / "snapshots" / COMMIT_MAIN / "diffusion_pytorch_model.safetensors"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve().parent == (repo / "blobs").resolve()
    # huggingface_hub itself recognises the cache
    info = huggingface_hub.scan_cache_dir(hub_cache["cache"])
    repos = {r.repo_id: r for r in info.repos}
    assert {REPO, "org/gan"} <= repos.keys()
    assert {rev.commit_hash for rev in repos[REPO].revisions} == {COMMIT_MAIN, COMMIT_V1}
    assert {ref for rev in repos[REPO].revisions for ref in rev.refs} == {"main", "v1"}


def test_load_repo_id_offline_with_cache_dir(hub_cache, offline):
    model = VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"])
    assert torch.equal(samples(model), samples(hub_cache["main"]))
    assert not torch.equal(samples(model), samples(hub_cache["v1"]))
    auto = AutoModel.from_pretrained(REPO, cache_dir=hub_cache["cache"])
    assert type(auto) is VAE and torch.equal(samples(auto), samples(hub_cache["main"]))
    assert offline == []  # nothing tried to reach the network


def test_load_repo_id_offline_from_the_default_cache(hub_cache, offline):
    model = VAE.from_pretrained(REPO)  # no cache_dir: huggingface_hub's HF_HUB_CACHE
    assert torch.equal(samples(model), samples(hub_cache["main"]))
    gan = AutoModel.from_pretrained("org/gan")
    assert type(gan) is GAN and torch.equal(samples(gan), samples(hub_cache["gan"]))
    assert offline == []


def test_local_files_only_loads_from_the_cache_without_network(hub_cache, monkeypatch):
    attempts = _cut_network(monkeypatch)
    model = VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"], local_files_only=True)
    assert torch.equal(samples(model), samples(hub_cache["main"]))
    assert attempts == []


@pytest.mark.parametrize("revision", ["v1", COMMIT_V1, "main", COMMIT_MAIN])
def test_revision_by_ref_and_by_commit_hash(hub_cache, offline, revision):
    expected = hub_cache["v1"] if revision in ("v1", COMMIT_V1) else hub_cache["main"]
    model = VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"], revision=revision)
    assert torch.equal(samples(model), samples(expected))
    auto = AutoModel.from_pretrained(REPO, cache_dir=hub_cache["cache"], revision=revision)
    assert torch.equal(samples(auto), samples(expected))


def test_subfolder_inside_the_cache(hub_cache, offline):
    model = VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"], subfolder="vae")
    assert torch.equal(samples(model), samples(hub_cache["sub"]))
    assert not torch.equal(samples(model), samples(hub_cache["main"]))
    auto = AutoModel.from_pretrained(REPO, cache_dir=hub_cache["cache"], subfolder="vae")
    assert torch.equal(samples(auto), samples(hub_cache["sub"]))


def test_torch_dtype_from_the_cache(hub_cache, offline):
    model = VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"], torch_dtype=torch.float16)
    assert model.dtype == torch.float16 and samples(model).dtype == torch.float16


def test_wrong_class_for_a_cached_repo_is_refused(hub_cache, offline):
    with pytest.raises(ValueError, match="VAE"):
        GAN.from_pretrained(REPO, cache_dir=hub_cache["cache"])
    with pytest.raises(ValueError, match="VAE"):
        AE.from_pretrained(REPO, cache_dir=hub_cache["cache"])


@pytest.mark.parametrize("loader", [VAE.from_pretrained, AutoModel.from_pretrained])
def test_missing_repo_offline_gives_a_clear_error(hub_cache, offline, loader):
    with pytest.raises(OSError) as info:
        loader("org/not-in-cache", cache_dir=hub_cache["cache"])
    message = str(info.value)
    assert "org/not-in-cache" in message or "offline" in message.lower(), message
    assert offline == []


def test_missing_revision_offline_gives_an_error(hub_cache, offline):
    with pytest.raises(OSError, match="org/mnist-vae"):
        VAE.from_pretrained(REPO, cache_dir=hub_cache["cache"], revision="v2")


def test_pickle_only_repo_in_the_cache_is_refused_without_unpickling(hub_cache, offline, tmp_path):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    payload = pickle.dumps({"decoder.layers.1.weight": Payload()})
    config = {k: v for k, v in saved_files(small_vae(5), tmp_path).items() if k == "config.json"}
    write_cache_repo(hub_cache["cache"], "org/evil", COMMIT_MAIN,
                     {**config, "diffusion_pytorch_model.bin": payload}, ("main",))
    for loader in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(CheckpointError, match="safetensors"):
            loader("org/evil", cache_dir=hub_cache["cache"])
    assert not marker.exists()


def test_cached_weights_are_checked_strictly(hub_cache, offline):
    """The weights of a cached repo get the same checks as a local folder's (here: a corrupt blob)."""
    cache = hub_cache["cache"]
    files = saved_files(small_vae(6), hub_cache["tmp"])
    weights = load_file(hub_cache["cache"] / "models--org--mnist-vae" / "snapshots" / COMMIT_MAIN
                        / "diffusion_pytorch_model.safetensors")
    assert weights  # the real repo is readable
    files["diffusion_pytorch_model.safetensors"] = files["diffusion_pytorch_model.safetensors"][:100]
    write_cache_repo(cache, "org/broken", COMMIT_MAIN, files, ("main",))
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        VAE.from_pretrained("org/broken", cache_dir=cache)


SUBPROCESS_SCRIPT = textwrap.dedent("""
    import json, socket, sys

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[1:2] or args[:1]))
        raise OSError("network access attempted in an offline test")

    socket.socket.connect = refuse
    socket.getaddrinfo = refuse

    import huggingface_hub.constants as constants
    import torch
    from safetensors.torch import save_file

    from vaegan import VAE, AutoModel

    torch.set_num_threads(1)
    repo, commit_v1, out_path = sys.argv[1:4]
    g = lambda: torch.Generator().manual_seed(0)
    out = {
        "main": VAE.from_pretrained(repo).sample(3, generator=g()),
        "auto": AutoModel.from_pretrained(repo).sample(3, generator=g()),
        "tag": VAE.from_pretrained(repo, revision="v1").sample(3, generator=g()),
        "commit": VAE.from_pretrained(repo, revision=commit_v1).sample(3, generator=g()),
        "subfolder": VAE.from_pretrained(repo, subfolder="vae").sample(3, generator=g()),
    }
    save_file(out, out_path)
    try:
        VAE.from_pretrained("org/not-in-cache")
        missing = None
    except Exception as err:
        missing = [type(err).__name__, isinstance(err, OSError), str(err)]
    print(json.dumps({"offline": constants.HF_HUB_OFFLINE, "cache": constants.HF_HUB_CACHE,
                      "attempts": attempts, "missing": missing}))
""")


def test_offline_env_vars_set_before_import_in_a_fresh_interpreter(hub_cache, tmp_path):
    cache = hub_cache["cache"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    out_path = tmp_path / "out.safetensors"
    result = subprocess.run([sys.executable, "-c", SUBPROCESS_SCRIPT, REPO, COMMIT_V1, str(out_path)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["offline"] is True
    assert Path(report["cache"]) == cache
    assert report["attempts"] == []
    name, is_os_error, message = report["missing"]
    assert is_os_error, (name, message)
    assert "org/not-in-cache" in message or "offline" in message.lower(), message

    out = load_file(out_path)
    assert torch.equal(out["main"], samples(hub_cache["main"]))
    assert torch.equal(out["auto"], samples(hub_cache["main"]))
    assert torch.equal(out["tag"], samples(hub_cache["v1"]))
    assert torch.equal(out["commit"], samples(hub_cache["v1"]))
    assert torch.equal(out["subfolder"], samples(hub_cache["sub"]))
    assert not (tmp_path / "hf-home" / "hub").exists() or not any((tmp_path / "hf-home" / "hub").iterdir())


def torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_cached_index_mapping_weights_to_a_pickle_is_refused_without_unpickling(hub_cache, offline, tmp_path,
                                                                                 vulnerable_torch_load):
    """A cached repo whose safetensors index maps the tensors to a pickle shard (diffusers would torch.load it)."""
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    model = small_vae(6)
    shard = "diffusion_pytorch_model-00001-of-00001.bin"
    index = {"metadata": {}, "weight_map": dict.fromkeys(model.state_dict(), shard)}
    files = {**saved_files(model, tmp_path), shard: torch_saved(dict.fromkeys(model.state_dict(), Payload())),
             "diffusion_pytorch_model.safetensors.index.json": json.dumps(index).encode()}
    write_cache_repo(hub_cache["cache"], "org/evil-shards", COMMIT_MAIN, files, ("main",))
    for loader in (VAE.from_pretrained, AutoModel.from_pretrained):
        with pytest.raises(CheckpointError, match=f"org/evil-shards: .*index.json maps weights to {shard}"):
            loader("org/evil-shards", cache_dir=hub_cache["cache"])
    assert vulnerable_torch_load == [] and not marker.exists()
    assert offline == []
