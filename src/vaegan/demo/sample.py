"""The Sample tab: a grid of images from any model that can sample (``model.sample``) for a number of images, a
seed and a temperature; for a class-conditional model also a class, or every class side by side (the class
grid)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from PIL import Image

from ..models import GenerativeModel
from .context import DemoContext
from .inputs import capped, check_number, user_errors
from .limits import DEFAULT_IMAGES, DEFAULT_SEED, DEFAULT_TEMPERATURE, MAX_IMAGES, MAX_SEED, MAX_TEMPERATURE
from .outputs import InlinePNG, encode_png, inline_image, sample_grid
from .registry import class_options, sampling_reason
from .tabs import DemoTab

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


class SampleTab(DemoTab):
    """Checks Sample requests and renders them; recent results are kept, so identical requests cost one render."""

    title, tab_id, purpose = "Sample", "sample", "sample"
    needs, takes_classes = None, True  # sample() is required of every family; it may not work yet (an AE's prior)

    def __init__(self, ctx: DemoContext, cache_size: int = 256):
        super().__init__(ctx)
        # PNG bytes by request (a few KB each). Everyone's first request is the page's defaults (seed 0).
        self.png = functools.lru_cache(maxsize=cache_size)(self._png)

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
        self.served(model)
        return SampleRequest(model, n, seed, temperature, label)

    @user_errors
    def sample(self, model: str, num_images: float, seed: float, temperature: float, label: str = ANY_CLASS
               ) -> InlinePNG | str:
        """One request -> the PNG grid (inline, or a fresh file when large)."""
        return self.ctx.files.png_bytes(self.png(self.check(model, num_images, seed, temperature, label)),
                                        "samples.png")

    def default_result(self, model: str) -> InlinePNG | str:
        """``model``'s grid for the page's defaults (what the page shows before "Generate")."""
        return self.ctx.files.png_bytes(self.png(SampleRequest(model, DEFAULT_IMAGES, DEFAULT_SEED,
                                                               self.default_temperature(model))), "samples.png")

    def default_temperature(self, model: Any) -> float:
        """The slider's value for ``model``: its own default temperature (a stored ``sample_temperature``), else
        the page's."""
        entry = self.ctx.registry.entries.get(model) if isinstance(model, str) else None
        return entry.model.default_temperature if entry else DEFAULT_TEMPERATURE

    # ------------------------------------------------------------------ rendering
    def _png(self, request: SampleRequest) -> bytes:
        return encode_png(self.render(request))

    def render(self, request: SampleRequest) -> Image.Image:
        """The grid of a checked request, drawn by ``model.sample`` with the request's own seeded generator."""
        net = self.ctx.registry.model(request.model)
        generator = torch.Generator(device=net.device).manual_seed(request.seed)
        with torch.inference_mode():
            if request.label == ALL_CLASSES:
                return self.class_grid(net, request, generator)
            labels = None if request.label == ANY_CLASS else int(request.label)
            images = net.sample(request.num_images, generator=generator, temperature=request.temperature,
                                class_labels=labels)
            return sample_grid(images.float().cpu())

    @staticmethod
    def class_grid(net: GenerativeModel, request: SampleRequest, generator: torch.Generator) -> Image.Image:
        """One column per class. With a latent space, row i is latent i drawn in every class (the classic CVAE
        figure); without one, each cell is its own sample of its column's class."""
        num_classes = int(net.num_classes)
        rows = max(1, math.ceil(request.num_images / num_classes))
        if net.has_latent_space:
            latents = net.prior_latents(rows, generator=generator, temperature=request.temperature)
            images = net.generate_all_classes(latents)  # latent-major: row i is latent i in every class
        else:
            labels = torch.arange(num_classes, device=net.device).repeat(rows)
            images = net.sample(rows * num_classes, generator=generator, temperature=request.temperature,
                                class_labels=labels)
        return sample_grid(images.float().cpu(), nrow=num_classes)

    def why_not(self, name: str, model: GenerativeModel) -> str | None:
        return super().why_not(name, model) or sampling_reason(name, model)

    # ------------------------------------------------------------------ page
    def class_picker(self, model: Any) -> Any:
        """The class picker for ``model``: its classes, or hidden for an unconditional model."""
        entry = self.ctx.registry.entries.get(model) if isinstance(model, str) else None
        classes = entry.class_names if entry else None
        if not classes:
            return gr.Dropdown(choices=class_choices(None), value=ANY_CLASS, visible=False)
        return gr.Dropdown(choices=class_choices(classes), value=ANY_CLASS, visible=True)

    def build(self, choices: list[tuple[str, str]], demo: gr.Blocks | None = None) -> dict[str, Any]:
        """The tab's components and events (inside ``gr.Blocks``); returns the components by name."""
        registry, ctx = self.ctx.registry, self.ctx
        first = choices[0][1]
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model = gr.Dropdown(choices, value=first, label="Model", allow_custom_value=True,
                                    elem_id="sample-model")
                first_classes = registry.entry(first).class_names
                label = gr.Dropdown(class_choices(first_classes), value=ANY_CLASS, label="Class",
                                    allow_custom_value=True, visible=bool(first_classes), elem_id="sample-class",
                                    info="class-conditional models: one class, or every class side by side")
                n = capped(gr.Slider(1, MAX_IMAGES, value=DEFAULT_IMAGES, step=1, label="Number of images"))
                seed = capped(gr.Number(value=DEFAULT_SEED, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                        elem_id="sample-seed"))
                temperature = capped(gr.Slider(0.0, MAX_TEMPERATURE, value=self.default_temperature(first),
                                               step=0.05, label="Temperature", elem_id="sample-temperature"))
                go = gr.Button("Generate", variant="primary", elem_id="sample-button")
                gr.Markdown("The same seed gives the same images. Temperature scales the spread of the "
                            "model's randomness (a latent model's prior): below 1, more typical and less varied "
                            "images. It starts at the model's own (1, or the one its card was evaluated at).")
            with gr.Column(scale=2):
                # The first model's default grid is part of the page, so a visitor sees digits at once.
                out = inline_image(self.default_result(first), label="Samples", format="png", interactive=False,
                                   height=440, buttons=["download", "fullscreen"], elem_id="sample-output",
                                   elem_classes=["pixelated"])
        # Full width below the samples: four columns of names and numbers that must not wrap.
        results = gr.HTML(registry.results_html(first), elem_id="sample-results")
        go.click(self.sample, [model, n, seed, temperature, label], out, api_name="sample", **ctx.compute)
        model.change(lambda name: (self.class_picker(name), registry.results_html(name),
                                   gr.Slider(value=self.default_temperature(name))), model,
                     [label, results, temperature], **ctx.ui_only)
        return {"model": model, "class": label, "output": out, "results": results, "temperature": temperature}


def class_choices(classes: list[str] | None) -> list[tuple[str, str]]:
    """Dropdown choices of the class picker: any class, every class (the grid), then each class."""
    choices = [("any class (drawn at random)", ANY_CLASS), ("all classes (class grid)", ALL_CLASSES)]
    return choices + class_options(classes)
