"""The Complete tab (models that complete images, e.g. a PixelCNN): keep the top of a digit (drawn, uploaded or
held out) and see the model redraw the rest, several times."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
import torch

from ..completion import DEFAULT_KEEP, KEEP_CHOICES, complete_image
from ..models import GenerativeModel
from .context import DemoContext
from .heldout import check_digit
from .inputs import INPUT_NOTE, capped, check_number, digit_sketchpad, digit_upload, model_input, user_errors
from .limits import DEFAULT_COMPLETIONS, DEFAULT_SEED, MAX_COMPLETIONS, MAX_EXAMPLE, MAX_SEED
from .outputs import GRID_PAD_VALUE, InlinePNG, display_scale, encode_png, inline_image
from .registry import class_options
from .tabs import DemoTab

YOURS, HELDOUT = "yours", "heldout"  # where the digit comes from
#: The keep choices from the least kept to the most, labelled "top half" ...
KEEP_OPTIONS = [(keep.replace("-", " "), keep) for keep in sorted(KEEP_CHOICES, key=KEEP_CHOICES.__getitem__)]

NOTE = """The first image is the part the model keeps (grey: redrawn); a model of binary pixels keeps them
thresholded at one half. The others are its completions: it redraws the rest in reading order, each pixel given
the ones before it (a VQ-VAE redraws the positions of its code grid that the kept part does not fix, then decodes
the grid). The same seed gives the same completions."""


class CompleteTab(DemoTab):
    """Completion requests (``model.complete``); recent results of held-out digits are kept (identical requests
    cost one computation)."""

    title, tab_id, purpose = "Complete", "complete", "complete images"
    needs, takes_classes = "completion", True

    def __init__(self, ctx: DemoContext, cache_size: int = 64):
        super().__init__(ctx)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._render_heldout)

    @user_errors
    def complete(self, model: str, source: str, image: Any, sketch: Any, digit: Any, example: float, keep: str,
                 num_completions: float, seed: float, label: Any = None) -> InlinePNG | str:
        """The kept part then the completions, in one row (a PNG result)."""
        net = self.served(model)
        n = check_number("Number of completions", num_completions, 1, MAX_COMPLETIONS, integer=True)
        seed = check_number("Seed", seed, 0, MAX_SEED, integer=True)
        if keep not in KEEP_CHOICES:
            raise gr.Error(f"Keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}.")
        label = self.class_label(model, net, label)
        if source == HELDOUT:
            example = check_number("Example", example, 0, MAX_EXAMPLE, integer=True)
            png = self._cached(model, check_digit(digit, "Digit"), example, keep, n, seed, label)
        elif source == YOURS:
            png = self._render(net, model_input(image, sketch, net.image_shape, "digit"), keep, n, seed, label)
        else:
            raise gr.Error(f"The digit to complete comes from {YOURS!r} (drawn or uploaded) or {HELDOUT!r} (a "
                           f"held-out digit), not {source!r}.")
        return self.ctx.files.png_bytes(png, "completions.png")

    @staticmethod
    def class_label(name: str, net: GenerativeModel, label: Any) -> int | None:
        """The class index to complete as: required of a class-conditional model, refused by an unconditional
        one."""
        label = None if label in (None, "") else str(label)
        if net.num_classes is None:
            if label is not None:
                raise gr.Error(f"{name} is not class-conditional; leave the class empty or choose a "
                               "class-conditional model.")
            return None
        last = int(net.num_classes) - 1
        if label is None:
            raise gr.Error(f"{name} is class-conditional: choose the class to complete the digit as (0 to {last}).")
        if label not in {str(i) for i in range(last + 1)}:
            raise gr.Error(f"Class must be a class index from 0 to {last} of {name}, got {label!r}.")
        return int(label)

    def _render_heldout(self, model: str, digit: int, example: int, keep: str, n: int, seed: int,
                        label: int | None) -> bytes:
        net = self.served(model)
        return self._render(net, self.ctx.heldout.example(net.image_shape, digit, example), keep, n, seed, label)

    @staticmethod
    def _render(net: GenerativeModel, image: torch.Tensor, keep: str, n: int, seed: int, label: int | None) -> bytes:
        """PNG bytes of the row, drawn with the request's own seeded generator."""
        width = (n + 1) * (image.shape[-1] + 2) + 2
        with torch.inference_mode():
            row = complete_image(net, image, keep, n, generator=torch.Generator(device=net.device).manual_seed(seed),
                                 class_labels=label, pad_value=GRID_PAD_VALUE, scale=display_scale(width, 700, 1400))
        return encode_png(row)

    # ------------------------------------------------------------------ page
    def class_picker(self, model: Any) -> Any:
        """The class picker for ``model``: its classes (the first chosen), or hidden and empty when unconditional."""
        entry = self.ctx.registry.entries.get(model) if isinstance(model, str) else None
        classes = entry.class_names if entry else None
        return gr.Dropdown(choices=class_options(classes), value="0" if classes else None, visible=bool(classes))

    def build(self, choices: list[tuple[str, str]], demo: gr.Blocks | None = None) -> None:
        ctx = self.ctx
        first = choices[0][1]
        have_heldout = ctx.heldout.source is not None
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model = gr.Dropdown(choices, value=first, label="Model", allow_custom_value=True,
                                    elem_id="complete-model")
                classes = ctx.registry.entry(first).class_names
                label = gr.Dropdown(class_options(classes), value="0" if classes else None, label="Class",
                                    allow_custom_value=True, visible=bool(classes), elem_id="complete-class",
                                    info="class-conditional models: the class to complete the digit as")
                source = gr.Radio([("A held-out digit", HELDOUT), ("Your digit: draw or upload", YOURS)],
                                  value=HELDOUT if have_heldout else YOURS, label="Digit to complete",
                                  elem_id="complete-source")
                with gr.Row(visible=have_heldout) as heldout_row:
                    digit = gr.Dropdown([str(d) for d in range(10)], value="7", label="Digit")
                    example = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_EXAMPLE,
                                               label="Example"))
                keep = gr.Radio(KEEP_OPTIONS, value=DEFAULT_KEEP, label="Keep", elem_id="complete-keep",
                                info="the rows kept from the top; the model redraws the rest")
                n = capped(gr.Slider(1, MAX_COMPLETIONS, value=DEFAULT_COMPLETIONS, step=1,
                                     label="Number of completions"))
                seed = capped(gr.Number(value=DEFAULT_SEED, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                        elem_id="complete-seed"))
                go = gr.Button("Complete", variant="primary", elem_id="complete-button")
            with gr.Column(scale=2):
                with gr.Row(visible=not have_heldout) as yours_row:
                    image = digit_upload("Upload a digit", height=200)
                    sketch = digit_sketchpad("...or draw one (pick the pen)", height=320, elem_id="complete-sketch")
                output = inline_image(label="Kept part (grey: redrawn), then the completions", format="png",
                                      interactive=False, height=150, elem_id="complete-output",
                                      elem_classes=["pixelated"], buttons=["download", "fullscreen"])
                gr.Markdown(NOTE)
                gr.Markdown(INPUT_NOTE)
        source.change(lambda s: (gr.Row(visible=s == HELDOUT), gr.Row(visible=s == YOURS)), source,
                      [heldout_row, yours_row], **ctx.ui_only)
        model.change(self.class_picker, model, label, **ctx.ui_only)
        go.click(self.complete, [model, source, image, sketch, digit, example, keep, n, seed, label], output,
                 api_name="complete", **ctx.compute)
