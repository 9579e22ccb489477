"""Model cards written by save_pretrained: Hub metadata, runnable usage snippet, configuration, training summary and
the sample grid (samples.png); and the image helpers in vaegan.images."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import bernoulli_family
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from model_helpers import tiny_model
from PIL import Image

from vaegan.cards import dataset_tag
from vaegan.images import make_grid, save_gif

SUMMARY = {
    "dataset": "MNIST (ylecun/mnist on the Hugging Face Hub)",
    "dataset_id": "ylecun/mnist",
    "train_images": 4500,
    "epochs": 3,
    "steps": 211,
    "batch_size": 64,
    "optimizer": "adam (lr 0.001)",
    "mixed_precision": "no",
    "hardware": "1 x cpu",
    "training_seconds": 83.2,
    "init_from": None,
    "metrics": {"loss": 123.456, "kl": 5.25},
}



def _snippet(readme: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    assert len(blocks) == 1, blocks
    return blocks[0]


def test_metadata_config_and_training_summary(tmp_path):
    vae = tiny_model("vae")
    vae.save_pretrained(tmp_path / "vae", training_summary={**SUMMARY, "license": "mit"})

    card = ModelCard.load(tmp_path / "vae" / "README.md")
    data = card.data
    assert data.library_name == "vaegan"
    assert data.pipeline_tag == "unconditional-image-generation"
    assert data.license == "mit"  # overridden through the training summary
    assert data.datasets == ["ylecun/mnist"]
    assert set(data.tags) >= {"vaegan", "vae", "convolutional", "unconditional-image-generation", "mnist"}
    text = card.text
    for key in vae.config:  # the configuration table
        if not key.startswith("_"):
            assert f"| `{key}` |" in text
    assert "| `block_out_channels` | `[4, 8, 8, 8]` |" in text
    assert "## Training" in text
    for row in ("| Epochs | 3 |", "| Optimisation steps | 211 |", "| Batch size | 64 |",
                "| Optimizer | adam (lr 0.001) |", "| Hardware | 1 x cpu |", "| Training time | 1 min 23 s |",
                "| Dataset on the Hub | [ylecun/mnist](https://huggingface.co/datasets/ylecun/mnist) |",
                "| `loss` | 123.456 |", "| `kl` | 5.25 |"):
        assert row in text
    assert "Initialised from" not in text  # None values are left out
    assert "![samples](samples.png)" in text


def test_defaults_without_summary_and_family_tags(tmp_path):
    gan = tiny_model("gan", loss="wgan_gp")
    gan.save_pretrained(tmp_path / "gan")
    card = ModelCard.load(tmp_path / "gan" / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.datasets is None
    assert card.data.tags == ["vaegan", "gan", "dcgan", "wgan-gp", "unconditional-image-generation"]
    assert "## Training" not in card.text

    ae = tiny_model("ae-mlp")
    ae.save_pretrained(tmp_path / "ae", training_summary={"dataset": "mnist-5k", "steps": 5})
    card = ModelCard.load(tmp_path / "ae" / "README.md")
    assert card.data.tags[:3] == ["vaegan", "autoencoder", "mlp"]
    assert "mnist" in card.data.tags
    assert card.data.datasets == ["ylecun/mnist"]  # derived from the data source string
    assert "| Dataset | mnist-5k |" in card.text


@pytest.mark.parametrize("source, tag", [
    ("ylecun/mnist", "mnist"), ("mnist-5k", "mnist"), ("hf:zalando-datasets/fashion_mnist", "fashion-mnist"),
    ("uoft-cs/cifar10", "cifar10"), ("torchvision:CIFAR100", "cifar100"), ("imagefolder:/data/cats", None),
    ("someone/my-images", None), (None, None),
])
def test_dataset_tag(source, tag):
    assert dataset_tag(source) == tag


def test_sample_grid_is_a_seeded_png_of_the_right_size(tmp_path):
    vae = tiny_model("vae")
    vae.save_pretrained(tmp_path / "vae")
    path = tmp_path / "vae" / "samples.png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L"
        assert image.size == (4 * (28 + 2) + 2, 4 * (28 + 2) + 2)  # 16 samples, 4 per row, 2-pixel padding
        pixels = np.asarray(image)
    expected = make_grid(vae.sample(16, generator=torch.Generator().manual_seed(0)), nrow=4)
    np.testing.assert_array_equal(pixels, np.asarray(expected))  # fixed seed: reproducible

    rgb = tiny_model("vae", image_size=16, in_channels=3)
    rgb.save_pretrained(tmp_path / "rgb")
    with Image.open(tmp_path / "rgb" / "samples.png") as image:
        assert (image.mode, image.size) == ("RGB", (4 * 18 + 2, 4 * 18 + 2))


def test_autoencoder_without_prior_has_no_samples_and_says_why(tmp_path):
    ae = tiny_model("ae")
    ae.save_pretrained(tmp_path / "ae")
    text = (tmp_path / "ae" / "README.md").read_text()
    assert not (tmp_path / "ae" / "samples.png").exists()
    assert "![samples]" not in text
    # The card says why in the model's own words (one text: AE.unfitted_prior_message).
    assert f"No samples are shown. {ae.cannot_sample_reason()}" in text
    assert "no latent prior yet" in text and "cannot generate samples" in text and "fit_prior(latents)" in text
    assert "model.reconstruct(images)" in _snippet(tmp_path / "ae" / "README.md")

    ae.fit_prior(torch.randn(50, ae.latent_dim))  # now it can sample: a grid appears ...
    ae.save_pretrained(tmp_path / "ae")
    assert (tmp_path / "ae" / "samples.png").is_file()
    assert "![samples](samples.png)" in (tmp_path / "ae" / "README.md").read_text()
    tiny_model("ae").save_pretrained(tmp_path / "ae")  # ... and a later save without a prior removes it
    assert not (tmp_path / "ae" / "samples.png").exists()


def test_usage_snippets_run_as_written(tmp_path):
    """The README snippets of a VAE, a GAN and AEs without prior, executed verbatim in a fresh interpreter."""
    folders = {}
    for name, model in (("vae", tiny_model("vae")), ("gan", tiny_model("gan")),
                        ("ae", tiny_model("ae")), ("cae", tiny_model("ae", num_classes=3))):
        model.save_pretrained(tmp_path / name)
        folders[name] = tmp_path / name
    readmes = {name: (folder / "README.md").read_text() for name, folder in folders.items()}
    assert not any(str(tmp_path) in text or str(tmp_path.resolve()) in text for text in readmes.values())
    snippets = {name: _snippet(folder / "README.md") for name, folder in folders.items()}
    assert 'VAE.from_pretrained("your-username/vae")' in snippets["vae"]
    assert '# Not on the Hub yet: replace "your-username/vae" with the repo id' in snippets["vae"]
    # What the note asks a user to do: put the folder's path in place of the placeholder id.
    snippets = {name: text.replace(f'"your-username/{name}"', repr(folders[name].as_posix()))
                for name, text in snippets.items()}
    assert "model.sample(16" in snippets["gan"] and "model.sample" not in snippets["ae"]

    checks = "\nassert images.shape == (16, {c}, 28, 28), images.shape\n"
    script = "\n".join([
        snippets["vae"] + checks.format(c=1) + "import os; assert os.path.getsize('my_samples.png') > 0",
        snippets["gan"] + checks.format(c=1),
        snippets["ae"] + "\nassert reconstructions.shape == (4, 1, 28, 28) and latents.shape == (4, 3)",
        snippets["cae"] + "\nassert reconstructions.shape == (4, 1, 28, 28) and latents.shape == (4, 3)",
        "print('snippets ok')",
    ])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = subprocess.run([sys.executable, "-c", script], cwd=run_dir, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "snippets ok" in result.stdout
    assert (run_dir / "my_samples.png").is_file()


def test_card_uses_the_repo_id_when_known(tmp_path):
    vae = tiny_model("vae")
    vae.save_pretrained(tmp_path / "a", repo_id="org/mnist-vae")
    assert 'VAE.from_pretrained("org/mnist-vae")' in _snippet(tmp_path / "a" / "README.md")
    assert ModelCard.load(tmp_path / "a" / "README.md").text.startswith("\n# mnist-vae")
    vae.save_pretrained(tmp_path / "b", training_summary={"repo_id": "org/from-trainer", "steps": 1})
    assert 'VAE.from_pretrained("org/from-trainer")' in _snippet(tmp_path / "b" / "README.md")
    vae.save_pretrained(tmp_path / "c", model_card=False)
    assert sorted(os.listdir(tmp_path / "c")) == ["config.json", "diffusion_pytorch_model.safetensors"]


# ---------------------------------------------------------------------------------------------------- any family
def test_card_of_a_latent_free_family_with_an_exact_likelihood(tmp_path):
    """No latent sentence, row or call for a family without a latent space; its likelihood in the snippet; nll / bpd
    of an evaluation in model-index; the class-conditional snippet runs as written."""
    model = bernoulli_family.make(num_classes=3, class_names=["zero", "one", "two"])
    evaluation = {"data": "mnist-5k", "seed": 0, "heldout_images": 20, "metrics": {"nll": 321.5, "bpd": 0.59}}
    with bernoulli_family.registered():
        model.save_pretrained(tmp_path / "m", training_summary={"evaluation": evaluation})
        text = (tmp_path / "m" / "README.md").read_text()
        snippet = _snippet(tmp_path / "m" / "README.md")
        card = ModelCard.load(tmp_path / "m" / "README.md")
    assert "Images are 1 x 28 x 28." in text and "latent" not in text.lower() and "None" not in text
    assert "pass `class_labels` (indices or class names) to `sample`, `log_likelihood` and the pipelines" in text
    assert "| Capabilities (besides sampling) | `log_likelihood` |" in text
    assert "prior_latents" not in snippet and "generate_all_classes" not in snippet
    assert 'model.log_likelihood(images, class_labels="two")' in snippet
    results = {r.metric_type: (r.metric_value, r.dataset_split) for r in card.data.eval_results}
    assert results == {"nll": (321.5, "test"), "bpd": (0.59, "test")}

    folder = (tmp_path / "m").as_posix()
    script = "\n".join([
        "import sys", f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "import bernoulli_family, vaegan", "vaegan.register_model(bernoulli_family.PixelBernoulli)",
        snippet.replace('"your-username/m"', repr(folder)),
        "assert images.shape == (8, 1, 28, 28) and log_p.shape == (8,) and (log_p < 0).all()",
        "print('snippet ok')",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "snippet ok" in result.stdout


def test_card_lists_capabilities_and_keeps_the_latent_space_of_latent_families(tmp_path):
    ae = tiny_model("ae", latent_dim=2, num_classes=2)
    ae.save_pretrained(tmp_path / "ae")
    text = (tmp_path / "ae" / "README.md").read_text()
    assert "the latent space has 2 dimensions" in text and "| Latent dimension | 2 |" in text
    assert "| Capabilities (besides sampling) | `encoder`, `latent_space`, `reconstruction` |" in text
    assert "to `sample`, `interpolate`, `reconstruct` and the pipelines" in text
    snippet = _snippet(tmp_path / "ae" / "README.md")  # cannot sample: a class-conditional reconstruction
    assert "model.reconstruct(images, class_labels=labels)" in snippet and "# (4, 2)" in snippet
    vae = tiny_model("vae", num_classes=2)
    vae.save_pretrained(tmp_path / "vae")
    assert "generate_all_classes" in _snippet(tmp_path / "vae" / "README.md")
    assert "`likelihood_bounds`" in (tmp_path / "vae" / "README.md").read_text()


# ---------------------------------------------------------------------------------------------------- vaegan.images
def test_make_grid_layout_and_values():
    images = torch.zeros(5, 3, 4, 6)
    images[2] = 1.0  # third image white: row 0, column 2 with nrow=3
    grid = make_grid(images, nrow=3, padding=1)
    assert (grid.mode, grid.size) == ("RGB", (3 * 7 + 1, 2 * 5 + 1))
    pixels = np.asarray(grid)
    assert (pixels[1:5, 15:21] == 255).all() and pixels[1:5, 1:7].max() == 0
    assert pixels[0].max() == 0  # padding
    assert make_grid(torch.rand(9, 1, 8, 8)).size == (3 * 10 + 2, 3 * 10 + 2)  # square by default
    assert make_grid(torch.rand(2, 1, 8, 8), nrow=4).size == (2 * 10 + 2, 10 + 2)  # never wider than needed
    assert make_grid(torch.rand(4, 1, 8, 8), nrow=2, scale=3).size == (3 * 22, 3 * 22)
    assert make_grid([torch.rand(1, 8, 8), torch.rand(1, 8, 8)], nrow=2).mode == "L"
    with pytest.raises(ValueError, match="channels"):
        make_grid(torch.rand(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_grid(torch.rand(8, 8))


def test_save_gif(tmp_path):
    path = save_gif(torch.rand(4, 1, 8, 8), tmp_path / "a.gif", scale=2)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (16, 16)
        assert gif.n_frames == 4 + 2  # forward, then back without repeating the ends
    frames = [Image.new("RGB", (5, 5), (i * 40, 0, 0)) for i in range(3)]
    with Image.open(save_gif(frames, tmp_path / "b.gif", bounce=False)) as gif:
        assert gif.n_frames == 3 and gif.size == (5, 5)


# ------------------------------------------------------------------ install line and project link (issue 23, item 10)
def _fake_install(tmp_path: Path, monkeypatch, direct_url: dict | None, urls: tuple[str, ...] = ()):
    """vaegan's installed metadata as a real dist-info folder: ``Project-URL`` entries and PEP 610's
    ``direct_url.json`` (absent: installed from a package index)."""
    import importlib.metadata

    import vaegan.project

    info = tmp_path / "site" / "vaegan-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: vaegan\nVersion: 0.1.0\n"
                                   + "".join(f"Project-URL: {url}\n" for url in urls))
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    monkeypatch.setattr(vaegan.project, "_installed", lambda: importlib.metadata.PathDistribution(info))


def _card_text(tmp_path: Path) -> str:
    folder = tmp_path / f"vae-{len(list(tmp_path.iterdir()))}"
    tiny_model("vae").save_pretrained(folder)
    return (folder / "README.md").read_text()


def test_card_names_no_repository_and_no_index_that_do_not_exist(tmp_path):
    """With this checkout's real metadata: no invented project URL, and `pip install vaegan` only from an index."""
    import importlib.metadata

    text = _card_text(tmp_path)
    assert "github.com/vaegan/vaegan" not in text and "](http" not in text.split("## Usage")[0]
    try:
        from_index = importlib.metadata.distribution("vaegan").read_text("direct_url.json") is None
    except importlib.metadata.PackageNotFoundError:
        from_index = False
    assert ("`pip install vaegan`" in text) == from_index


@pytest.mark.parametrize("direct_url, urls, line", [
    (None, ("Homepage, https://vaegan.example.org",), "Install vaegan (`pip install vaegan`), then:"),
    ({"url": "https://git.example.org/me/vaegan.git", "vcs_info": {"vcs": "git", "commit_id": "0a1b2c"}}, (),
     "Install vaegan (`pip install git+https://git.example.org/me/vaegan.git@0a1b2c`), then:"),
    ({"url": "https://files.example.org/vaegan-0.1.0-py3-none-any.whl", "archive_info": {}}, (),
     "Install vaegan (`pip install https://files.example.org/vaegan-0.1.0-py3-none-any.whl`), then:"),
])
def test_install_line_says_where_this_vaegan_came_from(tmp_path, monkeypatch, direct_url, urls, line):
    _fake_install(tmp_path, monkeypatch, direct_url, urls)
    text = _card_text(tmp_path)
    assert line in text
    if urls:
        assert "made with [vaegan](https://vaegan.example.org)" in text
    else:
        assert "made with vaegan" in text and "[vaegan](" not in text


@pytest.mark.parametrize("direct_url", [
    {"url": "file:///home/alice/src/vaegan", "dir_info": {"editable": True}},
    {"url": "file:///home/alice/dist/vaegan-0.1.0-py3-none-any.whl", "archive_info": {}},
])
@pytest.mark.parametrize("urls", [(), ("Source, https://code.example.org/vaegan",)])
def test_install_line_from_a_local_source_says_so_truthfully(tmp_path, monkeypatch, direct_url, urls):
    _fake_install(tmp_path, monkeypatch, direct_url, urls)
    text = _card_text(tmp_path)
    assert "`pip install vaegan`" not in text and "/home/alice" not in text
    assert "vaegan 0.1.0 installed from a local copy of its source, not from a package index" in text
    assert ("https://code.example.org/vaegan" in text) == bool(urls)


def test_install_line_when_vaegan_runs_without_being_installed(tmp_path, monkeypatch):
    import vaegan.project

    monkeypatch.setattr(vaegan.project, "_installed", lambda: None)
    text = _card_text(tmp_path)
    assert "`pip install vaegan`" not in text and "not from a package index" in text
