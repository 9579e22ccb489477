"""A stored default sampling temperature (``sample_temperature``: a GAN that samples from a reduced-temperature
latent): ``sample`` and every consumer use it unless told otherwise, and folders saved before it sample as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from model_helpers import gen, tiny_model
from safetensors.torch import load_file

from vaegan import GAN, AutoModel, ConfigError, GANPipeline
from vaegan.cli import main
from vaegan.metrics import evaluate, read_eval_results

DATA = Path(__file__).parent / "data"
FAST = ["-n", "200", "--metrics", "fd_mnist,confident"]


def cool_gan() -> GAN:
    return tiny_model("gan", sample_temperature=0.5)


def test_sample_and_prior_latents_default_to_the_stored_temperature():
    model, plain = cool_gan(), tiny_model("gan")
    assert model.default_temperature == 0.5 and plain.default_temperature == 1.0
    cool = model.sample(4, generator=gen(0))
    assert torch.equal(cool, model.sample(4, generator=gen(0), temperature=0.5))
    assert not torch.equal(cool, model.sample(4, generator=gen(0), temperature=1.0))
    assert torch.equal(model.sample(4, generator=gen(0), temperature=1.0), plain.sample(4, generator=gen(0)))
    assert torch.equal(model.prior_latents(3, gen(1)), plain.prior_latents(3, gen(1)) * 0.5)
    assert torch.equal(model.prior_latents(3, gen(1), temperature=1.0), plain.prior_latents(3, gen(1)))


def test_the_temperature_is_saved_checked_and_told_in_the_card(tmp_path):
    model = cool_gan()
    model.save_pretrained(tmp_path / "gan")
    loaded = GAN.from_pretrained(tmp_path / "gan")
    assert loaded.config.sample_temperature == 0.5
    assert torch.equal(loaded.sample(3, generator=gen(0)), model.sample(3, generator=gen(0)))
    card = (tmp_path / "gan" / "README.md").read_text()
    assert "sample_temperature, 0.5" in card and "temperature=1.0 for the full spread" in card
    tiny_model("gan").save_pretrained(tmp_path / "plain")
    assert "for the full spread" not in (tmp_path / "plain" / "README.md").read_text()
    for bad in (0, -1, 2.5, float("nan"), True, "0.5"):
        with pytest.raises(ConfigError, match="sample_temperature"):
            tiny_model("gan", sample_temperature=bad)


@pytest.mark.parametrize("folder", ["release-0.1/cluster-gan", "pre-conditioning/gan"])
def test_a_gan_saved_before_the_option_samples_at_temperature_one(folder):
    path = DATA / folder
    assert "sample_temperature" not in json.loads((path / "config.json").read_text())
    model = AutoModel.from_pretrained(path)
    assert model.config.sample_temperature == 1.0 and model.default_temperature == 1.0
    expected = load_file(path.parent / f"{path.name}-samples.safetensors")["samples"]
    labels = {"class_labels": [0, 1, 2][:len(expected)]} if model.num_classes else {}
    torch.testing.assert_close(model.sample(len(expected), generator=gen(0), **labels), expected, atol=1e-6, rtol=0)


def test_pipelines_and_vaegan_sample_use_the_stored_temperature(tmp_path):
    model = cool_gan()
    cool, full = (model.sample(4, generator=gen(0), temperature=t) for t in (0.5, 1.0))
    pipe = GANPipeline(model)
    assert torch.equal(pipe(4, generator=gen(0), output_type="pt").images, cool)
    assert torch.equal(pipe(4, generator=gen(0), output_type="pt", temperature=1.0).images, full)

    model.save_pretrained(tmp_path / "gan", model_card=False)
    grids = {}
    for name, extra in (("default", []), ("half", ["--temperature", "0.5"]), ("one", ["--temperature", "1"])):
        assert main(["sample", str(tmp_path / "gan"), "-n", "4", "-o", str(tmp_path / f"{name}.png"), *extra]) == 0
        grids[name] = (tmp_path / f"{name}.png").read_bytes()
    assert grids["default"] == grids["half"] != grids["one"]


def test_evaluate_samples_at_the_stored_temperature_and_the_card_says_so(tmp_path, capsys):
    folder = tmp_path / "gan"
    cool_gan().save_pretrained(folder)
    stored = evaluate(str(folder), num_samples=200, metrics=["fd_mnist", "confident"])
    full = evaluate(str(folder), num_samples=200, metrics=["fd_mnist", "confident"], temperature=1.0)
    assert stored["temperature"] == 0.5 and full["temperature"] == 1.0
    assert stored["metrics"]["fd_mnist"] != full["metrics"]["fd_mnist"]
    assert main(["evaluate", str(folder), *FAST, "--update-card"]) == 0
    assert "temperature 0.5" in capsys.readouterr().out
    card = (folder / "README.md").read_text()
    assert "at temperature 0.5 (the model's `sample_temperature`" in card and "--temperature 0.5" in card
    configs = {r.metric_config for r in ModelCard.load(folder / "README.md").data.eval_results}
    assert all("temperature=0.5" in c for c in configs), configs
    assert read_eval_results(folder)["metrics"] == pytest.approx(stored["metrics"])
    # The card's command reproduces the card's numbers.
    assert main(["evaluate", str(folder), *FAST, "--temperature", "0.5", "-o", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["metrics"] == pytest.approx(stored["metrics"])


@pytest.mark.parametrize("args, message", [
    (["--real", "--temperature", "0.5"], "--temperature goes with a model"),
    (["MODEL", "--temperature", "3"], "--temperature must be between 0 and 2"),
    (["MODEL", "--temperature", "nan"], "--temperature must be a finite number"),
])
def test_bad_evaluate_temperatures_are_one_line_errors(args, message, tmp_path, capsys):
    cool_gan().save_pretrained(tmp_path / "gan", model_card=False)
    args = [str(tmp_path / "gan") if a == "MODEL" else a for a in args]
    assert main(["evaluate", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_demo_starts_each_model_at_its_own_temperature():
    gr = pytest.importorskip("gradio")
    from vaegan.demo import layout

    models = {"cool": cool_gan(), "plain": tiny_model("gan")}
    demo = layout.build_demo(models, heldout=None)
    sliders = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "sample-temperature"]
    assert len(sliders) == 1 and sliders[0].value == 0.5
    tab = demo.vaegan_app.tabs["sample"]
    assert tab.default_temperature("cool") == 0.5 and tab.default_temperature("plain") == 1.0
    assert tab.default_result("cool") == tab.sample("cool", 16, 0, 0.5) != tab.sample("cool", 16, 0, 1.0)
    # Picking another model moves the slider to that model's temperature.
    picker = [fn for fn in demo.fns.values() if any(getattr(o, "elem_id", None) == "sample-temperature"
                                                     for o in fn.outputs)]
    assert len(picker) == 1
    assert [update.value for update in picker[0].fn("plain") if isinstance(update, gr.Slider)] == [1.0]
    assert [update.value for update in picker[0].fn("cool") if isinstance(update, gr.Slider)] == [0.5]
