"""The Interpolate tab (models with a latent space): images along a latent path (slerp or lerp) between two seeds
or, for a model with an encoder, between two held-out digits or two uploaded or drawn images; a strip and an
animated GIF."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from ..images import make_grid
from ..models import GenerativeModel
from .context import DemoContext
from .heldout import check_digit
from .inputs import capped, check_number, digit_sketchpad, digit_upload, model_input, user_errors
from .limits import GIF_FRAME_MS, MAX_EXAMPLE, MAX_SEED, MAX_STEPS, MIN_STEPS
from .outputs import GRID_PAD_VALUE, InlinePNG, display_scale, encode_png, inline_image
from .tabs import DemoTab, lacking

SEEDS_INSTEAD = ", or interpolate between two seeds"


class InterpolateTab(DemoTab):
    """Interpolation requests; recent results between seeds or held-out digits are kept (identical requests cost
    one render)."""

    title, tab_id, purpose = "Interpolate", "interpolate", "interpolate"
    needs = "latent_space"

    def __init__(self, ctx: DemoContext, cache_size: int = 64):
        super().__init__(ctx)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._render_known)

    @user_errors
    def interpolate(self, model: str, endpoints: str, seed_a: float, seed_b: float, digit_a: Any, digit_b: Any,
                    example: float, image_a: Any, image_b: Any, sketch_a: Any, sketch_b: Any, steps: float,
                    mode: str) -> tuple[InlinePNG | str, str, str]:
        """The strip (a PNG result), the GIF and the GIF again (for the download box) as paths of fresh files."""
        registry = self.ctx.registry
        net = self.served(model)
        steps = check_number("Steps", steps, MIN_STEPS, MAX_STEPS, integer=True)
        if mode not in ("slerp", "lerp"):
            raise gr.Error(f"Interpolation mode must be 'slerp' or 'lerp', got {mode!r}.")
        if endpoints == "seeds":
            seed_a = check_number("Seed A", seed_a, 0, MAX_SEED, integer=True)
            seed_b = check_number("Seed B", seed_b, 0, MAX_SEED, integer=True)
            registry.sampling_model(model, "Seeds have no latents here, so interpolate between digits or images "
                                           "instead.")
            strip, gif = self._cached(model, "seeds", seed_a, seed_b, 0, steps, mode)
        elif endpoints == "digits":
            self.require_encoder(model, net, "interpolate between digits")
            example = check_number("Example", example, 0, MAX_EXAMPLE, integer=True)
            strip, gif = self._cached(model, "digits", check_digit(digit_a, "Digit A"),
                                      check_digit(digit_b, "Digit B"), example, steps, mode)
        elif endpoints == "images":
            self.require_encoder(model, net, "interpolate between images")
            start = model_input(image_a, sketch_a, net.image_shape, "image A")
            end = model_input(image_b, sketch_b, net.image_shape, "image B")
            strip, gif = self._render(net, start, end, steps, mode)
        else:
            raise gr.Error(f"Interpolate between 'seeds', 'digits' or 'images', not {endpoints!r}.")
        files = self.ctx.files
        gif_path = files.write_bytes(gif, "interpolation.gif")
        return files.png_bytes(strip, "interpolation.png"), gif_path, gif_path

    @staticmethod
    def require_encoder(name: str, net: GenerativeModel, use: str) -> None:
        """A ``gr.Error`` when ``net`` has no encoder to ``use`` (image end points)."""
        reason = lacking(name, net, "encoder", use, SEEDS_INSTEAD)
        if reason is not None:
            raise gr.Error(reason)

    def _render_known(self, model: str, endpoints: str, a: int, b: int, example: int, steps: int, mode: str,
                      ) -> tuple[bytes, bytes]:
        net = self.served(model)
        if endpoints == "seeds":
            with torch.inference_mode():
                start = net.prior_latents(1, generator=torch.Generator(device=net.device).manual_seed(a))[0]
                end = net.prior_latents(1, generator=torch.Generator(device=net.device).manual_seed(b))[0]
        else:
            start = self.heldout_digit(net, a, example, "Digit A")
            end = self.heldout_digit(net, b, example, "Digit B")
        return self._render(net, start, end, steps, mode)

    def _render(self, net: GenerativeModel, start: torch.Tensor, end: torch.Tensor, steps: int, mode: str,
                ) -> tuple[bytes, bytes]:
        """PNG bytes of the strip and GIF bytes of the animation (played forth and back)."""
        path = net.interpolate(start, end, steps=steps, mode=mode).float().cpu()
        width = steps * (path.shape[-1] + 2) + 2
        strip = make_grid(path, nrow=steps, pad_value=GRID_PAD_VALUE, scale=display_scale(width, 700, 1400))
        gif = self.ctx.files.gif(path, "interpolation", duration_ms=GIF_FRAME_MS,
                                 scale=display_scale(path.shape[-1], target=160))
        return encode_png(strip), Path(gif).read_bytes()

    def heldout_digit(self, net: GenerativeModel, digit: Any, example: int, label: str) -> torch.Tensor:
        """Example ``example`` (cycling) of ``digit`` in the held-out data, laid out for ``net``."""
        return self.ctx.heldout.example(net.image_shape, digit, example, label)

    def build(self, choices: list[tuple[str, str]], demo: gr.Blocks | None = None) -> None:
        ctx = self.ctx
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                model = gr.Dropdown(choices, value=choices[0][1], label="Model", allow_custom_value=True,
                                    elem_id="interpolate-model")
                kind = gr.Radio([("Two seeds", "seeds"), ("Two held-out digits (models with an encoder)", "digits"),
                                 ("Two images: upload or draw (models with an encoder)", "images")], value="seeds",
                                label="Interpolate between")
                with gr.Row(visible=True) as seeds_row:
                    seed_a = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed A"))
                    seed_b = capped(gr.Number(value=1, precision=0, minimum=0, maximum=MAX_SEED, label="Seed B"))
                with gr.Row(visible=False) as digits_row:
                    digit_a = gr.Dropdown([str(d) for d in range(10)], value="3", label="Digit A")
                    digit_b = gr.Dropdown([str(d) for d in range(10)], value="8", label="Digit B")
                    example = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_EXAMPLE,
                                               label="Example"))
                steps = capped(gr.Slider(MIN_STEPS, MAX_STEPS, value=10, step=1, label="Steps"))
                mode = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                info="slerp follows the sphere where Gaussian latents live; lerp is the straight "
                                     "line")
                go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
            with gr.Column(scale=2):
                with gr.Row(visible=False) as images_row:
                    with gr.Column():
                        image_a = digit_upload("Image A (upload)", height=180)
                        sketch_a = digit_sketchpad("...or draw A (pick the pen)", height=300)
                    with gr.Column():
                        image_b = digit_upload("Image B (upload)", height=180)
                        sketch_b = digit_sketchpad("...or draw B (pick the pen)", height=300)
                strip = inline_image(label="Path from A to B", format="png", interactive=False, height=150,
                                     elem_id="interpolate-strip", elem_classes=["pixelated"],
                                     buttons=["download", "fullscreen"])
                with gr.Row():
                    gif = gr.Image(label="Animation", type="filepath", interactive=False, elem_id="interpolate-gif",
                                   elem_classes=["pixelated"], buttons=["download"], height=200)
                    gif_file = gr.File(label="Download the GIF", interactive=False)
        kind.change(lambda k: (gr.Row(visible=k == "seeds"), gr.Row(visible=k == "digits"),
                               gr.Row(visible=k == "images")),
                    kind, [seeds_row, digits_row, images_row], **ctx.ui_only)
        go.click(self.interpolate, [model, kind, seed_a, seed_b, digit_a, digit_b, example, image_a, image_b,
                                    sketch_a, sketch_b, steps, mode],
                 [strip, gif, gif_file], api_name="interpolate", **ctx.compute)
