"""The Sample tab: a grid of images from any model for a number of images, a seed and a temperature; for a
class-conditional model also a class, or every class side by side (the class grid)."""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from PIL import Image

from ..models import GenerativeModel
from .context import DemoContext
from .inputs import capped, check_number, user_errors
from .limits import DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEMPERATURE, MAX_IMAGES, MAX_SEED, MAX_TEMPERATURE
from .outputs import sample_grid

ANY_CLASS = "any"      # class picker: labels drawn at random
ALL_CLASSES = "all"    # class picker: the class grid, one column per class


@dataclass(frozen=True)
class SampleRequest:
    """One checked Sample request."""

    model: str
    num_images: int
    seed: int
    temperature: float
    label: str = ANY_CLASS  # ANY_CLASS, ALL_CLASSES or a class index as text

    @property
    def is_default(self) -> bool:
        return (self.num_images, self.seed, self.temperature, self.label) == (
            DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEMPERATURE, ANY_CLASS)


class SampleTab:
    """Checks Sample requests and renders them; concurrent unconditional requests share one forward pass."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx
        self._defaults: dict[str, bytes] = {}  # PNG of each model's default grid (seed 0), made once
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ requests
    def check(self, model: Any, num_images: Any, seed: Any, temperature: Any, label: Any = ANY_CLASS
              ) -> SampleRequest:
        """The request's values checked against the caps; ``gr.Error`` naming the field otherwise."""
        entry = self.ctx.registry.entry(model)
        n = check_number("Number of images", num_images, 1, MAX_IMAGES, integer=True)
        seed = check_number("Seed", seed, 0, MAX_SEED, integer=True)
        temperature = check_number("Temperature", temperature, 0.0, MAX_TEMPERATURE)
        label = ANY_CLASS if label in (None, "") else str(label)
        classes = entry.class_names
        if label != ANY_CLASS:
            if classes is None:
                raise gr.Error(f"{model} is not class-conditional; choose the class {ANY_CLASS!r} or a "
                               "class-conditional model.")
            if label != ALL_CLASSES and label not in {str(i) for i in range(len(classes))}:
                raise gr.Error(f"Class must be {ANY_CLASS!r}, {ALL_CLASSES!r} or a class index from 0 to "
                               f"{len(classes) - 1} of {model}, got {label!r}.")
        if not entry.model.can_sample:  # an AE before fit_prior
            raise gr.Error(f"{model} cannot sample: it has no fitted prior yet (an AE needs fit_prior on its "
                           "training latents; the vaegan trainer does it).")
        return SampleRequest(model, n, seed, temperature, label)

    @user_errors
    def sample(self, model: str, num_images: float, seed: float, temperature: float, label: str = ANY_CLASS
               ) -> str:
        """One request -> the path of a fresh PNG grid."""
        request = self.check(model, num_images, seed, temperature, label)
        if request.is_default:  # what most visitors ask for first: computed once per model
            return self.ctx.files.write_bytes(self.default_png(request.model), "samples.png")
        return self.ctx.files.png(self.render([request])[0], "samples")

    def default_png(self, model: str) -> bytes:
        """PNG of ``model``'s default grid (16 images, seed 0, temperature 1), computed once."""
        with self._lock:
            cached = self._defaults.get(model)
        if cached is None:
            request = SampleRequest(model, DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEMPERATURE)
            cached = _png_bytes(self.render([request])[0])
            with self._lock:
                self._defaults[model] = cached
        return cached

    def default_path(self, model: str) -> str:
        """A fresh file holding :meth:`default_png` (what the page shows before "Generate" is pressed)."""
        return self.ctx.files.write_bytes(self.default_png(model), "samples.png")

    # ------------------------------------------------------------------ rendering
    def render(self, requests: list[SampleRequest]) -> list[Image.Image]:
        """Grids for checked requests; the unconditional ones of each model are decoded in one batch.

        Each request draws its latents from its own seeded generator, so its grid does not depend on the others.
        """
        pictures: dict[int, Image.Image] = {}
        plain: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            net = self.ctx.registry.model(request.model)
            if self.ctx.registry.entry(request.model).class_names is None:
                plain.setdefault(request.model, []).append(index)
            else:
                pictures[index] = self._conditional(net, request)
        for name, indices in plain.items():
            net = self.ctx.registry.model(name)
            with torch.inference_mode():
                latents = [net.prior_latents(requests[i].num_images, generator=_generator(net, requests[i].seed),
                                             temperature=requests[i].temperature) for i in indices]
                images = net.decode_latents(torch.cat(latents)).float().cpu()
            for index, chunk in zip(indices, images.split([len(z) for z in latents]), strict=True):
                pictures[index] = sample_grid(chunk)
        return [pictures[i] for i in range(len(requests))]

    def _conditional(self, net: GenerativeModel, request: SampleRequest) -> Image.Image:
        generator = _generator(net, request.seed)
        with torch.inference_mode():
            if request.label == ALL_CLASSES:
                num_classes = int(net.config.num_classes)
                rows = max(1, math.ceil(request.num_images / num_classes))
                latents = net.prior_latents(rows, generator=generator, temperature=request.temperature)
                images = net.generate_all_classes(latents)  # latent-major: row i is latent i in every class
                return sample_grid(images.float().cpu(), nrow=num_classes)
            labels = None if request.label == ANY_CLASS else int(request.label)
            images = net.sample(request.num_images, generator=generator, temperature=request.temperature,
                                class_labels=labels)
        return sample_grid(images.float().cpu())

    # ------------------------------------------------------------------ page
    def class_picker(self, model: Any) -> Any:
        """The class picker for ``model``: its classes, or hidden for an unconditional model."""
        entry = self.ctx.registry.entries.get(model) if isinstance(model, str) else None
        classes = entry.class_names if entry else None
        if not classes:
            return gr.Dropdown(choices=class_choices(None), value=ANY_CLASS, visible=False)
        return gr.Dropdown(choices=class_choices(classes), value=ANY_CLASS, visible=True)

    def build(self, first: str) -> dict[str, Any]:
        """The tab's components and events (inside ``gr.Blocks``); returns the components by name."""
        registry, ctx = self.ctx.registry, self.ctx
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model = gr.Dropdown(registry.choices(), value=first, label="Model", allow_custom_value=True,
                                    elem_id="sample-model")
                first_classes = registry.entry(first).class_names
                label = gr.Dropdown(class_choices(first_classes), value=ANY_CLASS, label="Class",
                                    allow_custom_value=True, visible=bool(first_classes), elem_id="sample-class",
                                    info="class-conditional models: one class, or every class side by side")
                n = capped(gr.Slider(1, MAX_IMAGES, value=DEFAULT_IMAGES, step=1, label="Number of images"))
                seed = capped(gr.Number(value=DEFAULT_SEED, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                temperature = capped(gr.Slider(0.0, MAX_TEMPERATURE, value=DEFAULT_TEMPERATURE, step=0.05,
                                               label="Temperature"))
                go = gr.Button("Generate", variant="primary", elem_id="sample-button")
                gr.Markdown("The same seed gives the same images. Temperature scales the prior's spread "
                            "(below 1: more typical, less varied). An AE samples from the Gaussian fitted "
                            "to its training latents.")
                results = gr.Markdown(registry.results_markdown(first), elem_id="sample-results")
            with gr.Column(scale=2):
                # The first model's default grid is part of the page, so a visitor sees digits at once.
                out = gr.Image(value=self.default_path(first), label="Samples", format="png", interactive=False,
                               height=440, buttons=["download", "fullscreen"], elem_id="sample-output",
                               elem_classes=["pixelated"])
        go.click(self.sample, [model, n, seed, temperature, label], out, api_name="sample", **ctx.compute)
        model.change(lambda name: (self.class_picker(name), registry.results_markdown(name)), model,
                     [label, results], **ctx.ui_only)
        return {"model": model, "class": label, "output": out, "results": results}


def class_choices(classes: list[str] | None) -> list[tuple[str, str]]:
    """Dropdown choices of the class picker: any class, every class (the grid), then each class."""
    choices = [("any class (drawn at random)", ANY_CLASS), ("all classes (class grid)", ALL_CLASSES)]
    return choices + [(f"{i}: {name}" if name != str(i) else name, str(i)) for i, name in enumerate(classes or [])]


def _generator(net: GenerativeModel, seed: int) -> torch.Generator:
    return torch.Generator(device=net.device).manual_seed(seed)


def _png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
