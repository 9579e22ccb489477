"""vaegan demo Space: sample, interpolate, explore and reconstruct with AE / VAE / GAN models.

Run locally::

    python spaces/demo/app.py --model vaegan/mnist-vae --model ./outputs/my-ae [--port 7860] [--host 127.0.0.1]

On a Space the models come from the ``VAEGAN_MODELS`` variable (comma-separated Hub ids or folders), else from
the ``models:`` list of this folder's README.md front matter, else from the official vaegan ids.

Tests build the UI with :func:`build_demo` and in-memory models.

Inputs (uploads and drawings) are converted to what the model reads; see :func:`image_to_model_input`:
alpha is flattened on white, a light background (dark ink on paper, the sketchpad) is inverted to MNIST's
white-on-black, and for one-channel models an image that is not already the model's size is cropped to its ink,
scaled to fit a 20/28 box and centred by its centre of mass, as the MNIST digits were.
"""

import argparse
import functools
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import types
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from vaegan import AutoModel, GenerativeModel
from vaegan.images import make_grid, save_gif

log = logging.getLogger("vaegan.space")

HERE = Path(__file__).resolve().parent
OFFICIAL_MODELS = ("vaegan/mnist-vae", "vaegan/mnist-vae-16d", "vaegan/mnist-ae", "vaegan/mnist-dcgan",
                   "vaegan/mnist-wgan-gp")
MODELS_ENV = "VAEGAN_MODELS"
HELDOUT_SOURCE = "mnist-5k"

# Caps on one request, so that one user cannot exhaust the CPU of the Space.
MAX_IMAGES = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_SEED = 2**31 - 1
MAX_TEMPERATURE = 2.0
MAX_EXAMPLE = 49
MAX_UPLOAD_SIDE = 4096
MANIFOLD_SIZE = 15
GIF_FRAME_MS = 90
LATENT_LIMIT = 1e4
DEFAULT_CONCURRENCY = 2   # model calls running at once, over all endpoints
DEFAULT_MAX_QUEUE = 64    # requests waiting beyond that are refused ("queue is full")
CAP_REASON = " (this Space caps requests so that one user cannot exhaust its CPU)"
SEEDS_INSTEAD = ", or interpolate between two seeds"

CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain !important; }
"""

INPUT_NOTE = """\
**How your image is read.** MNIST digits are white on black. An uploaded image or a drawing is flattened on
white (transparency), converted to the model's channels, and **inverted when its border is mostly light**
(dark ink on paper, the sketchpad's black pen on white). For one-channel models, an image that is not already
the model's size is then cropped to its ink, scaled to fit a 20x20 box (of 28) and centred by its centre of mass,
as the MNIST digits were. An image of exactly the model's size is used as it is (after the inversion check).
When both an upload and a drawing are given, the upload is used. The left image is what the model receives."""


# ----------------------------------------------------------------------------------------------------------------
# Image helpers (grids and GIFs come from vaegan.images)
# ----------------------------------------------------------------------------------------------------------------

GRID_PAD_VALUE = 0.2  # dark grey lines between the white-on-black digits


def display_scale(width: int, target: int = 360, limit: int = 1400) -> int:
    """Integer factor that brings a picture ``width`` pixels wide near ``target`` without passing ``limit``."""
    return max(1, min(8, math.ceil(target / max(1, width)), limit // max(1, width)))


def enlarged(images: torch.Tensor, target: int) -> Image.Image:
    """One image ``(1, C, H, W)`` (or a tile of several, no padding) scaled up with crisp pixels to ~``target``."""
    return make_grid(images, nrow=len(images), padding=0, scale=display_scale(images.shape[-1] * len(images),
                                                                                target=target))


def image_to_model_input(image: Image.Image, shape: tuple[int, int, int]) -> torch.Tensor:
    """Any picture -> ``(C, H, W)`` float tensor in [0, 1] laid out like the model's training digits.

    Raises ``ValueError`` with a message for the user when the image is too large or blank.
    """
    channels, height, width = shape
    if max(image.size) > MAX_UPLOAD_SIDE:
        raise ValueError(f"The image is {image.width}x{image.height} pixels; upload one at most "
                         f"{MAX_UPLOAD_SIDE} pixels on a side.")
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # first frame of an animation
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if gray.size == 0:
        raise ValueError("The image is empty.")
    border = max(1, min(gray.shape) // 14)
    frame = np.concatenate([gray[:border].ravel(), gray[-border:].ravel(), gray[:, :border].ravel(),
                            gray[:, -border:].ravel()])
    invert = float(frame.mean()) > 0.5
    if channels == 1:
        values = 1.0 - gray if invert else gray
        if values.max() - values.min() < 0.1 or values.max() < 0.2:
            raise ValueError("The image is blank: draw or upload a digit (dark on light or light on dark).")
        if values.shape != (height, width):
            values = _frame_like_mnist(values, height, width)
        return torch.from_numpy(values.copy())[None]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if invert:
        rgb = 1.0 - rgb
    tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    if tensor.shape[1:] != (height, width):
        tensor = F.interpolate(tensor[None], size=(height, width), mode="bilinear", antialias=True,
                               align_corners=False)[0]
    if channels != 3:  # a model with another channel count: replicate / cut the grey level
        tensor = tensor.mean(0, keepdim=True).expand(channels, height, width)
    return tensor.clamp(0, 1).contiguous()


def _frame_like_mnist(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop to the ink, fit in a 20/28 box keeping the aspect ratio, centre by the centre of mass."""
    ink = values > 0.15 * float(values.max())
    ys, xs = np.nonzero(ink)
    crop = values[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = max(1, round(min(height, width) * 20 / 28))
    ratio = box / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * ratio)), max(1, round(crop.shape[1] * ratio))
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.asarray(small, dtype=np.float32) / 255.0
    total = float(digit.sum()) or 1.0
    cy = float((digit.sum(1) * np.arange(new_h)).sum()) / total
    cx = float((digit.sum(0) * np.arange(new_w)).sum()) / total
    top = int(np.clip(round((height - 1) / 2 - cy), 0, height - new_h))
    left = int(np.clip(round((width - 1) / 2 - cx), 0, width - new_w))
    out = np.zeros((height, width), dtype=np.float32)
    out[top:top + new_h, left:left + new_w] = digit
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Input components whose range errors name the field and the cap
# ----------------------------------------------------------------------------------------------------------------


CAPPED_FIELDS = ("Number of images", "Steps")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def _check_number(label: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise gr.Error(f"{label} must be a number, got {value!r}.")
    if integer and value != int(value):
        raise gr.Error(f"{label} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        reason = CAP_REASON if label in CAPPED_FIELDS else ""
        raise gr.Error(f"{label} must be between {_num(low)} and {_num(high)}, got {_num(value)}{reason}.")
    return int(value) if integer else float(value)


# gradio's own checks run before the handlers and say only "Value 65 is greater than maximum value 64." or, for a
# file that is not an image, nothing at all (the error is hidden from the user). These wrappers replace the
# preprocess method of one component instance (subclassing a component would make gradio write a .pyi file
# beside this one) so that the message names the field, the allowed range and the cap.


def capped(component: gr.Slider | gr.Number) -> Any:
    """Out-of-range values get a message naming the field and the range."""
    plain = type(component).preprocess

    def preprocess(self: Any, payload: Any) -> Any:
        label = str(self.label or "Value")
        if payload is None:
            raise gr.Error(f"{label} is empty; enter a number.")
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        step = getattr(self, "step", None)
        integer = self.precision == 0 if step is None else float(step).is_integer() and float(low).is_integer()
        _check_number(label, payload, low, high, integer=integer)
        return plain(self, payload)

    component.preprocess = types.MethodType(preprocess, component)
    return component


def readable_image(component: gr.Image | gr.ImageEditor, what: str) -> Any:
    """A file PIL cannot read gets a clear message instead of a hidden server error."""
    plain = type(component).preprocess

    def preprocess(self: Any, payload: Any) -> Any:
        try:
            return plain(self, payload)
        except gr.Error:
            raise
        except Exception as err:  # PIL.UnidentifiedImageError, truncated files, decompression bombs ...
            raise gr.Error(f"The {what} is not an image this Space can read; use a PNG, JPEG, WebP, BMP or GIF "
                           f"picture of a digit ({type(err).__name__}).") from None

    component.preprocess = types.MethodType(preprocess, component)
    return component


def digit_upload(label: str, **kwargs: Any) -> gr.Image:
    """Upload box for a digit picture, passed on as a PIL image in its own mode (alpha kept)."""
    image = gr.Image(label=label, type="pil", image_mode=None, format="png", sources=["upload", "clipboard"],
                     **kwargs)
    return readable_image(image, "uploaded file")


def digit_sketchpad(label: str, **kwargs: Any) -> gr.ImageEditor:
    """A black pen on a white 280x280 canvas (the app inverts it to MNIST's white on black)."""
    editor = gr.ImageEditor(
        label=label, sources=(), type="pil", image_mode="RGBA", format="png", canvas_size=(280, 280),
        fixed_canvas=True, layers=False, transforms=(),
        brush=gr.Brush(default_size=14, colors=["#000000"], color_mode="fixed"), **kwargs)
    return readable_image(editor, "drawing")


# ----------------------------------------------------------------------------------------------------------------
# Models and held-out data
# ----------------------------------------------------------------------------------------------------------------


def _describe(name: str, model: GenerativeModel) -> str:
    c, h, w = model.image_shape
    return f"{name} ({type(model).__name__}, {model.latent_dim}-D latent, {h}x{w}x{c})"


class HeldOut:
    """Held-out images and labels, adapted (and cached) for each model's image shape."""

    def __init__(self, source: Any):
        self.source = source
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._base: tuple[torch.Tensor, torch.Tensor] | None = None
        self._error: str | None = None if source is not None else "no held-out data was configured"
        self._lock = threading.Lock()

    def get(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, C, H, W) in [0, 1], labels (N,))``; ``ValueError`` when there is no held-out data."""
        with self._lock:
            if shape not in self._cache and self._error is None:
                try:
                    self._cache[shape] = self._load(shape)
                except Exception as err:  # missing optional dependency, unreadable source ...
                    log.warning("held-out data unavailable: %s", err)
                    self._error = f"{type(err).__name__}: {err}"
            if shape not in self._cache:
                raise ValueError(f"The held-out digits are not available in this Space ({self._error}); use "
                                 "seeds or your own images instead.")
            return self._cache[shape]

    def _load(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        channels, height, width = shape
        if isinstance(self.source, str):
            from vaegan.data import load_image_dataset

            dataset = load_image_dataset(self.source, image_size=height, channels=channels, split="test")
            return _stack(dataset)
        if self._base is None:
            self._base = _stack(self.source)
        images, labels = self._base
        if images.shape[1] != channels:
            images = images.mean(1, keepdim=True).expand(-1, channels, -1, -1) if channels != 1 \
                else images.mean(1, keepdim=True)
        if tuple(images.shape[2:]) != (height, width):
            images = F.interpolate(images, size=(height, width), mode="bilinear", antialias=True,
                                   align_corners=False)
        return images.clamp(0, 1).contiguous(), labels


def _stack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError("the held-out dataset is empty")
    images = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    labels = torch.tensor([int(y) for _, y in items], dtype=torch.long)
    return images, labels


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


# ----------------------------------------------------------------------------------------------------------------
# The application logic (one instance per demo)
# ----------------------------------------------------------------------------------------------------------------


def user_errors(fn: Callable) -> Callable:
    """Turn any failure of a request into a ``gr.Error`` with a readable message, never a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, RuntimeError, NotImplementedError, KeyError, OSError) as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            raise gr.Error(str(message)) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server while handling this request; it was logged. "
                           "Try other settings.") from None

    return wrapper


class SpaceApp:
    """Everything the endpoints compute, independent of the Blocks layout (so tests can call it directly)."""

    def __init__(self, models: dict[str, GenerativeModel], heldout: Any = HELDOUT_SOURCE):
        if not models:
            raise ValueError("build_demo needs at least one model.")
        self.models = dict(models)
        for model in self.models.values():
            model.eval()
            model.requires_grad_(False)
        self.heldout = heldout if isinstance(heldout, HeldOut) else HeldOut(heldout)
        self._latents: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._planes: dict[str, PlaneView] = {}
        self._manifolds: dict[str, Image.Image] = {}
        self._ranges: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self.tmp = Path(tempfile.mkdtemp(prefix="vaegan-space-"))  # GIFs, until gradio has copied them
        weakref.finalize(self, shutil.rmtree, str(self.tmp), True)

    # ------------------------------------------------------------------ lookups
    @property
    def names(self) -> list[str]:
        return list(self.models)

    def choices(self, predicate: Callable[[GenerativeModel], bool] = lambda m: True) -> list[tuple[str, str]]:
        return [(_describe(name, m), name) for name, m in self.models.items() if predicate(m)]

    def model(self, name: Any) -> GenerativeModel:
        if not isinstance(name, str) or name not in self.models:
            raise gr.Error(f"Unknown model {name!r}. Choose one of: {', '.join(self.models)}.")
        return self.models[name]

    def encoder_model(self, name: str, what: str, alternative: str = "") -> GenerativeModel:
        model = self.model(name)
        if not model.has_encoder:
            raise gr.Error(f"{name} is a {type(model).__name__}, which has no encoder, so it cannot {what}. "
                           f"Choose an AE or a VAE{alternative}.")
        return model

    def plane_model(self, name: str) -> GenerativeModel:
        model = self.model(name)
        if model.latent_dim != 2:
            raise gr.Error(f"The latent space of {name} has {model.latent_dim} dimensions; the latent plane needs a "
                           "model with a 2-D latent space.")
        return model

    # ------------------------------------------------------------------ Sample
    @user_errors
    def sample(self, model: str, num_images: float, seed: float, temperature: float) -> Image.Image:
        net = self.model(model)
        n = _check_number("Number of images", num_images, 1, MAX_IMAGES, integer=True)
        seed = _check_number("Seed", seed, 0, MAX_SEED, integer=True)
        temperature = _check_number("Temperature", temperature, 0.0, MAX_TEMPERATURE)
        with torch.inference_mode():
            latents = self._prior(model, net, n, seed, temperature)
            images = net.decode_latents(latents)
        # Native resolution: a small PNG is quick to encode and send; the page scales it up (CSS, pixelated).
        return make_grid(images, nrow=math.ceil(math.sqrt(n)), pad_value=GRID_PAD_VALUE)

    def _prior(self, name: str, net: GenerativeModel, n: int, seed: int, temperature: float) -> torch.Tensor:
        generator = torch.Generator(device=net.device).manual_seed(seed)
        try:
            return net.prior_latents(n, generator=generator, temperature=temperature)
        except RuntimeError as err:  # an AE before fit_prior
            raise gr.Error(f"{name} cannot sample: {err}") from None

    # ------------------------------------------------------------------ Interpolate
    @user_errors
    def interpolate(self, model: str, endpoints: str, seed_a: float, seed_b: float, digit_a: Any, digit_b: Any,
                    example: float, image_a: Any, image_b: Any, sketch_a: Any, sketch_b: Any, steps: float,
                    mode: str) -> tuple[Image.Image, str, str]:
        net = self.model(model)
        steps = _check_number("Steps", steps, MIN_STEPS, MAX_STEPS, integer=True)
        if mode not in ("slerp", "lerp"):
            raise gr.Error(f"Interpolation mode must be 'slerp' or 'lerp', got {mode!r}.")
        if endpoints == "seeds":
            seed_a = _check_number("Seed A", seed_a, 0, MAX_SEED, integer=True)
            seed_b = _check_number("Seed B", seed_b, 0, MAX_SEED, integer=True)
            with torch.inference_mode():
                start = self._prior(model, net, 1, seed_a, 1.0)[0]
                end = self._prior(model, net, 1, seed_b, 1.0)[0]
        elif endpoints == "digits":
            net = self.encoder_model(model, "interpolate between digits", SEEDS_INSTEAD)
            example = _check_number("Example", example, 0, MAX_EXAMPLE, integer=True)
            start = self.heldout_digit(net, digit_a, example, "Digit A")
            end = self.heldout_digit(net, digit_b, example, "Digit B")
        elif endpoints == "images":
            net = self.encoder_model(model, "interpolate between images", SEEDS_INSTEAD)
            start = self.user_image(net, image_a, sketch_a, "image A")
            end = self.user_image(net, image_b, sketch_b, "image B")
        else:
            raise gr.Error(f"Interpolate between 'seeds', 'digits' or 'images', not {endpoints!r}.")
        path = net.interpolate(start, end, steps=steps, mode=mode)
        width = steps * (path.shape[-1] + 2) + 2
        strip = make_grid(path, nrow=steps, pad_value=GRID_PAD_VALUE, scale=display_scale(width, 700, 1400))
        gif = save_gif(path, self._new_file("interpolation.gif"), duration_ms=GIF_FRAME_MS,
                       scale=display_scale(path.shape[-1], target=160))
        return strip, str(gif), str(gif)

    def heldout_digit(self, net: GenerativeModel, digit: Any, example: int, label: str) -> torch.Tensor:
        try:
            digit = int(digit)
        except (TypeError, ValueError):
            raise gr.Error(f"{label} must be a digit from 0 to 9, got {digit!r}.") from None
        if not 0 <= digit <= 9:
            raise gr.Error(f"{label} must be a digit from 0 to 9, got {digit}.")
        images, labels = self.heldout.get(net.image_shape)
        matches = torch.nonzero(labels == digit).flatten()
        if len(matches) == 0:
            raise gr.Error(f"The held-out data has no digit {digit}.")
        return images[int(matches[example % len(matches)])]

    def user_image(self, net: GenerativeModel, upload: Any, sketch: Any, label: str) -> torch.Tensor:
        picture = upload if isinstance(upload, Image.Image) else None
        if picture is None and isinstance(sketch, dict):
            composite = sketch.get("composite")
            picture = composite if isinstance(composite, Image.Image) else None
        if picture is None:
            raise gr.Error(f"No {label}: upload a picture of a digit or draw one.")
        try:
            return image_to_model_input(picture, net.image_shape)
        except ValueError as err:
            message = str(err)
            raise gr.Error(f"{label[0].upper()}{label[1:]}: {message[0].lower()}{message[1:]}") from None

    def _new_file(self, name: str) -> Path:
        for old in self.tmp.iterdir():  # keep the scratch folder small: GIFs older than 10 minutes go
            try:
                if old.is_dir() and time.time() - old.stat().st_mtime > 600:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:  # another request removed it first
                pass
        return Path(tempfile.mkdtemp(dir=self.tmp)) / name

    # ------------------------------------------------------------------ Reconstruct
    @user_errors
    def reconstruct(self, model: str, image: Any, sketch: Any) -> tuple[Image.Image, Image.Image]:
        net = self.encoder_model(model, "reconstruct images")
        x = self.user_image(net, image, sketch, "image")
        with torch.inference_mode():
            recon = net.decode_latents(net.encode_images(x[None].to(net.device, net.dtype)))
        return enlarged(x[None], 224), enlarged(recon, 224)

    # ------------------------------------------------------------------ Explore
    def heldout_latents(self, name: str, net: GenerativeModel) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Latents (posterior modes) and labels of the held-out digits, or None (GAN, or no held-out data)."""
        if not net.has_encoder:
            return None
        with self._lock:
            if name not in self._latents:
                try:
                    images, labels = self.heldout.get(net.image_shape)
                except ValueError:
                    return None
                with torch.inference_mode():
                    z = torch.cat([net.encode_images(chunk.to(net.device, net.dtype)).float().cpu()
                                   for chunk in images.split(256)])
                self._latents[name] = (z, labels)
            return self._latents[name]

    def plane_range(self, name: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """The part of the latent plane shown: the prior's +-3 sd and the held-out latents' 0.5-99.5 percentiles."""
        net = self.plane_model(name)
        with self._lock:
            if name in self._ranges:
                return self._ranges[name]
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
        with self._lock:
            self._ranges[name] = (low[0], high[0]), (low[1], high[1])
            return self._ranges[name]

    def plane(self, name: str) -> PlaneView:
        with self._lock:
            cached = self._planes.get(name)
        if cached is not None:
            return cached
        net = self.plane_model(name)
        xlim, ylim = self.plane_range(name)
        view = _render_plane(self.heldout_latents(name, net), xlim, ylim, name)
        with self._lock:
            self._planes[name] = view
        return view

    @user_errors
    def latent_map(self, model: str) -> tuple[Image.Image, Image.Image]:
        """The held-out latents as a scatter over the plane, and the decoded 15x15 manifold."""
        view = self.plane(model)
        return view.image, self.manifold(model)

    def manifold(self, name: str) -> Image.Image:
        with self._lock:
            cached = self._manifolds.get(name)
        if cached is not None:
            return cached
        net = self.plane_model(name)
        (x0, x1), (y0, y1) = self.plane_range(name)
        xs = torch.linspace(x0, x1, MANIFOLD_SIZE)
        ys = torch.linspace(y1, y0, MANIFOLD_SIZE)  # top row = largest z2, as in the plots
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        latents = torch.stack([grid_x.flatten(), grid_y.flatten()], 1).to(net.device, net.dtype)
        with torch.inference_mode():
            images = net.decode_latents(latents)
        picture = make_grid(images, nrow=MANIFOLD_SIZE, padding=0,
                            scale=display_scale(MANIFOLD_SIZE * images.shape[-1], target=440, limit=900))
        with self._lock:
            self._manifolds[name] = picture
        return picture

    @user_errors
    def decode_point(self, model: str, z1: float, z2: float) -> tuple[Image.Image, Image.Image]:
        """Decode the latent point (z1, z2); also returns the plane with the point marked."""
        net = self.plane_model(model)
        z1 = _check_number("z1", z1, -LATENT_LIMIT, LATENT_LIMIT)
        z2 = _check_number("z2", z2, -LATENT_LIMIT, LATENT_LIMIT)
        with torch.inference_mode():
            image = net.decode_latents(torch.tensor([[z1, z2]], device=net.device, dtype=net.dtype))
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

    def warm_up(self) -> None:
        for net in self.models.values():
            with torch.inference_mode():
                net.decode_latents(torch.zeros(2, net.latent_dim, device=net.device, dtype=net.dtype))


def _render_plane(found: tuple[torch.Tensor, torch.Tensor] | None, xlim: tuple[float, float],
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


# ----------------------------------------------------------------------------------------------------------------
# The UI
# ----------------------------------------------------------------------------------------------------------------


def build_demo(models: dict[str, GenerativeModel], heldout: Any = HELDOUT_SOURCE, *,
               concurrency_limit: int = DEFAULT_CONCURRENCY, max_queue: int = DEFAULT_MAX_QUEUE,
               title: str = "vaegan: AE, VAE and GAN explorer") -> gr.Blocks:
    """The demo for ``models`` (``{name: model}``).

    ``heldout`` is a ``vaegan.data`` source string (default ``"mnist-5k"``, test split), a dataset of
    ``(image [0,1] CHW, label)`` items, or None (no held-out digits). Model calls share one pool of
    ``concurrency_limit`` workers; at most ``max_queue`` requests wait. Public API endpoints: ``/sample``,
    ``/interpolate``, ``/latent_map``, ``/decode_point``, ``/reconstruct``.
    """
    app = SpaceApp(models, heldout)
    app.warm_up()
    compute = {"concurrency_limit": concurrency_limit, "concurrency_id": "model"}
    ui_only = {"queue": False, "api_visibility": "private", "show_progress": "hidden"}
    all_models = app.choices()
    encoders = app.choices(lambda model: model.has_encoder)
    planes = app.choices(lambda m: m.latent_dim == 2)
    first = app.names[0]

    with gr.Blocks(title=title, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"# {title}\nGenerative models made with [vaegan](https://github.com/vaegan/vaegan): "
                    "sample them, walk between two points of their latent space, explore a 2-D latent plane, "
                    "and reconstruct your own digits.")
        with gr.Tabs():
            # -------------------------------------------------------------- Sample
            with gr.Tab("Sample", id="sample"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        s_model = gr.Dropdown(all_models, value=first, label="Model", allow_custom_value=True)
                        s_n = capped(gr.Slider(1, MAX_IMAGES, value=16, step=1, label="Number of images"))
                        s_seed = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"))
                        s_temp = capped(gr.Slider(0.0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature"))
                        s_go = gr.Button("Generate", variant="primary", elem_id="sample-button")
                        gr.Markdown("The same seed gives the same images. Temperature scales the prior's spread "
                                    "(below 1: more typical, less varied). An AE samples from the Gaussian fitted "
                                    "to its training latents.")
                    with gr.Column(scale=2):
                        s_out = gr.Image(label="Samples", format="png", interactive=False, height=440,
                                         buttons=["download", "fullscreen"], elem_id="sample-output",
                                         elem_classes=["pixelated"])
                s_go.click(app.sample, [s_model, s_n, s_seed, s_temp], s_out, api_name="sample", **compute)

            # -------------------------------------------------------------- Interpolate
            with gr.Tab("Interpolate", id="interpolate"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=280):
                        i_model = gr.Dropdown(all_models, value=first, label="Model", allow_custom_value=True)
                        i_kind = gr.Radio([("Two seeds", "seeds"), ("Two held-out digits (AE/VAE)", "digits"),
                                           ("Two images: upload or draw (AE/VAE)", "images")], value="seeds",
                                          label="Interpolate between")
                        with gr.Row(visible=True) as seeds_row:
                            i_seed_a = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED,
                                                    label="Seed A"))
                            i_seed_b = capped(gr.Number(value=1, precision=0, minimum=0, maximum=MAX_SEED,
                                                    label="Seed B"))
                        with gr.Row(visible=False) as digits_row:
                            i_digit_a = gr.Dropdown([str(d) for d in range(10)], value="3", label="Digit A")
                            i_digit_b = gr.Dropdown([str(d) for d in range(10)], value="8", label="Digit B")
                            i_example = capped(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_EXAMPLE,
                                                     label="Example"))
                        i_steps = capped(gr.Slider(MIN_STEPS, MAX_STEPS, value=10, step=1, label="Steps"))
                        i_mode = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                          info="slerp follows the sphere where Gaussian latents live; "
                                               "lerp is the straight line")
                        i_go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
                    with gr.Column(scale=2):
                        with gr.Row(visible=False) as images_row:
                            with gr.Column():
                                i_image_a = digit_upload("Image A (upload)", height=180)
                                i_sketch_a = digit_sketchpad("...or draw A (pick the pen)", height=300)
                            with gr.Column():
                                i_image_b = digit_upload("Image B (upload)", height=180)
                                i_sketch_b = digit_sketchpad("...or draw B (pick the pen)", height=300)
                        i_strip = gr.Image(label="Path from A to B", format="png", interactive=False, height=150,
                                           elem_id="interpolate-strip", elem_classes=["pixelated"],
                                           buttons=["download", "fullscreen"])
                        with gr.Row():
                            i_gif = gr.Image(label="Animation", type="filepath", interactive=False,
                                             elem_id="interpolate-gif", elem_classes=["pixelated"],
                                             buttons=["download"], height=200)
                            i_file = gr.File(label="Download the GIF", interactive=False)
                i_kind.change(lambda kind: (gr.Row(visible=kind == "seeds"), gr.Row(visible=kind == "digits"),
                                            gr.Row(visible=kind == "images")),
                              i_kind, [seeds_row, digits_row, images_row], **ui_only)
                i_go.click(app.interpolate,
                           [i_model, i_kind, i_seed_a, i_seed_b, i_digit_a, i_digit_b, i_example, i_image_a,
                            i_image_b, i_sketch_a, i_sketch_b, i_steps, i_mode],
                           [i_strip, i_gif, i_file], api_name="interpolate", **compute)

            # -------------------------------------------------------------- Explore
            with gr.Tab("Explore", id="explore"):
                if not planes:
                    gr.Markdown("None of the loaded models has a 2-D latent space, so there is no plane to "
                                "explore. Load e.g. `vaegan/mnist-vae`.")
                else:
                    first_plane = planes[0][1]
                    # The sliders' own bounds (used by API calls) cover every 2-D model; the page narrows
                    # them to the chosen model's range when it loads and when the model changes.
                    ranges = [app.plane_range(name) for _, name in planes]
                    x0, x1 = min(r[0][0] for r in ranges), max(r[0][1] for r in ranges)
                    y0, y1 = min(r[1][0] for r in ranges), max(r[1][1] for r in ranges)
                    gr.Markdown("Each dot is a held-out digit, placed at its latent code. **Click the plot** or "
                                "move the sliders to decode a point; the grid on the right decodes the whole "
                                "plane, as in the textbook figures.")
                    with gr.Row():
                        e_model = gr.Dropdown(planes, value=first_plane, label="Model (2-D latent)",
                                              allow_custom_value=True, scale=2)
                        e_z1 = capped(gr.Slider(round(x0, 3), round(x1, 3), value=round((x0 + x1) / 2, 3),
                                            step=0.001, label="z1", scale=2))
                        e_z2 = capped(gr.Slider(round(y0, 3), round(y1, 3), value=round((y0 + y1) / 2, 3),
                                            step=0.001, label="z2", scale=2))
                    with gr.Row():
                        e_plane = gr.Image(label="Latent plane (click to decode)", type="pil", format="png",
                                           interactive=False, elem_id="explore-plane", buttons=["download"])
                        with gr.Column(scale=0, min_width=240):
                            e_point = gr.Image(label="Decoded point", format="png", interactive=False,
                                               elem_id="explore-point", elem_classes=["pixelated"], height=240,
                                               buttons=[])
                        e_manifold = gr.Image(label=f"Decoded {MANIFOLD_SIZE}x{MANIFOLD_SIZE} manifold",
                                              format="png", interactive=False, elem_id="explore-manifold",
                                              elem_classes=["pixelated"], buttons=["download", "fullscreen"])
                    map_event = e_model.change(app.latent_map, e_model, [e_plane, e_manifold],
                                               api_name="latent_map", **compute)
                    map_event.then(app.slider_updates, e_model, [e_z1, e_z2], **ui_only)
                    for slider in (e_z1, e_z2):
                        slider.release(app.decode_point, [e_model, e_z1, e_z2], [e_point, e_plane],
                                       api_name="decode_point" if slider is e_z1 else False, **compute)
                    e_plane.select(app.pick_point, e_model, [e_z1, e_z2, e_point, e_plane],
                                   api_visibility="private", **compute)
                    demo.load(app.latent_map, e_model, [e_plane, e_manifold], api_visibility="private",
                              **compute).then(app.slider_updates, e_model, [e_z1, e_z2], **ui_only)

            # -------------------------------------------------------------- Reconstruct
            with gr.Tab("Reconstruct", id="reconstruct"):
                if not encoders:
                    gr.Markdown("None of the loaded models has an encoder (AE or VAE), so nothing to reconstruct.")
                else:
                    with gr.Row():
                        with gr.Column():
                            r_model = gr.Dropdown(encoders, value=encoders[0][1], label="Model (AE or VAE)",
                                                  allow_custom_value=True)
                            r_image = digit_upload("Upload a digit", height=200)
                            r_sketch = digit_sketchpad("...or draw one (pick the pen)", height=320,
                                                       elem_id="reconstruct-sketch")
                            r_go = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")
                        with gr.Column():
                            with gr.Row():
                                r_input = gr.Image(label="What the model sees", format="png", interactive=False,
                                                   elem_id="reconstruct-input", elem_classes=["pixelated"],
                                                   buttons=[])
                                r_output = gr.Image(label="Reconstruction", format="png", interactive=False,
                                                    elem_id="reconstruct-output", elem_classes=["pixelated"],
                                                    buttons=["download"])
                            gr.Markdown(INPUT_NOTE)
                    r_go.click(app.reconstruct, [r_model, r_image, r_sketch], [r_input, r_output],
                               api_name="reconstruct", **compute)

        gr.Markdown(f"Limits per request: {MAX_IMAGES} images, {MAX_STEPS} interpolation steps; "
                    f"{concurrency_limit} model call(s) run at once and up to {max_queue} wait in the queue.")

    # Queue-position estimates every 2 s rather than a broadcast to every waiting client at each job start.
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit, status_update_rate=2)
    demo.vaegan_app = app  # for tests and scripts
    return demo


# ----------------------------------------------------------------------------------------------------------------
# Command line / Space entry point
# ----------------------------------------------------------------------------------------------------------------


def readme_models(readme: Path = HERE / "README.md") -> list[str]:
    """The ``models:`` list of the Space README's front matter (empty if absent)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return []
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not match:
        return []
    import yaml

    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return []
    models = data.get("models") or []
    return [str(m) for m in models] if isinstance(models, list) else []


def model_specs(cli: Sequence[str] | None, environ: dict[str, str] | None = None) -> list[str]:
    """``--model`` values, else ``$VAEGAN_MODELS`` (comma-separated), else the README's, else the official ids."""
    environ = os.environ if environ is None else environ
    if cli:
        return [spec for value in cli for spec in value.split(",") if spec.strip()]
    if environ.get(MODELS_ENV, "").strip():
        return [spec.strip() for spec in environ[MODELS_ENV].split(",") if spec.strip()]
    return readme_models() or list(OFFICIAL_MODELS)


def default_model_name(source: str) -> str:
    """A folder's name (its parent's for a trainer's ``OUTPUT/model``); a Hub id as it is."""
    path = Path(source)
    if not path.exists():
        return source
    path = path.resolve()
    return path.parent.name if path.name == "model" and path.parent.name else path.name


def load_models(specs: Sequence[str], loader: Callable[[str], GenerativeModel] = AutoModel.from_pretrained,
                ) -> dict[str, GenerativeModel]:
    """Load ``NAME=PATH_OR_ID`` / ``PATH_OR_ID`` specs; a model that fails to load is skipped with a log line."""
    models: dict[str, GenerativeModel] = {}
    for spec in specs:
        name, _, source = spec.strip().rpartition("=") if "=" in spec else ("", "", spec.strip())
        name = name or default_model_name(source)
        if name in models:  # e.g. two trainer outputs, both called .../model
            name = f"{name}-{sum(n == name or n.startswith(f'{name}-') for n in models) + 1}"
        try:
            models[name] = loader(source)
            log.info("loaded %s from %s", name, source)
        except Exception as err:  # report and go on with the others
            log.error("could not load model %s: %s: %s", source, type(err).__name__, err)
    if not models:
        raise SystemExit(f"No model could be loaded from {list(specs)}; pass --model PATH_OR_HUB_ID or set "
                         f"{MODELS_ENV}.")
    return models


def configure_torch(threads: int | None) -> int:
    """Cap torch's CPU threads (``VAEGAN_TORCH_THREADS``, default 1).

    One thread per model call: these models are small, so intra-op threads mostly add synchronisation, and the
    ``concurrency`` workers already use the cores.
    """
    threads = threads or int(os.environ.get("VAEGAN_TORCH_THREADS", 0)) or 1
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return threads


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", metavar="[NAME=]PATH_OR_HUB_ID",
                        help=f"a model folder or Hub id (repeat for several); default: ${MODELS_ENV}, the README's "
                             "models, or the official ones")
    parser.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or "
                                                     "127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--heldout", default=os.environ.get("VAEGAN_HELDOUT", HELDOUT_SOURCE),
                        help="vaegan.data source of the held-out digits, or 'none' (default: mnist-5k)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("VAEGAN_CONCURRENCY",
                                                                              DEFAULT_CONCURRENCY)),
                        help="model calls running at once")
    parser.add_argument("--max-queue", type=int, default=int(os.environ.get("VAEGAN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
                        help="requests allowed to wait")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    configure_torch(args.threads)
    models = load_models(model_specs(args.model))
    heldout = None if str(args.heldout).lower() in ("", "none") else args.heldout
    demo = build_demo(models, heldout=heldout, concurrency_limit=args.concurrency, max_queue=args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, css=CSS, theme=gr.themes.Soft(), show_error=False,
                footer_links=["api"])


if __name__ == "__main__":
    sys.exit(main())
