"""The Explore tab (unconditional models with a flat 2-D latent): the held-out digits' latent codes as a scatter
coloured by digit, a click or the sliders decode a point, and the decoded manifold over the plotted range. The
scatter and the manifold of each model are computed once and cached; the first model's are part of the page."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..images import make_grid
from ..models import GenerativeModel
from .context import DemoContext
from .inputs import capped, check_number, user_errors
from .limits import LATENT_LIMIT, MANIFOLD_SIZE
from .outputs import InlinePNG, display_scale, encode_png, enlarged, inline_image
from .tabs import DemoTab

Range = tuple[tuple[float, float], tuple[float, float]]


@dataclass
class PlaneView:
    """A rendered latent-plane scatter and the map from its pixels to latent coordinates."""

    image: Image.Image
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    box: tuple[float, float, float, float]  # axes area in image pixels: left, top, right, bottom

    def to_latent(self, px: float, py: float) -> tuple[float, float] | None:
        left, top, right, bottom = self.box
        if not (left <= px <= right and top <= py <= bottom):
            return None
        x = self.xlim[0] + (px - left) / (right - left) * (self.xlim[1] - self.xlim[0])
        y = self.ylim[1] - (py - top) / (bottom - top) * (self.ylim[1] - self.ylim[0])
        return x, y

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        px = left + (x - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)
        py = top + (self.ylim[1] - y) / (self.ylim[1] - self.ylim[0]) * (bottom - top)
        return px, py

    def marked(self, x: float, y: float) -> Image.Image:
        picture = self.image.copy()
        px, py = self.to_pixel(x, y)
        left, top, right, bottom = self.box
        px, py = min(max(px, left), right), min(max(py, top), bottom)
        draw = ImageDraw.Draw(picture)
        draw.ellipse((px - 7, py - 7, px + 7, py + 7), outline=(0, 0, 0), width=3)
        draw.ellipse((px - 6, py - 6, px + 6, py + 6), outline=(255, 255, 255), width=1)
        draw.line((px - 11, py, px + 11, py), fill=(0, 0, 0), width=1)
        draw.line((px, py - 11, px, py + 11), fill=(0, 0, 0), width=1)
        return picture


class ExploreTab(DemoTab):
    """The latent plane of models whose latent is a flat 2-D vector."""

    title, tab_id, purpose = "Explore", "explore", "show a latent plane"
    needs = "latent_space"
    unavailable = ("None of the loaded models has a 2-D latent space, so there is no plane to explore. Load e.g. "
                   "`vaegan/mnist-vae`.")

    def __init__(self, ctx: DemoContext):
        super().__init__(ctx)
        self._latents: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._planes: dict[str, PlaneView] = {}
        self._manifolds: dict[str, Image.Image] = {}
        self._ranges: dict[str, Range] = {}
        self._pngs: dict[tuple[str, str], bytes] = {}
        self._lock = threading.RLock()  # one computation per model; concurrent requests wait for it

    def why_not(self, name: str, model: GenerativeModel) -> str | None:
        reason = super().why_not(name, model)
        if reason is None and model.latent_shape != (2,):
            shape = model.latent_shape
            size = (f"has {shape[0]} dimensions" if shape and len(shape) == 1 else
                    f"has latents of shape {tuple(shape)}" if shape else "is not a flat vector")
            reason = f"The latent space of {name} {size}; the latent plane needs a model with a 2-D latent space."
        return reason

    # ------------------------------------------------------------------ cached per model
    def heldout_latents(self, name: str, net: GenerativeModel) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Latents (posterior modes) and labels of the held-out digits, or None (GAN, or no held-out data)."""
        if not net.has_encoder:
            return None
        with self._lock:
            if name not in self._latents:
                try:
                    images, labels = self.ctx.heldout.get(net.image_shape)
                except ValueError:
                    return None
                with torch.inference_mode():
                    z = torch.cat([net.encode_images(chunk.to(net.device, net.dtype), class_labels=None).float().cpu()
                                   for chunk in images.split(256)])
                self._latents[name] = (z, labels)
            return self._latents[name]

    def plane_range(self, name: str) -> Range:
        """The part of the latent plane shown: the prior's +-3 sd and the held-out latents' 0.5-99.5 percentiles."""
        net = self.served(name)
        with self._lock:
            if name not in self._ranges:
                self._ranges[name] = self._range(name, net)
            return self._ranges[name]

    def _range(self, name: str, net: GenerativeModel) -> Range:
        spans = []
        if net.can_sample:  # an AE before fit_prior has no prior
            with torch.inference_mode():
                draws = net.prior_latents(4000, generator=torch.Generator().manual_seed(0)).float().cpu()
            spans.append((draws.mean(0) - 3 * draws.std(0), draws.mean(0) + 3 * draws.std(0)))
        found = self.heldout_latents(name, net)
        if found is not None:
            spans.append((torch.quantile(found[0], 0.005, dim=0), torch.quantile(found[0], 0.995, dim=0)))
        if not spans:
            spans.append((torch.full((2,), -3.0), torch.full((2,), 3.0)))
        low = torch.stack([span[0] for span in spans]).min(0).values
        high = torch.stack([span[1] for span in spans]).max(0).values
        pad = (high - low).clamp_min(1e-3) * 0.05
        low, high = (low - pad).tolist(), (high + pad).tolist()
        return (low[0], high[0]), (low[1], high[1])

    def plane(self, name: str) -> PlaneView:
        net = self.served(name)
        with self._lock:
            if name not in self._planes:
                xlim, ylim = self.plane_range(name)
                self._planes[name] = render_plane(self.heldout_latents(name, net), xlim, ylim, name)
            return self._planes[name]

    def manifold(self, name: str) -> Image.Image:
        net = self.served(name)
        with self._lock:
            if name not in self._manifolds:
                (x0, x1), (y0, y1) = self.plane_range(name)
                xs = torch.linspace(x0, x1, MANIFOLD_SIZE)
                ys = torch.linspace(y1, y0, MANIFOLD_SIZE)  # top row = largest z2, as in the plots
                grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
                latents = torch.stack([grid_x.flatten(), grid_y.flatten()], 1).to(net.device, net.dtype)
                with torch.inference_mode():
                    images = net.decode_latents(latents, class_labels=None).float().cpu()
                self._manifolds[name] = make_grid(images, nrow=MANIFOLD_SIZE, padding=0, scale=display_scale(
                    MANIFOLD_SIZE * images.shape[-1], target=440, limit=900))
            return self._manifolds[name]

    # ------------------------------------------------------------------ endpoints
    def png(self, name: str, what: str) -> bytes:
        """PNG bytes of ``name``'s ``"plane"`` or ``"manifold"`` picture, encoded once."""
        with self._lock:
            if (name, what) not in self._pngs:
                picture = self.plane(name).image if what == "plane" else self.manifold(name)
                self._pngs[name, what] = encode_png(picture)
            return self._pngs[name, what]

    @user_errors
    def latent_map(self, model: str) -> tuple[InlinePNG | str, InlinePNG | str]:
        """The held-out latents as a scatter over the plane, and the decoded 15x15 manifold."""
        files = self.ctx.files
        return (files.png_bytes(self.png(model, "plane"), "latent-plane.png"),
                files.png_bytes(self.png(model, "manifold"), "manifold.png"))

    @user_errors
    def decode_point(self, model: str, z1: float, z2: float) -> tuple[InlinePNG | str, InlinePNG | str]:
        """Decode the latent point (z1, z2); also returns the plane with the point marked."""
        decoded, marked = self._decode(model, z1, z2)
        return self.ctx.files.png(decoded, "decoded"), self.ctx.files.png(marked, "latent-plane")

    def _decode(self, model: str, z1: Any, z2: Any) -> tuple[Image.Image, Image.Image]:
        net = self.served(model)
        z1 = check_number("z1", z1, -LATENT_LIMIT, LATENT_LIMIT)
        z2 = check_number("z2", z2, -LATENT_LIMIT, LATENT_LIMIT)
        with torch.inference_mode():
            latent = torch.tensor([[z1, z2]], device=net.device, dtype=net.dtype)
            image = net.decode_latents(latent, class_labels=None).float().cpu()
        return enlarged(image, 224), self.plane(model).marked(z1, z2)

    @user_errors
    def pick_point(self, model: str, evt: gr.SelectData) -> tuple[Any, Any, Any, Any]:
        """A click on the plane: decode the point under the mouse and move the sliders there."""
        view = self.plane(model)
        index = evt.index if isinstance(evt.index, list | tuple) and len(evt.index) == 2 else None
        point = view.to_latent(float(index[0]), float(index[1])) if index is not None else None
        if point is None:
            gr.Warning("Click inside the plot area to choose a latent point.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        z1, z2 = round(point[0], 3), round(point[1], 3)
        decoded, marked = self.decode_point(model, z1, z2)
        return z1, z2, decoded, marked

    def slider_updates(self, model: str) -> tuple[Any, Any]:
        (x0, x1), (y0, y1) = self.plane_range(model)
        return (gr.Slider(minimum=round(x0, 3), maximum=round(x1, 3), value=round((x0 + x1) / 2, 3)),
                gr.Slider(minimum=round(y0, 3), maximum=round(y1, 3), value=round((y0 + y1) / 2, 3)))

    # ------------------------------------------------------------------ page
    def build(self, planes: list[tuple[str, str]], demo: gr.Blocks) -> None:
        ctx = self.ctx
        first = planes[0][1]
        # The sliders' own bounds (used by API calls) cover every 2-D model; the page narrows them to the chosen
        # model's range when it loads and when the model changes.
        ranges = [self.plane_range(name) for _, name in planes]
        x0, x1 = min(r[0][0] for r in ranges), max(r[0][1] for r in ranges)
        y0, y1 = min(r[1][0] for r in ranges), max(r[1][1] for r in ranges)
        gr.Markdown("Each dot is a held-out digit, placed at its latent code. **Click the plot** or move the "
                    "sliders to decode a point; the grid on the right decodes the whole plane, as in the textbook "
                    "figures.")
        with gr.Row():
            model = gr.Dropdown(planes, value=first, label="Model (2-D latent)", allow_custom_value=True, scale=2,
                                elem_id="explore-model")
            z1 = capped(gr.Slider(round(x0, 3), round(x1, 3), value=round((x0 + x1) / 2, 3), step=0.001,
                                  label="z1", scale=2))
            z2 = capped(gr.Slider(round(y0, 3), round(y1, 3), value=round((y0 + y1) / 2, 3), step=0.001,
                                  label="z2", scale=2))
        # The first model's plane and manifold are part of the page: no request is needed to see them.
        first_plane, first_manifold = self.latent_map(first)
        with gr.Row():
            plane = inline_image(first_plane, label="Latent plane (click to decode)", type="pil", format="png",
                                 interactive=False, elem_id="explore-plane", buttons=["download"])
            with gr.Column(scale=0, min_width=240):
                point = inline_image(label="Decoded point", format="png", interactive=False,
                                     elem_id="explore-point", elem_classes=["pixelated"], height=240, buttons=[])
            manifold = inline_image(first_manifold, label=f"Decoded {MANIFOLD_SIZE}x{MANIFOLD_SIZE} manifold",
                                    format="png", interactive=False, elem_id="explore-manifold",
                                    elem_classes=["pixelated"], buttons=["download", "fullscreen"])
        map_event = model.change(self.latent_map, model, [plane, manifold], api_name="latent_map", **ctx.compute)
        map_event.then(self.slider_updates, model, [z1, z2], **ctx.ui_only)
        for slider in (z1, z2):
            slider.release(self.decode_point, [model, z1, z2], [point, plane],
                           api_name="decode_point" if slider is z1 else False, **ctx.compute)
        plane.select(self.pick_point, model, [z1, z2, point, plane], api_visibility="private", **ctx.compute)
        demo.load(self.slider_updates, model, [z1, z2], **ctx.ui_only)


def render_plane(found: tuple[torch.Tensor, torch.Tensor] | None, xlim: tuple[float, float],
                 ylim: tuple[float, float], name: str) -> PlaneView:
    """Scatter of the held-out latents coloured by digit (matplotlib, Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 5.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.12, 0.1, 0.67, 0.78))
    if found is not None:
        z, labels = found[0].numpy(), found[1].numpy()
        scatter = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=9, alpha=0.85,
                             linewidths=0)
        colorbar = fig.colorbar(scatter, cax=fig.add_axes((0.83, 0.1, 0.035, 0.78)), ticks=range(10))
        colorbar.set_label("digit")
        ax.set_title(f"{name}: held-out digits in latent space", fontsize=10)
    else:
        ax.set_title(f"{name}: latent plane (click to decode)", fontsize=10)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.grid(alpha=0.25)
    canvas.draw()
    width, height = canvas.get_width_height()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    bbox = ax.get_window_extent()
    box = (bbox.x0, height - bbox.y1, bbox.x1, height - bbox.y0)
    return PlaneView(image=image, xlim=tuple(ax.get_xlim()), ylim=tuple(ax.get_ylim()), box=box)
