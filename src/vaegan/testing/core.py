"""Contract tests every family passes: construction, config checks, save / load, sampling, training, pipeline, card."""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import pytest
import torch

from ..cards import PLACEHOLDER_OWNER
from ..errors import ConfigError
from ..models.auto import AutoModel
from ..models.registry import available_models, get_model_class
from .support import ContractBase, check_images, gen, plain, public_config

WEIGHTS = "diffusion_pytorch_model.safetensors"


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), f"state keys differ: {sorted(set(sa) ^ set(sb))}"
    different = [name for name in sa if not torch.equal(sa[name], sb[name])]
    assert not different, f"tensors differ after loading: {different}"


class CoreContract(ContractBase):
    """The tests of the protocol every family implements (``compute_loss`` and ``sample``)."""

    # ------------------------------------------------------------------ construction and config
    def test_construction_and_config(self):
        model = self.make_model()
        assert model.can_sample, model.cannot_sample_reason()
        config = public_config(model)
        for key, value in self.tiny_config.items():
            assert config.get(key) == plain(value), f"config[{key!r}] is {config.get(key)!r}, not {value!r}"
        rebuilt = self.model_class.from_config(model.config)
        assert type(rebuilt) is self.model_class and public_config(rebuilt) == config
        assert {p.shape for p in rebuilt.parameters()} == {p.shape for p in model.parameters()}
        c, h, w = model.image_shape
        assert all(isinstance(v, int) and v > 0 for v in (c, h, w)), model.image_shape
        assert model.latent_shape is None or model.has_latent_space, "latent_shape without a latent space"
        for stage, phases in self.model_class.stages().items():
            unknown = set(phases) - set(self.model_class.training_phases)
            assert not unknown, f"stage {stage!r} trains phases {sorted(unknown)} missing from training_phases"

    def test_invalid_configs_raise_config_errors(self):
        parameters = inspect.signature(self.model_class.__init__).parameters
        cases = [({name: 0}, name) for name in ("image_size", "in_channels", "num_classes") if name in parameters]
        for overrides, pattern in [*cases, *self.invalid_configs]:
            with pytest.raises(ConfigError, match=pattern) as info:
                self.model_class(**{**self.tiny_config, **overrides})
            message = str(info.value)
            assert message.strip() and "\n" not in message, f"{overrides}: not a one-line message: {message!r}"

    def test_unknown_config_keys_are_refused(self, tmp_path):
        model = self.make_model()
        config = {**dict(model.config), "not_an_option": 1}
        with pytest.raises(ConfigError, match="not_an_option"):
            self.model_class.check_config_dict(config)
        with pytest.raises(ConfigError, match="not_an_option"):
            AutoModel.from_config({**config, "_class_name": self.model_class.__name__})
        model.save_pretrained(tmp_path / "model")
        path = tmp_path / "model" / "config.json"
        saved = json.loads(path.read_text())
        path.write_text(json.dumps({**saved, "not_an_option": 1}))
        with pytest.raises(ConfigError, match="not_an_option"):
            self.model_class.from_pretrained(tmp_path / "model")
        other = next((name for name in available_models()
                      if not issubclass(self.model_class, get_model_class(name))
                      and not issubclass(get_model_class(name), self.model_class)), None)
        if other is not None:  # a folder of another family is refused, naming it
            path.write_text(json.dumps({**saved, "_class_name": other}))
            with pytest.raises(ConfigError, match=f"holds a {other} model"):
                self.model_class.from_pretrained(tmp_path / "model")

    # ------------------------------------------------------------------ save / load
    def test_save_load_round_trip(self, tmp_path):
        model = self.make_model(seed=1)
        model.save_pretrained(tmp_path / "model")
        folder = tmp_path / "model"
        files = {p.name for p in folder.iterdir()}
        assert {"config.json", "README.md"} <= files, files
        # The weights are at the root, or in component subfolders (each with its own config.json).
        weights = sorted(folder.rglob(WEIGHTS))
        assert weights, f"no {WEIGHTS} in {sorted(files)}"
        assert all((path.parent / "config.json").is_file() for path in weights), weights
        names = [p.name for p in folder.rglob("*")]
        assert not any(name.endswith((".bin", ".pt", ".pth", ".ckpt")) for name in names), names
        expected = model.sample(3, generator=gen(0))
        for loader in (self.model_class, AutoModel):
            loaded = loader.from_pretrained(tmp_path / "model")
            assert type(loaded) is self.model_class, f"{loader.__name__} loaded a {type(loaded).__name__}"
            assert public_config(loaded) == public_config(model)
            _assert_same_state(loaded, model)
            assert torch.equal(loaded.sample(3, generator=gen(0)), expected), \
                f"{loader.__name__}.from_pretrained: other samples for the same generator"

    # ------------------------------------------------------------------ sampling
    def test_sample_shape_range_and_dtype(self):
        model = self.make_model()
        for n in (1, 3):
            check_images(model.sample(n, generator=gen(n)), (n, *model.image_shape), model.dtype, f"sample({n})")
        cooler = model.sample(2, generator=gen(0), temperature=0.5)
        check_images(cooler, (2, *model.image_shape), model.dtype, "sample(temperature=0.5)")
        with pytest.raises(ValueError):
            model.sample(0, generator=gen(0))

    def test_sample_without_a_temperature_uses_the_default_temperature(self):
        model = self.make_model()
        default = model.sample(2, generator=gen(0), temperature=model.default_temperature)
        assert torch.equal(model.sample(2, generator=gen(0)), default), \
            "sample() without a temperature did not sample at model.default_temperature (resolve_temperature(None))"

    def test_sample_is_deterministic_with_a_generator(self):
        model = self.make_model()
        first = model.sample(4, generator=gen(0))
        assert torch.equal(first, model.sample(4, generator=gen(0))), "the same generator seed gave other images"
        assert not torch.equal(first, model.sample(4, generator=gen(1))), "other generator seeds gave the same images"
        state = torch.get_rng_state()
        model.sample(2, generator=gen(0))
        assert torch.equal(torch.get_rng_state(), state), \
            "sample() drew from torch's global generator; pass generator= to every random call"
        model.train()
        assert torch.equal(model.sample(4, generator=gen(0)), first), "sample() depends on train / eval mode"
        assert model.training, "sample() left the model in eval mode"

    def test_class_labels(self):
        model = self.make_model()
        if model.num_classes is None:
            with pytest.raises(ValueError, match="unconditional"):
                model.sample(2, generator=gen(0), class_labels=0)
            return
        k, shape = model.num_classes, (3, *model.image_shape)
        first = model.sample(3, generator=gen(0), class_labels=0)
        check_images(first, shape, model.dtype, "sample(class_labels=0)")
        assert torch.equal(first, model.sample(3, generator=gen(0), class_labels=0))
        last = model.sample(3, generator=gen(0), class_labels=k - 1)
        assert not torch.equal(first, last), "the class label does not change the images"
        per_image = torch.tensor([0, k - 1, 0])
        check_images(model.sample(3, generator=gen(0), class_labels=per_image), shape, model.dtype,
                     "sample with one label per image")
        if model.class_names:
            assert torch.equal(model.sample(3, generator=gen(0), class_labels=model.class_names[0]), first)
        with pytest.raises(ValueError, match="out of range"):
            model.sample(2, generator=gen(0), class_labels=k)

    # ------------------------------------------------------------------ training
    def test_compute_loss_of_every_phase(self):
        model = self.make_model().train()
        images, labels = self.example_images(model), self.example_labels(model)
        for phase in model.training_phases:
            losses = model.compute_loss(phase, images, 0, class_labels=labels)
            assert isinstance(losses, dict) and "loss" in losses, f"{phase}: compute_loss must return {{'loss': ...}}"
            for name, value in losses.items():
                assert isinstance(value, torch.Tensor) and value.ndim == 0, f"{phase}/{name}: not a scalar tensor"
                assert torch.isfinite(value), f"{phase}/{name} = {value}"
            assert losses["loss"].requires_grad, f"{phase}: the loss has no gradient"
            losses["loss"].backward()
            parameters = model.phase_parameters(phase)
            assert parameters and any(p.grad is not None for p in parameters), \
                f"{phase}: the loss gives no gradient to phase_parameters({phase!r})"
            model.zero_grad(set_to_none=True)

    def test_short_training_run(self, tmp_path):
        """A few steps of vaegan's trainer on real MNIST digits (``mnist-5k``; needs ``vaegan[train]``), resized
        to the model's image shape: the saved model loads, samples, and has a card."""
        from accelerate.state import AcceleratorState, GradientState

        from ..training.config import config_from_dict
        from ..training.trainer import train

        model_section = {"class": self.model_class.__name__, **plain(self.tiny_config)}
        config = config_from_dict({
            "model": model_section,
            "data": {"source": "mnist-5k", "limit": 64, **self.data_config},
            "train": {"output_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 16,
                      "log_every": 1, "checkpoint_every": 1000, "num_preview_images": 4, **self.train_config},
        })
        AcceleratorState._reset_state(reset_partial_state=True)  # the trainer's Accelerator, not a test's before
        GradientState._reset_state()
        try:
            model_dir = Path(train(config))
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        logged = [row for row in rows if any("loss" in key for key in row)]
        assert logged, f"no losses logged: {rows}"
        bad = {k: v for row in logged for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, f"non-finite training metrics: {bad}"
        trained = AutoModel.from_pretrained(model_dir)
        assert type(trained) is self.model_class and trained.can_sample, trained.cannot_sample_reason()
        check_images(trained.sample(2, generator=gen(0)), (2, *trained.image_shape), trained.dtype, "trained sample")
        assert self.model_class.__name__ in (model_dir / "README.md").read_text()

    # ------------------------------------------------------------------ pipeline and card
    def test_pipeline_samples_what_the_model_samples(self, tmp_path):
        from diffusers import DiffusionPipeline

        from ..pipelines import GenerativePipeline

        model = self.make_model()
        pipe = GenerativePipeline(model)
        images = pipe(batch_size=3, generator=gen(0), output_type="pt").images
        assert torch.equal(images, model.sample(3, generator=gen(0)))
        pictures = pipe(batch_size=2, generator=gen(1)).images
        c, h, w = model.image_shape
        assert len(pictures) == 2 and pictures[0].size == (w, h)
        pipe.save_pretrained(tmp_path / "pipe")
        reloaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
        assert type(reloaded.generative_model) is self.model_class
        assert torch.equal(reloaded(batch_size=3, generator=gen(0), output_type="pt").images, images)
        if model.num_classes is not None:
            labelled = pipe(batch_size=3, generator=gen(0), class_labels=0, output_type="pt").images
            assert torch.equal(labelled, model.sample(3, generator=gen(0), class_labels=0))

    def test_model_card(self, tmp_path, monkeypatch):
        from huggingface_hub import ModelCard

        model = self.make_model()
        model.save_pretrained(tmp_path / "model")
        readme = tmp_path / "model" / "README.md"
        text = readme.read_text()
        assert self.model_class.__name__ in text
        card = ModelCard.load(readme)
        assert card.data.library_name == "vaegan" and "vaegan" in (card.data.tags or []), card.data
        if not model.has_latent_space:
            claims = re.findall(r"[^\n]*latent (?:space has|dimension)[^\n]*", text, flags=re.I)
            assert not claims, f"the card of a family without a latent space describes one: {claims}"
        snippets = re.findall(r"```python\n(.*?)```", text, flags=re.S)
        assert len(snippets) == 1, f"expected one usage snippet in the card, found {len(snippets)}"
        # A card saved without a repo id loads a placeholder id; its note says to put the folder's path there.
        snippet = re.sub(rf'"{PLACEHOLDER_OWNER}/[^"]*"', repr(str(tmp_path / "model")), snippets[0])
        monkeypatch.chdir(tmp_path)  # the snippet may write pictures
        exec(compile(snippet, f"{readme} (usage snippet)", "exec"), {"__name__": "__card__"})  # noqa: S102
