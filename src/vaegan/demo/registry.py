"""The demo's models: loading them from folders or Hub ids, their model cards' evaluation results, their classes,
and lookups by name whose failures are messages for the visitor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from ..models import AutoModel, GenerativeModel
from .options import MODELS_ENV

log = logging.getLogger("vaegan.demo")


@dataclass
class DemoModel:
    """A model of the demo, where it came from, and the evaluation results of its model card."""

    model: GenerativeModel
    source: str | None = None
    eval_results: list[Any] = field(default_factory=list)  # huggingface_hub EvalResult

    @property
    def class_names(self) -> list[str] | None:
        """Names of the classes of a class-conditional model (indices as text when unnamed), else None."""
        num_classes = self.model.num_classes
        if not num_classes:
            return None
        names = self.model.class_names
        return [str(n) for n in names] if names else [str(i) for i in range(int(num_classes))]


def class_options(classes: Sequence[str] | None) -> list[tuple[str, str]]:
    """Dropdown choices ``(label, index as text)`` of each class (``"3: three"``, or ``"3"`` when unnamed)."""
    return [(f"{i}: {name}" if name != str(i) else name, str(i)) for i, name in enumerate(classes or [])]


def card_eval_results(source: str) -> list[Any]:
    """The ``model-index`` results of the model card of a folder or Hub id (``EvalResult`` list; empty if none)."""
    from huggingface_hub import ModelCard

    path = Path(source)
    try:
        if path.is_dir():
            readme = path / "README.md"
            if not readme.is_file():
                return []
            card = ModelCard.load(readme)
        else:
            card = ModelCard.load(source)
    except Exception as err:  # no card, offline, unparsable metadata: the demo runs without the table
        log.info("no evaluation results for %s: %s: %s", source, type(err).__name__, err)
        return []
    return list(getattr(card.data, "eval_results", None) or [])


def default_model_name(source: str) -> str:
    """A folder's name (its parent's for a trainer's ``OUTPUT/model``); a Hub id as it is."""
    path = Path(source)
    if not path.exists():
        return source
    path = path.resolve()
    return path.parent.name if path.name == "model" and path.parent.name else path.name


def load_models(specs: Sequence[str], loader: Callable[[str], GenerativeModel] = AutoModel.from_pretrained,
                read_results: Callable[[str], list[Any]] = card_eval_results) -> dict[str, DemoModel]:
    """Load ``NAME=PATH_OR_ID`` / ``PATH_OR_ID`` specs; a model that fails to load is skipped with a log line."""
    models: dict[str, DemoModel] = {}
    for spec in specs:
        name, _, source = spec.strip().rpartition("=") if "=" in spec else ("", "", spec.strip())
        name = name or default_model_name(source)
        if name in models:  # e.g. two trainer outputs, both called .../model
            name = f"{name}-{sum(n == name or n.startswith(f'{name}-') for n in models) + 1}"
        try:
            model = loader(source)
        except Exception as err:  # report and go on with the others
            log.error("could not load model %s: %s: %s", source, type(err).__name__, err)
            continue
        models[name] = DemoModel(model, source, read_results(source))
        log.info("loaded %s from %s", name, source)
    if not models:
        raise SystemExit(f"No model could be loaded from {list(specs)}; pass PATH_OR_HUB_ID arguments or set "
                         f"{MODELS_ENV}.")
    return models


def latent_words(model: GenerativeModel) -> str | None:
    """``"2-D latent"`` (``"4x7x7 latent"``, ``"latent space"`` when its shape is unknown), None without one."""
    if not model.has_latent_space:
        return None
    shape = model.latent_shape
    if not shape:
        return "latent space"
    return f"{shape[0]}-D latent" if len(shape) == 1 else f"{'x'.join(map(str, shape))} latent"


def describe(name: str, model: GenerativeModel) -> str:
    """``name (VAE, 2-D latent, 28x28x1)``: the dropdown label of a model (latent info only when it has a latent
    space; the image size only when its config names one)."""
    parts = [type(model).__name__, latent_words(model)]
    try:
        c, h, w = model.image_shape
        parts.append(f"{h}x{w}x{c}")
    except (AttributeError, KeyError, TypeError, ValueError):  # a plugin family without image_size/in_channels
        pass
    if model.num_classes:
        parts.append("class-conditional")
    return f"{name} ({', '.join(p for p in parts if p)})"


def sampling_reason(name: str, model: GenerativeModel, consequence: str = "") -> str | None:
    """Why ``name``'s model cannot sample now (its own ``cannot_sample_reason``), then ``consequence``; None if
    it can."""
    reason = model.cannot_sample_reason()
    return None if reason is None else f"{name}: {reason} {consequence}".rstrip()


class Registry:
    """The models by name; lookups that fail raise a ``gr.Error`` that says what to choose instead."""

    def __init__(self, models: Mapping[str, GenerativeModel | DemoModel]):
        if not models:
            raise ValueError("The demo needs at least one model.")
        self.entries = {name: m if isinstance(m, DemoModel) else DemoModel(m) for name, m in models.items()}
        for entry in self.entries.values():
            entry.model.eval()
            entry.model.requires_grad_(False)
            # Channels-last convolution weights let oneDNN skip layout conversions: the 28x28 VAE's decoder
            # needs about 30% less CPU per call (benchmarks/README.md, "Demo load test"); results are unchanged.
            entry.model.to(memory_format=torch.channels_last)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def choices(self, names: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """``(label, name)`` pairs for a dropdown, of ``names`` (default: every model)."""
        return [(describe(name, self.entries[name].model), name) for name in (self.names if names is None else names)]

    def entry(self, name: Any) -> DemoModel:
        if not isinstance(name, str) or name not in self.entries:
            raise gr.Error(f"Unknown model {name!r}. Choose one of: {', '.join(self.entries)}.")
        return self.entries[name]

    def model(self, name: Any) -> GenerativeModel:
        return self.entry(name).model

    def sampling_model(self, name: Any, consequence: str = "") -> GenerativeModel:
        """``name``'s model if it can sample now, else a ``gr.Error`` with the model's own reason (an AE without
        its fitted prior, a cluster GAN before its clusters are fitted), then the sentence ``consequence``."""
        model = self.model(name)
        reason = sampling_reason(name, model, consequence)
        if reason is not None:
            raise gr.Error(reason)
        return model

    def results_html(self, name: Any) -> str:
        """The evaluation results of ``name``'s model card as the demo's table ("" when none or unknown)."""
        from .results import results_html

        entry = self.entries.get(name) if isinstance(name, str) else None
        return results_html(name, entry.eval_results) if entry else ""
