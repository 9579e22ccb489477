"""What visitors send: number checks whose messages name the field and the cap, readable-image checks, the
upload and drawing components, and the conversion of any picture to what a model reads.

Pictures are laid out like the MNIST digits (see :func:`image_to_model_input`): alpha is flattened on white, a
light background (dark ink on paper, the sketchpad) is inverted to MNIST's white-on-black, and for one-channel
models an image that is not already the model's size is cropped to its ink, scaled to fit a 20/28 box and centred
by its centre of mass.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import logging
import math
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .limits import CAP_REASON, CAPPED_FIELDS, MAX_UPLOAD_BYTES, MAX_UPLOAD_SIDE, check_range

log = logging.getLogger("vaegan.demo")

#: What the page says about how an uploaded or drawn digit is read (:func:`image_to_model_input`).
INPUT_NOTE = """\
**How your image is read.** MNIST digits are white on black. An uploaded image or a drawing is flattened on
white (transparency), converted to the model's channels, and **inverted when its border is mostly light**
(dark ink on paper, the sketchpad's black pen on white). For one-channel models, an image that is not already
the model's size is then cropped to its ink, scaled to fit a 20x20 box (of 28) and centred by its centre of mass,
as the MNIST digits were. An image of exactly the model's size is used as it is (after the inversion check).
When both an upload and a drawing are given, the upload is used."""


def check_number(label: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    """``value`` as an int/float within ``[low, high]``, else a ``gr.Error`` naming ``label`` and the range."""
    try:
        return check_range(label, value, low, high, integer, CAP_REASON if label in CAPPED_FIELDS else "")
    except ValueError as err:
        raise gr.Error(str(err)) from None


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
        check_number(label, payload, low, high, integer=integer)
        return plain(self, payload)

    component.preprocess = types.MethodType(preprocess, component)
    return component


def too_large(what: str, width: int, height: int) -> str:
    """The message for a picture over the size caps."""
    return f"The {what} is {width}x{height} pixels; upload one at most {MAX_UPLOAD_SIDE} pixels on a side."


def check_picture_size(source: str | bytes, what: str) -> None:
    """Refuse a picture (a file path or its bytes) over the caps from its header alone, before any pixel is decoded.

    Decoding is what costs: a one-colour 13000x13000 PNG is 200 KB on disk and 500 MB in memory as RGB.
    """
    if isinstance(source, bytes) and len(source) > MAX_UPLOAD_BYTES:
        raise gr.Error(f"The {what} is {len(source)} bytes; upload one of at most {MAX_UPLOAD_BYTES // 2**20} MB.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
        except Image.DecompressionBombError:  # PIL's own guard, above 2 x Image.MAX_IMAGE_PIXELS
            raise gr.Error(f"The {what} has far more than {MAX_UPLOAD_SIDE}x{MAX_UPLOAD_SIDE} pixels; upload one "
                           f"at most {MAX_UPLOAD_SIDE} pixels on a side.") from None
    if max(width, height) > MAX_UPLOAD_SIDE:
        raise gr.Error(too_large(what, width, height))


def _pictures(component: Any, payload: Any) -> Iterator[str | bytes]:
    """The files (paths) or bytes a gradio image payload will decode: an upload, or a drawing's parts."""
    if payload is None:
        return
    parts = [payload]
    if hasattr(payload, "composite"):  # ImageEditor: its layers as files, or as blobs sent beforehand
        blobs = component.blob_storage.get(payload.id) if payload.id is not None else None
        source = blobs if blobs is not None else payload
        parts = [source.background, *(source.layers or []), source.composite]
    for part in parts:
        if isinstance(part, bytes):
            yield part
        elif getattr(part, "path", None):
            yield str(part.path)
        elif str(getattr(part, "url", None) or "").startswith("data:"):  # a picture sent inline, base64
            encoded = part.url.partition(",")[2]
            if len(encoded) * 3 // 4 > MAX_UPLOAD_BYTES:
                raise gr.Error(f"The picture sent is over {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller one.")
            try:
                data = base64.b64decode(encoded)
            except (binascii.Error, ValueError):
                raise gr.Error("The picture sent is not valid base64 data.") from None
            yield data


def readable_image(component: gr.Image | gr.ImageEditor, what: str) -> Any:
    """A picture over the size caps is refused from its header (before gradio decodes it), and a file PIL cannot
    read gets a clear message instead of a hidden server error."""
    plain = type(component).preprocess

    def preprocess(self: Any, payload: Any) -> Any:
        try:
            for picture in _pictures(self, payload):
                check_picture_size(picture, what)
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


def chosen_picture(upload: Any, sketch: Any, label: str) -> Image.Image:
    """The uploaded picture, else the drawing's composite; a ``gr.Error`` naming ``label`` when there is neither."""
    picture = upload if isinstance(upload, Image.Image) else None
    if picture is None and isinstance(sketch, dict):
        composite = sketch.get("composite")
        picture = composite if isinstance(composite, Image.Image) else None
    if picture is None:
        raise gr.Error(f"No {label}: upload a picture of a digit or draw one.")
    return picture


def model_input(upload: Any, sketch: Any, shape: tuple[int, int, int], label: str) -> torch.Tensor:
    """:func:`chosen_picture` converted by :func:`image_to_model_input`; its problems name ``label``."""
    picture = chosen_picture(upload, sketch, label)
    try:
        return image_to_model_input(picture, shape)
    except ValueError as err:
        message = str(err)
        raise gr.Error(f"{label[0].upper()}{label[1:]}: {message[0].lower()}{message[1:]}") from None


def image_to_model_input(image: Image.Image, shape: tuple[int, int, int]) -> torch.Tensor:
    """Any picture -> ``(C, H, W)`` float tensor in [0, 1] laid out like the model's training digits.

    Raises ``ValueError`` with a message for the user when the image is too large or blank.
    """
    channels, height, width = shape
    if max(image.size) > MAX_UPLOAD_SIDE:
        raise ValueError(too_large("image", image.width, image.height))
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
            values = frame_like_mnist(values, height, width)
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


def frame_like_mnist(values: np.ndarray, height: int, width: int) -> np.ndarray:
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
