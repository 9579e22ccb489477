"""The demo's models: loading them from folders or Hub ids, their model cards' evaluation results, their classes,
and lookups by name whose failures are messages for the visitor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
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
        num_classes = getattr(self.model.config, "num_classes", None)
        if not num_classes:
            return None
        names = getattr(self.model.config, "class_names", None)
        return [str(n) for n in names] if names else [str(i) for i in range(int(num_classes))]


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


def unconditional(model: GenerativeModel) -> bool:
    """Whether ``model`` takes no class labels (only the Sample tab handles class-conditional models)."""
    return not getattr(model.config, "num_classes", None)


def describe(name: str, model: GenerativeModel) -> str:
    """``name (VAE, 2-D latent, 28x28x1)``: the dropdown label of a model."""
    c, h, w = model.image_shape
    conditional = ", class-conditional" if getattr(model.config, "num_classes", None) else ""
    return f"{name} ({type(model).__name__}, {model.latent_dim}-D latent, {h}x{w}x{c}{conditional})"


def results_markdown(name: str, results: Sequence[Any]) -> str:
    """The evaluation results of a model card as a Markdown table ("" when there are none)."""
    if not results:
        return ""
    rows = ["| metric | value | dataset | split |", "|---|---|---|---|"]
    for result in results:
        metric = getattr(result, "metric_name", None) or getattr(result, "metric_type", "?")
        value = getattr(result, "metric_value", "")
        value = f"{value:.4g}" if isinstance(value, float) else str(value)
        dataset = getattr(result, "dataset_name", None) or getattr(result, "dataset_type", "")
        split = getattr(result, "dataset_split", None) or ""
        rows.append(f"| {metric} | {value} | {dataset} | {split} |")
    return f"**Evaluation results of {name}** (from its model card)\n\n" + "\n".join(rows)


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

    def choices(self, predicate: Callable[[GenerativeModel], bool] = lambda m: True) -> list[tuple[str, str]]:
        """``(label, name)`` pairs for a dropdown, of the models for which ``predicate`` holds."""
        return [(describe(name, e.model), name) for name, e in self.entries.items() if predicate(e.model)]

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
        reason = model.cannot_sample_reason()
        if reason is not None:
            raise gr.Error(f"{name}: {reason} {consequence}".rstrip())
        return model

    def encoder_model(self, name: str, what: str, alternative: str = "") -> GenerativeModel:
        model = self.model(name)
        if getattr(model.config, "num_classes", None):
            raise gr.Error(f"{name} is class-conditional, so it cannot {what} here; choose an unconditional AE or "
                           f"VAE{alternative}.")
        if not model.has_encoder:
            raise gr.Error(f"{name} is a {type(model).__name__}, which has no encoder, so it cannot {what}. "
                           f"Choose an AE or a VAE{alternative}.")
        return model

    def plane_model(self, name: str) -> GenerativeModel:
        model = self.unconditional_model(name, "Explore")
        if model.latent_dim != 2:
            raise gr.Error(f"The latent space of {name} has {model.latent_dim} dimensions; the latent plane needs a "
                           "model with a 2-D latent space.")
        return model

    def unconditional_model(self, name: str, tab: str) -> GenerativeModel:
        """``name``'s model, or a ``gr.Error`` when it is class-conditional (``tab`` does not take classes)."""
        model = self.model(name)
        if getattr(model.config, "num_classes", None):
            raise gr.Error(f"{name} is class-conditional; the {tab} tab works with unconditional models. Sample it "
                           "in the Sample tab, where you can pick a class.")
        return model

    def results_markdown(self, name: Any) -> str:
        """The evaluation results of ``name``'s model card as a Markdown table ("" when none or unknown)."""
        entry = self.entries.get(name) if isinstance(name, str) else None
        return results_markdown(name, entry.eval_results) if entry else ""
