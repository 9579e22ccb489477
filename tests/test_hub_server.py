"""The local Hub (tests/hub_server.py) against the real huggingface_hub client, over real HTTP."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import *  # noqa: F403 - the `hub` and `hub_server` fixtures
from huggingface_hub import (
    HfApi,
    RepoFile,
    RepoFolder,
    hf_hub_download,
    model_info,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "org/tiny-model"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"_class_name": "AutoEncoder", "latent_dim": 8}')
    (folder / "model.safetensors").write_bytes(os.urandom(300_000))
    (folder / "README.md").write_text("---\nlicense: mit\nlibrary_name: vaegan\n---\n# Tiny model\n")
    return folder


def test_upload_folder_then_snapshot_download(hub, model_dir):
    api = HfApi()
    url = api.create_repo(REPO)
    assert (url.repo_id, url.repo_type) == (REPO, "model")
    commit = api.upload_folder(folder_path=model_dir, repo_id=REPO, commit_message="add model")

    history = api.list_repo_commits(REPO)
    assert [c.title for c in history] == ["add model", "initial commit"]
    assert history[0].commit_id == commit.oid
    assert model_info(REPO).sha == commit.oid  # module-level helper: default HfApi instance is patched too
    assert sorted(api.list_repo_files(REPO)) == [".gitattributes", "README.md", "config.json", "model.safetensors"]

    snapshot = Path(snapshot_download(REPO))
    assert snapshot.is_relative_to(hub.cache_dir) and snapshot.name == commit.oid
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (snapshot / name).read_bytes() == (model_dir / name).read_bytes()

    # Re-uploading unchanged files creates no commit.
    assert api.upload_folder(folder_path=model_dir, repo_id=REPO).oid == commit.oid


def test_hf_hub_download_listing_and_errors(hub, model_dir):
    api = HfApi()
    api.create_repo(REPO)
    api.upload_file(path_or_fileobj=model_dir / "config.json", path_in_repo="sub/config.json", repo_id=REPO)

    expected = (model_dir / "config.json").read_bytes()
    assert Path(hf_hub_download(REPO, "sub/config.json")).read_bytes() == expected
    assert Path(hf_hub_download(REPO, "config.json", subfolder="sub")).read_bytes() == expected
    assert api.file_exists(REPO, "sub/config.json") and not api.file_exists(REPO, "config.json")

    root = {entry.path: type(entry) for entry in api.list_repo_tree(REPO)}
    assert root == {"sub": RepoFolder, ".gitattributes": RepoFile}
    assert [entry.path for entry in api.list_repo_tree(REPO, "sub")] == ["sub/config.json"]
    [info] = api.get_paths_info(REPO, ["sub/config.json", "nope"])
    assert (info.path, info.size) == ("sub/config.json", len(expected))

    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "sub/config.json", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/no-such-repo", "config.json")

    api.delete_folder("sub", repo_id=REPO)
    assert api.list_repo_files(REPO) == [".gitattributes"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("sub/config.json", repo_id=REPO)


def test_tags_and_commits_pin_old_files(hub):
    api = HfApi()
    api.create_repo(REPO)
    old = api.upload_file(path_or_fileobj=b"weights v1", path_in_repo="model.safetensors", repo_id=REPO)
    api.create_tag(REPO, tag="v1")
    new = api.upload_file(path_or_fileobj=b"weights v2", path_in_repo="model.safetensors", repo_id=REPO)
    assert len(old.oid) == 40 and old.oid != new.oid

    def read(revision: str) -> bytes:
        return Path(hf_hub_download(REPO, "model.safetensors", revision=revision)).read_bytes()

    assert (read("v1"), read(old.oid), read(old.oid[:7]), read("main")) == (b"weights v1",) * 3 + (b"weights v2",)
    assert (Path(snapshot_download(REPO, revision="v1")) / "model.safetensors").read_bytes() == b"weights v1"

    refs = api.list_repo_refs(REPO)
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", old.oid)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", new.oid)]

    api.create_branch(REPO, branch="dev", revision=old.oid)
    assert read("dev") == b"weights v1"
    api.delete_tag(REPO, tag="v1")
    with pytest.raises(RevisionNotFoundError):
        read("v1")


def test_private_repo_is_invisible_to_others(hub, model_dir):
    api = HfApi()
    api.create_repo(REPO, private=True)
    api.upload_folder(folder_path=model_dir, repo_id=REPO)
    assert api.repo_info(REPO).private

    for token in (False, hub.other_token):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=token).model_info(REPO)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(REPO, "config.json", token=token)
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download(REPO, token=token)
        assert not HfApi(token=token).repo_exists(REPO)
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == (model_dir / "config.json").read_bytes()


def test_writes_need_the_namespace_owner_token(hub):
    api = HfApi()
    api.create_repo(REPO)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO)
    assert conflict.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO

    anonymous, other = HfApi(token=False), HfApi(token=hub.other_token)
    for client, status in ((anonymous, 401), (other, 403), (HfApi(token="hf_invalid"), 401)):
        with pytest.raises(HfHubHTTPError) as refused:
            client.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO)
        assert refused.value.response.status_code == status
        with pytest.raises(HfHubHTTPError) as refused:
            client.create_repo("org/another")
        assert refused.value.response.status_code == status
    assert api.list_repo_files(REPO) == [".gitattributes"]

    assert other.whoami()["name"] == "someone" and api.whoami()["name"] == hub.namespace
    assert other.create_repo("tiny").repo_id == "someone/tiny"  # own namespace
    with pytest.raises(HfHubHTTPError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="someone/tiny")


def test_offline_mode_serves_from_cache(hub, model_dir):
    api = HfApi()
    api.create_repo(REPO)
    api.upload_folder(folder_path=model_dir, repo_id=REPO)
    cached = hf_hub_download(REPO, "config.json")

    hub.offline()
    assert hf_hub_download(REPO, "config.json") == cached
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "README.md")
    with pytest.raises(OfflineModeIsEnabled):
        api.model_info(REPO)


def test_space_and_dataset_repos(hub, tmp_path):
    api = HfApi()
    space = "org/demo"
    assert api.create_repo(space, repo_type="space", space_sdk="gradio").repo_type == "space"
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("import gradio as gr\n")
    (app / "requirements.txt").write_text("vaegan\n")
    api.upload_folder(folder_path=app, repo_id=space, repo_type="space")
    files = api.list_repo_files(space, repo_type="space")
    assert sorted(files) == [".gitattributes", "README.md", "app.py", "requirements.txt"]
    assert api.space_info(space).sdk == "gradio"
    assert Path(hf_hub_download(space, "app.py", repo_type="space")).read_text() == "import gradio as gr\n"

    api.create_repo("org/data", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id="org/data", repo_type="dataset")
    assert Path(hf_hub_download("org/data", "data.csv", repo_type="dataset")).read_bytes() == b"a,b\n1,2\n"
    with pytest.raises(RepositoryNotFoundError):  # same id, wrong type
        hf_hub_download("org/data", "data.csv")


def test_subprocess_env_targets_the_same_hub(hub):
    HfApi().create_repo(REPO)
    HfApi().upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=REPO)
    script = f"from huggingface_hub import hf_hub_download; print(hf_hub_download({REPO!r}, 'config.json'))"
    result = subprocess.run([sys.executable, "-c", script], env=hub.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(hub.cache_dir)
