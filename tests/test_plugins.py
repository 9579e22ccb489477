"""Third-party model families through the "vaegan.models" entry-point group.

The plugin package in tests/plugin_pkg/ is built and installed by pip (offline, no build isolation) into a private
``--target`` folder, so its real ``.dist-info/entry_points.txt`` is found by ``importlib.metadata`` once the folder is
on ``sys.path`` (in this process) or ``PYTHONPATH`` (in a fresh one). The shared virtual environment is never
modified, so other test runs never see the plugin.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image

import vaegan
from vaegan import VAE, AutoModel, ConfigError, GenerativePipeline, PluginError
from vaegan.models.auto import get_model_class

PLUGIN_SOURCE = Path(__file__).parent / "plugin_pkg"
PLUGIN_MODULE = "vaegan_tiny_plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """``pip install`` the plugin package into a private folder (a real wheel build, real dist-info)."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "source"  # a copy: the build writes build/ and *.egg-info next to the sources
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [dist_info] = site.glob("vaegan_tiny_plugin-0.1.0.dist-info")
    assert "TinyAE = vaegan_tiny_plugin:TinyAE" in (dist_info / "entry_points.txt").read_text()
    return site


def _forget(*modules: str) -> None:
    for name in modules:
        sys.modules.pop(name, None)


@pytest.fixture
def on_path():
    """Put folders on sys.path for one test; afterwards remove them and rediscover the plugins."""
    added: list[str] = []

    def add(folder: Path) -> list[str]:
        sys.path.insert(0, str(folder))
        added.append(str(folder))
        return vaegan.reload_plugins()

    yield add
    for folder in added:
        sys.path.remove(folder)
    _forget(PLUGIN_MODULE, "vaegan_broken_plugin", "vaegan_fake_plugin")
    vaegan.reload_plugins()


def fake_distribution(folder: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """An installed distribution as pip leaves it: ``<name>.dist-info`` (METADATA, entry_points.txt) and modules."""
    dist_info = folder / f"{name}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[vaegan.models]\n{lines}")
    for module, code in modules.items():
        (folder / f"{module}.py").write_text(textwrap.dedent(code))
    return folder


def test_installed_plugin_is_discovered_saved_and_loaded(plugin_site, on_path, tmp_path):
    assert "TinyAE" not in vaegan.available_models()  # not installed in the environment itself
    names = on_path(plugin_site)
    assert "TinyAE" in names and {"AE", "GAN", "VAE"} <= set(names)
    tiny_cls = get_model_class("TinyAE")
    assert tiny_cls.__module__ == PLUGIN_MODULE and Path(sys.modules[PLUGIN_MODULE].__file__).is_relative_to(
        plugin_site)
    assert vaegan.TinyAE is tiny_cls  # resolvable by name, as diffusers' model_index.json loader needs

    torch.manual_seed(0)
    tiny = tiny_cls(image_size=8, latent_dim=3)
    tiny.save_pretrained(tmp_path / "tiny")
    loaded = AutoModel.from_pretrained(tmp_path / "tiny")
    assert type(loaded) is tiny_cls
    assert torch.equal(loaded.sample(4, generator=torch.Generator().manual_seed(0)),
                       tiny.sample(4, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match="holds a TinyAE model, not a VAE"):
        VAE.from_pretrained(tmp_path / "tiny")
    assert "tinyae" in (tmp_path / "tiny" / "README.md").read_text()  # the card's family tag

    pipe = GenerativePipeline(tiny)  # plugin families work in diffusers pipelines too
    assert pipe.config["model"] == ("vaegan", "TinyAE")
    pipe.save_pretrained(tmp_path / "pipe")
    reloaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert type(reloaded.model) is tiny_cls
    assert torch.equal(reloaded(batch_size=2, generator=torch.Generator().manual_seed(1), output_type="pt").images,
                       tiny.sample(2, generator=torch.Generator().manual_seed(1)))


def test_reload_forgets_a_removed_plugin(plugin_site, on_path):
    assert "TinyAE" in on_path(plugin_site)
    sys.path.remove(str(plugin_site))
    try:
        assert "TinyAE" not in vaegan.reload_plugins()
        with pytest.raises(ConfigError, match="Unknown vaegan model class 'TinyAE'.*'vaegan.models' entry-point"):
            get_model_class("TinyAE")
        with pytest.raises(AttributeError):
            vaegan.TinyAE  # noqa: B018
    finally:
        sys.path.insert(0, str(plugin_site))


def test_broken_plugins_are_reported_not_fatal(on_path, tmp_path):
    folder = fake_distribution(
        tmp_path / "site", "vaegan-broken-plugin",
        {"BrokenNet": "vaegan_broken_plugin:BrokenNet", "NotAModel": "vaegan_fake_plugin:helper",
         "VAE": "vaegan_fake_plugin:VAE"},
        {"vaegan_broken_plugin": "import a_dependency_that_is_not_installed\n",
         "vaegan_fake_plugin": """
             from vaegan import VAE as _Base

             def helper():
                 pass

             class VAE(_Base):  # tries to take over the built-in name
                 pass
         """},
    )
    with pytest.warns(RuntimeWarning) as record:
        names = on_path(folder)
    messages = [str(w.message) for w in record]
    assert any("entry point 'BrokenNet = vaegan_broken_plugin:BrokenNet' of package vaegan-broken-plugin 0.1"
               in m and "a_dependency_that_is_not_installed" in m for m in messages), messages
    assert any("'NotAModel = vaegan_fake_plugin:helper'" in m and "not a vaegan GenerativeModel" in m
               for m in messages), messages
    assert any("'VAE = vaegan_fake_plugin:VAE'" in m and "already taken" in m for m in messages), messages
    assert "BrokenNet" not in names and "NotAModel" not in names
    assert vaegan.VAE is get_model_class("VAE") and vaegan.VAE.__module__ == "vaegan.models.vae"

    with pytest.raises(PluginError, match="BrokenNet = vaegan_broken_plugin:BrokenNet.*ModuleNotFoundError") as info:
        get_model_class("BrokenNet")
    assert isinstance(info.value, ImportError) and isinstance(info.value.__cause__, ModuleNotFoundError)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"_class_name": "BrokenNet"}')
    with pytest.raises(PluginError, match="could not be loaded"):
        AutoModel.from_pretrained(tmp_path / "model")
    with pytest.raises(ConfigError, match="Plugins that failed to load: .*BrokenNet"):
        get_model_class("SomethingElse")


def test_fresh_process_discovers_the_installed_plugin(plugin_site, on_path, tmp_path):
    """A new interpreter with the plugin (and a broken one) on PYTHONPATH: real entry-point discovery, AutoModel
    loading, and the plugin model's card snippet running as written."""
    on_path(plugin_site)
    torch.manual_seed(0)
    tiny = get_model_class("TinyAE")(image_size=8, latent_dim=3)
    tiny.save_pretrained(tmp_path / "tiny")
    expected = tiny.sample(3, generator=torch.Generator().manual_seed(0))
    torch.save(expected, tmp_path / "expected.pt")
    [snippet] = re.findall(r"```python\n(.*?)```", (tmp_path / "tiny" / "README.md").read_text(), flags=re.S)
    assert "from vaegan import AutoModel" in snippet and "a vaegan plugin" in snippet
    snippet = snippet.replace('"your-username/tiny"', repr((tmp_path / "tiny").as_posix()))  # as the note says

    broken = fake_distribution(tmp_path / "broken", "vaegan-broken-plugin", {"BrokenNet": "vaegan_broken_plugin:X"},
                               {"vaegan_broken_plugin": "raise RuntimeError('boom')\n"})
    script = "\n".join([
        "import sys, warnings, torch",
        "import vaegan",
        f"assert {PLUGIN_MODULE!r} not in sys.modules  # discovery is lazy",
        "with warnings.catch_warnings(record=True) as caught:",
        "    warnings.simplefilter('always')",
        "    names = vaegan.available_models()",
        "assert 'TinyAE' in names and 'BrokenNet' not in names, names",
        "assert any('BrokenNet' in str(w.message) and 'boom' in str(w.message) for w in caught)",
        f"model = vaegan.AutoModel.from_pretrained({str(tmp_path / 'tiny')!r})",
        "assert type(model).__name__ == 'TinyAE' and type(model).__module__ == 'vaegan_tiny_plugin'",
        f"expected = torch.load({str(tmp_path / 'expected.pt')!r})",
        "assert torch.equal(model.sample(3, generator=torch.Generator().manual_seed(0)), expected)",
        snippet,
        "print('plugin ok')",
    ])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(broken)]), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plugin ok" in result.stdout


def test_trainer_and_cli_work_with_a_plugin_family(plugin_site, tmp_path):
    """`vaegan train` trains the plugin's TinyAE from a YAML config, then `vaegan sample` draws from it."""
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"class": "TinyAE", "image_size": 8, "latent_dim": 2},
        "data": {"source": "mnist-5k", "limit": 128},
        "train": {"output_dir": str(tmp_path / "out"), "epochs": 2, "batch_size": 32, "log_every": 1,
                  "learning_rate": 0.01, "num_preview_images": 4},
    }))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "vaegan.cli"]
    trained = subprocess.run([*command, "train", str(config)], env=env, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]
    assert json.loads((tmp_path / "out" / "model" / "config.json").read_text())["_class_name"] == "TinyAE"
    sampled = subprocess.run([*command, "sample", str(tmp_path / "out" / "model"), "-n", "4", "-o",
                              str(tmp_path / "grid.png")], env=env, capture_output=True, text=True, timeout=300)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert (tmp_path / "grid.png").is_file()


# ------------------------------------------------------------------------------------------- issue 22: "done when"
def _plugin_env(plugin_site: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


def _vaegan(step: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "vaegan.cli", *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{step}: `vaegan {' '.join(args)}` failed:\n{result.stderr[-4000:]}"
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_and_sample(model_dir: Path, env: dict[str, str], tmp_path: Path) -> None:
    """`vaegan demo pixels=MODEL` in a fresh process; its Sample tab's API answers with the same grid per seed."""
    import time

    from gradio_client import Client

    from vaegan.demo.outputs import open_picture

    port = _free_port()
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen([sys.executable, "-m", "vaegan.cli", "demo", f"pixels={model_dir}", "--heldout", "none",
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        client, deadline = None, time.monotonic() + 240
        while client is None:
            assert demo.poll() is None, f"vaegan demo exited ({demo.returncode}):\n" + \
                (tmp_path / "demo.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "vaegan demo did not answer within 240 s:\n" + \
                (tmp_path / "demo.log").read_text()[-4000:]
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(1)
        first = client.predict("pixels", 16, 7, 1.0, api_name="/sample")
        again = client.predict("pixels", 16, 7, 1.0, api_name="/sample")
        with open_picture(first) as a, open_picture(again) as b:
            assert a.size[0] > 4 * 28 and a.size == b.size and a.tobytes() == b.tobytes()
    finally:
        demo.terminate()
        demo.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_latent_free_plugin_family_works_everywhere(plugin_site, tmp_path):
    """Issue 22, done when: a third-party family with only compute_loss, sample and log_likelihood (no latent_dim, no
    encoder), installed as a real package through the entry point, trains with `vaegan train`, samples with `vaegan
    sample`, evaluates with `vaegan evaluate` (generation metrics and exact nll), loads through AutoModel, runs in
    GenerativePipeline, gets a model card and serves its Sample tab in `vaegan demo`, with no vaegan edits."""
    import yaml

    env, out = _plugin_env(plugin_site), tmp_path / "out"
    config = tmp_path / "pixels.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"class": "PixelBernoulli", "image_size": 28},
        "data": {"source": "mnist-5k", "limit": 512},
        "train": {"output_dir": str(out), "epochs": 2, "batch_size": 64, "log_every": 1, "learning_rate": 0.05,
                  "num_preview_images": 4, "eval_metrics": ["nll", "fd_mnist"], "eval_num_samples": 200},
    }))
    model_dir = out / "model"

    # 1. vaegan train
    _vaegan("train", ["train", str(config)], env, tmp_path)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert losses[-1] < losses[0] - 50, losses  # independent pixels learn MNIST's mean digit in a few steps
    assert json.loads((model_dir / "config.json").read_text())["_class_name"] == "PixelBernoulli"
    summary = json.loads((model_dir / "training_summary.json").read_text())
    assert math.isfinite(summary["evaluation"]["metrics"]["nll"]), summary

    # 2. vaegan sample
    _vaegan("sample", ["sample", str(model_dir), "-n", "16", "--seed", "3", "-o", str(tmp_path / "grid.png")], env,
            tmp_path)
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] > 4 * 28

    # 3. vaegan evaluate: generation metrics and the exact nll (nats per image) of the first 100 held-out digits
    _vaegan("evaluate", ["evaluate", str(model_dir), "--metrics", "fd_mnist,recall,nll,bpd", "-n", "200",
                         "--num-heldout", "100", "-o", str(tmp_path / "eval.json")], env, tmp_path)
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert set(metrics) == {"fd_mnist", "recall", "nll", "bpd"} and all(map(math.isfinite, metrics.values()))

    # 4. AutoModel, GenerativePipeline (saved and reloaded by diffusers) and the card's own snippet, in a fresh process
    card = (model_dir / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    snippet = re.sub(r'"your-username/[^"]*"', repr(model_dir.as_posix()), snippet)  # as the card's note says
    script = textwrap.dedent(f"""
        import json, torch
        from diffusers import DiffusionPipeline
        from vaegan import AutoModel, GenerativePipeline
        from vaegan.data import load_image_dataset

        model = AutoModel.from_pretrained({str(model_dir)!r})
        assert (type(model).__name__, type(model).__module__) == ("PixelBernoulli", "vaegan_tiny_plugin")
        assert model.latent_dim is None and not model.has_latent_space and not model.has_encoder
        pipe = GenerativePipeline(model)
        images = pipe(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt").images
        assert torch.equal(images, model.sample(4, generator=torch.Generator().manual_seed(0)))
        pipe.save_pretrained("pipe")
        again = DiffusionPipeline.from_pretrained("pipe")
        assert torch.equal(again(batch_size=4, generator=torch.Generator().manual_seed(0), output_type="pt").images,
                           images)
        heldout = torch.stack([image for image, _ in load_image_dataset("mnist-5k", image_size=28, channels=1,
                                                                        split="test", limit=100)])
        with torch.no_grad():
            nll = float(-model.log_likelihood(heldout).mean())
    """) + snippet + "\nprint(json.dumps({'nll': nll}))\n"
    checked = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, f"AutoModel / GenerativePipeline / card snippet:\n{checked.stderr[-4000:]}"
    exact = json.loads(checked.stdout.strip().splitlines()[-1])["nll"]
    assert metrics["nll"] == pytest.approx(exact, rel=1e-5), (metrics, exact)
    assert metrics["bpd"] == pytest.approx(exact / (math.log(2) * 28 * 28), rel=1e-5)

    # 5. the model card: the class, its family, and no latent space it does not have
    assert "PixelBernoulli" in card and "pixelbernoulli" in card
    assert "Latent dimension" not in card and "None dimensions" not in card, card
    assert "nll" in card  # the training run's evaluation

    # 6. vaegan demo: the Sample tab
    _serve_and_sample(model_dir, env, tmp_path)


@pytest.mark.slow
def test_plugin_authors_run_the_contract_suite(plugin_site, tmp_path):
    """What the README tells a plugin author: `vaegan.testing` run with pytest against the installed family."""
    (tmp_path / "test_pixels.py").write_text(textwrap.dedent("""
        from vaegan.testing import GenerativeModelContract
        from vaegan_tiny_plugin import PixelBernoulli


        class TestPixelBernoulli(GenerativeModelContract):
            model_class = PixelBernoulli
            tiny_config = {"image_size": 8}
            invalid_configs = [({"image_size": 1000}, "image_size")]
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "test_pixels.py"],
                            env=_plugin_env(plugin_site), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]
    for test in ("test_log_likelihood", "test_short_training_run", "test_pipeline_samples_what_the_model_samples"):
        assert f"::TestPixelBernoulli::{test} PASSED" in result.stdout, result.stdout[-3000:]
    assert "test_latent_space" not in result.stdout  # no latent space: its test is not collected
