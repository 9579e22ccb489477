"""diffusers pipelines around vaegan models: call convention, determinism, interpolation, save/load through
DiffusionPipeline.from_pretrained, safety (no remote code, no pickles) and push/pull over the local Hub."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bernoulli_family
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from huggingface_hub import HfApi, hf_hub_download
from model_helpers import tiny_kwargs, tiny_model
from PIL import Image

import vaegan
from vaegan import VAE, AEPipeline, CheckpointError, ConfigError, GANPipeline, GenerativePipeline, VAEPipeline

PIPELINES = {"vae": VAEPipeline, "gan": GANPipeline, "ae": AEPipeline}


def seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def make(family: str):
    model = tiny_model(family)
    if family == "ae":
        model.fit_prior(torch.randn(64, model.latent_dim) * 3 + 1)
    return model, PIPELINES[family](model)


class Evil:
    """Unpickling this writes a marker file: proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


# ---------------------------------------------------------------------------------------------------- calling
def test_lazy_exports_and_components():
    assert vaegan.VAEPipeline is VAEPipeline and "VAEPipeline" in dir(vaegan)
    import diffusers

    assert diffusers.VAEPipeline is VAEPipeline  # what DiffusionPipeline.from_pretrained looks up
    model, pipe = make("vae")
    assert pipe.vae is model and pipe.generative_model is model
    assert isinstance(pipe, DiffusionPipeline) and pipe.components == {"vae": model}
    assert pipe.config["vae"] == ("vaegan", "VAE")
    with pytest.raises(TypeError, match="VAEPipeline takes a VAE, got GAN"):
        VAEPipeline(make("gan")[0])
    with pytest.raises(AttributeError):
        vaegan.NoSuchThing  # noqa: B018


def test_output_types_shapes_and_ranges():
    _, pipe = make("vae")
    out = pipe(batch_size=3, generator=seed(0))
    assert isinstance(out, ImagePipelineOutput) and len(out.images) == 3
    assert all(isinstance(im, Image.Image) and im.size == (28, 28) and im.mode == "L" for im in out.images)
    arr = pipe(batch_size=3, generator=seed(0), output_type="np").images
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 28, 28, 1) and arr.dtype == np.float32
    assert 0 <= arr.min() and arr.max() <= 1 and arr.std() > 0
    ten = pipe(batch_size=2, generator=seed(0), output_type="pt").images
    assert isinstance(ten, torch.Tensor) and ten.shape == (2, 1, 28, 28) and 0 <= ten.min() and ten.max() <= 1
    (tup,) = pipe(batch_size=2, generator=seed(0), output_type="pt", return_dict=False)
    torch.testing.assert_close(tup, ten, rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(out.images[0]), (arr[0, :, :, 0] * 255).round().astype(np.uint8))
    assert len(pipe().images) == 1  # batch_size defaults to 1
    with pytest.raises(ValueError, match="output_type='latent' is not supported"):
        pipe(output_type="latent")


@pytest.mark.parametrize("family", ["vae", "gan", "ae"])
def test_same_generator_same_images_as_model_sample(family):
    model, pipe = make(family)
    a = pipe(batch_size=4, generator=seed(7), output_type="pt").images
    b = pipe(batch_size=4, generator=seed(7), output_type="pt").images
    assert torch.equal(a, b)
    assert torch.equal(a, model.sample(4, generator=seed(7)))
    assert not torch.equal(a, pipe(batch_size=4, generator=seed(8), output_type="pt").images)
    cold = pipe(batch_size=4, generator=seed(7), temperature=0.5, output_type="pt").images
    assert torch.equal(cold, model.sample(4, generator=seed(7), temperature=0.5)) and not torch.equal(cold, a)
    per_image = pipe(batch_size=2, generator=[seed(1), seed(2)], output_type="pt").images  # one generator each
    alone = pipe(batch_size=1, generator=seed(2), output_type="pt").images[0]
    torch.testing.assert_close(per_image[1], alone, atol=1e-6, rtol=0)  # batch size may change float rounding


def test_interpolate_between_seeds_latents_and_images():
    model, pipe = make("vae")
    frames = pipe.interpolate(0, 1, steps=5, output_type="pt").images
    assert frames.shape == (5, 1, 28, 28)
    first = pipe(batch_size=1, generator=seed(0), output_type="pt").images[0]
    last = pipe(batch_size=1, generator=seed(1), output_type="pt").images[0]
    torch.testing.assert_close(frames[0], first, atol=1e-5, rtol=0)  # a seed means the latent pipe() decodes
    torch.testing.assert_close(frames[-1], last, atol=1e-5, rtol=0)
    z0, z1 = model.prior_latents(2, generator=seed(3))
    torch.testing.assert_close(pipe.interpolate(z0, z1, steps=4, mode="lerp", output_type="pt").images,
                               model.interpolate(z0, z1, steps=4, mode="lerp"))
    pil = pipe.interpolate(first, last, steps=3).images  # images are encoded first
    assert len(pil) == 3 and pil[0].size == (28, 28)
    from_pil = pipe.interpolate(pil[0], pil[-1], steps=3, output_type="np").images
    assert from_pil.shape == (3, 28, 28, 1)
    (arr,) = pipe.interpolate(0, 1, steps=2, output_type="np", return_dict=False)
    assert arr.shape == (2, 28, 28, 1)
    with pytest.raises(ConfigError, match="mode='cubic'"):
        pipe.interpolate(0, 1, mode="cubic")


def test_gan_interpolates_seeds_not_images_and_ae_needs_a_prior():
    _, gan_pipe = make("gan")
    assert gan_pipe.interpolate(0, 1, steps=3, output_type="pt").images.shape == (3, 1, 28, 28)
    with pytest.raises(NotImplementedError, match="no encoder"):
        gan_pipe.interpolate(torch.rand(1, 28, 28), torch.rand(1, 28, 28))

    torch.manual_seed(0)
    ae_pipe = AEPipeline(tiny_model("ae"))
    with pytest.raises(RuntimeError, match="fit_prior"):
        ae_pipe(batch_size=2)
    frames = ae_pipe.interpolate(torch.rand(1, 28, 28), torch.rand(1, 28, 28), steps=3, output_type="pt").images
    assert frames.shape == (3, 1, 28, 28)


# ---------------------------------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("family", ["vae", "gan", "ae"])
def test_save_then_diffusion_pipeline_from_pretrained(tmp_path, family):
    model, pipe = make(family)
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index == {"_class_name": type(pipe).__name__, "_diffusers_version": index["_diffusers_version"],
                     family: ["vaegan", type(model).__name__]}
    files = {p.relative_to(tmp_path / "pipe").as_posix() for p in (tmp_path / "pipe").rglob("*")}
    assert files == {"model_index.json", "README.md", family, f"{family}/config.json", f"{family}/README.md",
                     f"{family}/diffusion_pytorch_model.safetensors", f"{family}/samples.png"}
    assert f"![samples]({family}/samples.png)" in (tmp_path / "pipe" / "README.md").read_text()
    assert f'subfolder="{family}"' in (tmp_path / "pipe" / family / "README.md").read_text()

    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert type(loaded) is type(pipe) and type(getattr(loaded, family)) is type(model)
    expected = pipe(batch_size=3, generator=seed(0), output_type="pt").images
    assert torch.equal(loaded(batch_size=3, generator=seed(0), output_type="pt").images, expected)
    for name, tensor in model.state_dict().items():
        assert torch.equal(getattr(loaded, family).state_dict()[name], tensor), name

    again = GenerativePipeline.from_pretrained(tmp_path / "pipe")  # dispatches on model_index.json
    assert type(again) is type(pipe)
    again.save_pretrained(tmp_path / "again")  # a loaded pipeline saves the same index, without its origin
    assert json.loads((tmp_path / "again" / "model_index.json").read_text()) == index


def test_wrong_pipeline_class_and_plain_model_folder_are_refused(tmp_path):
    model, pipe = make("gan")
    pipe.save_pretrained(tmp_path / "gan")
    with pytest.raises(ConfigError, match="'GANPipeline' pipeline, not a VAEPipeline.*GANPipeline.from_pretrained"):
        VAEPipeline.from_pretrained(tmp_path / "gan")
    model.save_pretrained(tmp_path / "model")  # a model folder is not a pipeline folder
    with pytest.raises(OSError, match="model_index.json"):
        GANPipeline.from_pretrained(tmp_path / "model")


def test_generic_pipeline_and_user_subclass(tmp_path):
    class SharpVAE(VAE):
        pass

    torch.manual_seed(0)
    model = SharpVAE(**tiny_kwargs("vae"))
    pipe = GenerativePipeline(model)
    assert pipe.config["model"] == ("vaegan", "SharpVAE")  # registered so diffusers finds vaegan.SharpVAE
    try:
        pipe.save_pretrained(tmp_path / "p")
        loaded = DiffusionPipeline.from_pretrained(tmp_path / "p")
        assert type(loaded) is GenerativePipeline and type(loaded.model) is SharpVAE
        assert torch.equal(loaded(batch_size=2, generator=seed(0), output_type="pt").images,
                           pipe(batch_size=2, generator=seed(0), output_type="pt").images)
        pipe.model = make("vae")[0]  # replacing the component keeps a loadable index entry
        assert pipe.config["model"] == ("vaegan", "VAE")
    finally:
        from vaegan.models import registry

        registry._REGISTRY.pop("SharpVAE", None)

    impostor = type("VAE", (VAE,), {})  # the name of a registered class: a saved pipeline could not find it
    with pytest.warns(UserWarning, match="is not the model class vaegan knows as 'VAE'"):
        GenerativePipeline(impostor(**tiny_kwargs("vae")))
    assert vaegan.models.auto.get_model_class("VAE") is vaegan.VAE


# ---------------------------------------------------------------------------------------------------- safety
def test_remote_code_and_pickles_are_refused(tmp_path):
    _, pipe = make("vae")
    pipe.save_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="never runs code"):
        VAEPipeline.from_pretrained(tmp_path / "p", trust_remote_code=True)
    with pytest.raises(ValueError, match="custom_pipeline"):
        VAEPipeline.from_pretrained(tmp_path / "p", custom_pipeline="pipeline")
    with pytest.raises(CheckpointError, match="safetensors"):
        VAEPipeline.from_pretrained(tmp_path / "p", use_safetensors=False)
    with pytest.raises(CheckpointError, match="safetensors only"):
        pipe.save_pretrained(tmp_path / "q", safe_serialization=False)

    # Code shipped next to a component (diffusers' custom-component hook) is never imported: the model class
    # comes from the installed vaegan.
    marker = tmp_path / "ran.txt"
    (tmp_path / "p" / "vae" / "vaegan.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for load in (DiffusionPipeline.from_pretrained, VAEPipeline.from_pretrained):
        assert type(load(tmp_path / "p").vae) is VAE
    assert type(DiffusionPipeline.from_pretrained(tmp_path / "p", trust_remote_code=True).vae) is VAE
    assert not marker.exists()
    (tmp_path / "p" / "vae" / "vaegan.py").unlink()

    # So is a custom pipeline named by model_index.json.
    shutil.copytree(tmp_path / "p", tmp_path / "custom")
    index = json.loads((tmp_path / "custom" / "model_index.json").read_text())
    index["_class_name"] = ["evil", "EvilPipeline"]
    (tmp_path / "custom" / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "custom" / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(ConfigError, match=r"\['evil', 'EvilPipeline'\] pipeline, not a VAEPipeline"):
        VAEPipeline.from_pretrained(tmp_path / "custom")
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(tmp_path / "custom")
    assert not marker.exists()

    # A pickle-only component is refused before anything is unpickled.
    weights = tmp_path / "p" / "vae" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    with open(weights.with_suffix(".bin"), "wb") as f:
        pickle.dump(Evil(marker), f)
    for load in (DiffusionPipeline.from_pretrained, VAEPipeline.from_pretrained):
        with pytest.raises(CheckpointError, match="pickle"):
            load(tmp_path / "p")
    assert not marker.exists()


def test_fresh_process_import_is_lazy_and_diffusion_pipeline_loads_after_import_vaegan(tmp_path):
    """In a new interpreter: `import vaegan` imports no pipeline code, and the pipeline card's snippet (which uses
    DiffusionPipeline.from_pretrained after `import vaegan`) runs as written."""
    _, pipe = make("vae")
    pipe.save_pretrained(tmp_path / "pipe")
    [snippet] = re.findall(r"```python\n(.*?)```", (tmp_path / "pipe" / "README.md").read_text(), flags=re.S)
    # A local card shows a placeholder id with a note; doing what the note says: the folder's path instead.
    assert '"your-username/pipe"' in snippet and str(tmp_path) not in snippet
    snippet = snippet.replace('"your-username/pipe"', repr((tmp_path / "pipe").as_posix()))
    script = "\n".join([
        "import sys",
        "import vaegan",
        "heavy = {'vaegan.pipelines', 'diffusers.pipelines.pipeline_utils', 'gradio', 'datasets', 'matplotlib'}",
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)",
        snippet,
        "assert type(pipe).__name__ == 'VAEPipeline' and len(images) == 4",
        "print('fresh ok')",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fresh ok" in result.stdout and (tmp_path / "sample.png").is_file()


# ---------------------------------------------------------------------------------------------------- over HTTP
def test_pipeline_push_and_pull_over_http(hub):
    model, pipe = make("vae")
    url = pipe.push_to_hub("org/vae-pipe")
    assert url.startswith(hub.url)
    api = HfApi()
    assert sorted(api.list_repo_files("org/vae-pipe")) == [
        ".gitattributes", "README.md", "model_index.json", "vae/README.md", "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors", "vae/samples.png"]
    assert len(api.list_repo_commits("org/vae-pipe")) == 2  # repo creation + one upload
    card = Path(hf_hub_download("org/vae-pipe", "vae/README.md")).read_text()
    assert 'VAE.from_pretrained("org/vae-pipe", subfolder="vae")' in card

    expected = pipe(batch_size=3, generator=seed(0), output_type="pt").images
    for load in (DiffusionPipeline.from_pretrained, VAEPipeline.from_pretrained):
        loaded = load("org/vae-pipe", cache_dir=hub.cache_dir / load.__qualname__)  # an empty cache each time
        assert type(loaded) is VAEPipeline
        assert torch.equal(loaded(batch_size=3, generator=seed(0), output_type="pt").images, expected)
    component = VAE.from_pretrained("org/vae-pipe", subfolder="vae")
    assert torch.equal(component.sample(3, generator=seed(0)), expected)


def test_pickle_only_pipeline_repo_is_refused_over_http(hub, tmp_path):
    marker = tmp_path / "pwned.txt"
    _, pipe = make("vae")
    pipe.save_pretrained(tmp_path / "p")
    (tmp_path / "p" / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (tmp_path / "p" / "vae" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(Evil(marker)))
    api = HfApi()
    api.create_repo("org/evil-pipe")
    api.upload_folder(repo_id="org/evil-pipe", folder_path=tmp_path / "p")
    for load in (DiffusionPipeline.from_pretrained, VAEPipeline.from_pretrained, GenerativePipeline.from_pretrained):
        with pytest.raises(CheckpointError, match="safetensors"):
            load("org/evil-pipe")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------- any family
def test_a_latent_free_family_samples_through_the_generic_pipeline_but_cannot_interpolate(tmp_path):
    model = bernoulli_family.make()
    pipe = GenerativePipeline(model)
    with bernoulli_family.registered():
        images = pipe(batch_size=4, generator=seed(3), output_type="pt").images
        assert torch.equal(images, model.sample(4, generator=seed(3)))
        with pytest.raises(NotImplementedError, match="PixelBernoulli has no latent space, so it cannot interpolate"):
            pipe.interpolate(0, 1)  # seeds as end points need a latent space too
        pipe.save_pretrained(tmp_path / "p")
        loaded = DiffusionPipeline.from_pretrained(tmp_path / "p")
        assert type(loaded) is GenerativePipeline and type(loaded.model) is bernoulli_family.PixelBernoulli
        assert torch.equal(loaded(batch_size=4, generator=seed(3), output_type="pt").images, images)
    conditional = bernoulli_family.make(num_classes=3)
    labelled = GenerativePipeline(conditional)(class_labels=[2, 0], generator=seed(1), output_type="pt").images
    assert torch.equal(labelled, conditional.sample(2, generator=seed(1), class_labels=[2, 0]))


@pytest.fixture
def plugin_pipeline():
    """``BernoulliPipeline`` registered as a plugin's pipeline for one test."""
    from vaegan import pipeline_registry

    with bernoulli_family.registered():
        yield vaegan.register_pipeline(bernoulli_family.BernoulliPipeline)
    pipeline_registry._REGISTRY.pop("BernoulliPipeline", None)
    import diffusers

    vars(diffusers).pop("BernoulliPipeline", None)


def test_a_plugin_registers_its_own_pipeline(tmp_path, plugin_pipeline):
    model = bernoulli_family.make()
    pipe = plugin_pipeline(model)
    assert pipe.bernoulli is model and pipe.config["bernoulli"] == ("vaegan", "PixelBernoulli")
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["_class_name"] == "BernoulliPipeline" and (tmp_path / "p" / "bernoulli" / "config.json").is_file()
    expected = pipe(batch_size=3, generator=seed(0), output_type="pt").images
    for load in (DiffusionPipeline.from_pretrained, GenerativePipeline.from_pretrained,
                 plugin_pipeline.from_pretrained):
        loaded = load(tmp_path / "p")
        assert type(loaded) is plugin_pipeline
        assert torch.equal(loaded(batch_size=3, generator=seed(0), output_type="pt").images, expected)
    with pytest.raises(ConfigError, match="'BernoulliPipeline' pipeline, not a VAEPipeline"):
        VAEPipeline.from_pretrained(tmp_path / "p")

    with pytest.raises(ValueError, match="the pipeline name 'VAEPipeline' is vaegan's own"):
        vaegan.register_pipeline(type("VAEPipeline", (GenerativePipeline,), {}))
    with pytest.raises(TypeError, match="not a vaegan GenerativePipeline subclass"):
        vaegan.register_pipeline(DiffusionPipeline)
    assert vaegan.pipelines.get_pipeline_class("VAEPipeline") is VAEPipeline


def test_a_pipeline_from_the_entry_point_group_loads_in_a_fresh_process(tmp_path, plugin_pipeline):
    """A folder naming a plugin's pipeline loads after a plain `import vaegan` in a process that never imported the
    plugin: the "vaegan.pipelines" (and "vaegan.models") entry points of an installed distribution name it."""
    plugin_pipeline(bernoulli_family.make()).save_pretrained(tmp_path / "p")
    site = tmp_path / "site"
    dist_info = site / "bernoulli_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: bernoulli-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[vaegan.models]\nPixelBernoulli = bernoulli_plugin:PixelBernoulli\n\n"
        "[vaegan.pipelines]\nBernoulliPipeline = bernoulli_plugin:BernoulliPipeline\n")
    (site / "bernoulli_plugin.py").write_text(Path(bernoulli_family.__file__).read_text())
    script = "\n".join([
        "import sys, torch",
        "import vaegan",
        "from diffusers import DiffusionPipeline",
        "assert 'bernoulli_plugin' not in sys.modules",
        f"pipe = DiffusionPipeline.from_pretrained({str(tmp_path / 'p')!r})",
        "assert type(pipe).__name__ == 'BernoulliPipeline' and type(pipe).__module__ == 'bernoulli_plugin'",
        f"again = vaegan.GenerativePipeline.from_pretrained({str(tmp_path / 'p')!r})",
        "assert type(again) is type(pipe)",
        "print(pipe(batch_size=2, output_type='pt').images.shape)",
    ])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.Size([2, 1, 28, 28])" in result.stdout
