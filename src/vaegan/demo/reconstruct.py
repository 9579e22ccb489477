"""The Reconstruct tab (models that reconstruct, e.g. with an encoder): upload or draw a digit and see what the
model makes of it."""

from __future__ import annotations

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
        files = self.ctx.files
        return files.png(enlarged(x[None], 224), "input"), files.png(enlarged(recon, 224), "reconstruction")

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
                gr.Markdown(f"{INPUT_NOTE} The left image is what the model receives.")
        go.click(self.reconstruct, [model, image, sketch], [seen, output], api_name="reconstruct", **self.ctx.compute)
