"""The Reconstruct tab (models that reconstruct, e.g. with an encoder): upload or draw a digit and see what the
model makes of it; a model with discrete codes (a VQ-VAE) shows the digit's code grid beside the reconstruction."""

from __future__ import annotations

import colorsys
from typing import Any

import gradio as gr
import torch

from .inputs import INPUT_NOTE, digit_sketchpad, digit_upload, model_input, user_errors
from .outputs import InlinePNG, enlarged, inline_image
from .tabs import DemoTab


class ReconstructTab(DemoTab):
    """What a model makes of a visitor's digit (``model.reconstruct``)."""

    title, tab_id, purpose = "Reconstruct", "reconstruct", "reconstruct images"
    needs = "reconstruction"

    @user_errors
    def reconstruct(self, model: str, image: Any, sketch: Any) -> tuple[InlinePNG | str, InlinePNG | str]:
        """What the model sees and its reconstruction (PNG results)."""
        net = self.served(model)
        x = model_input(image, sketch, net.image_shape, "image")
        with torch.inference_mode():
            recon = net.reconstruct(x[None].to(net.device, net.dtype), class_labels=None).float().cpu()
            if net.supports("codes"):  # the code grid, then the reconstruction
                codes = net.encode_codes(x[None].to(net.device, net.dtype)).cpu()
                recon = torch.cat([code_picture(codes[0], recon.shape[-1], net.codebook_size),
                                   recon.expand(-1, 3, -1, -1) if recon.shape[1] == 1 else recon])
        files = self.ctx.files
        return files.png(enlarged(x[None], 224), "input"), files.png(enlarged(recon, 224 * len(recon)),
                                                                     "reconstruction")

    def build(self, encoders: list[tuple[str, str]], demo: gr.Blocks | None = None) -> None:
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(encoders, value=encoders[0][1], label="Model", allow_custom_value=True,
                                    elem_id="reconstruct-model")
                image = digit_upload("Upload a digit", height=200)
                sketch = digit_sketchpad("...or draw one (pick the pen)", height=320, elem_id="reconstruct-sketch")
                go = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")
            with gr.Column():
                with gr.Row():
                    seen = inline_image(label="What the model sees", format="png", interactive=False,
                                        elem_id="reconstruct-input", elem_classes=["pixelated"], buttons=[])
                    output = inline_image(label="Reconstruction", format="png", interactive=False,
                                          elem_id="reconstruct-output", elem_classes=["pixelated"],
                                          buttons=["download"])
                gr.Markdown(f"{INPUT_NOTE} The left image is what the model receives. A model with discrete codes (a "
                            "VQ-VAE) shows the image's grid of codes first (one colour per code), then its "
                            "reconstruction from them.")
        go.click(self.reconstruct, [model, image, sketch], [seen, output], api_name="reconstruct", **self.ctx.compute)


def code_picture(codes: torch.Tensor, size: int, num_codes: int) -> torch.Tensor:
    """A grid of codes ``(h, w)`` as an RGB image ``(1, 3, size, size)``: one colour per code (hues spread by the
    golden ratio, so neighbouring indices differ), each code a square patch."""
    palette = torch.tensor([colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.95) for i in range(num_codes)])
    picture = palette[codes].permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(picture, size=(size, size), mode="nearest")
