"""Caps on one request, so that one visitor cannot exhaust the CPU of a Space, and the defaults of the page; the
looser caps of ``vaegan sample`` / ``vaegan interpolate`` (the user's own machine), and the check they all use."""

from __future__ import annotations

import math
from typing import Any

from ..models.validation import MAX_SAMPLE_TEMPERATURE

MAX_IMAGES = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_SEED = 2**31 - 1
MAX_TEMPERATURE = MAX_SAMPLE_TEMPERATURE
MAX_EXAMPLE = 49
MAX_COMPLETIONS = 16  # drawn pixel by pixel: ~1 s for 16 completions of a 28x28 digit by a default PixelCNN
MAX_UPLOAD_SIDE = 4096         # pixels on either side of an uploaded picture: 4096x4096 RGBA decodes to 64 MiB
MAX_UPLOAD_PIXELS = MAX_UPLOAD_SIDE**2
MAX_UPLOAD_BYTES = 10 * 2**20  # one uploaded file (gradio refuses larger ones before storing them)
LATENT_LIMIT = 1e4
MANIFOLD_SIZE = 15
GIF_FRAME_MS = 90

DEFAULT_IMAGES = 16
DEFAULT_SEED = 0
DEFAULT_TEMPERATURE = 1.0
DEFAULT_COMPLETIONS = 8

DEFAULT_CONCURRENCY = 2   # model calls running at once, over all endpoints
DEFAULT_MAX_QUEUE = 64    # requests waiting beyond that are refused ("queue is full")

#: ``vaegan sample -n`` (with ``--all-classes``: per class) and ``vaegan interpolate --steps``; same temperature range.
CLI_MAX_IMAGES = 1024
CLI_MAX_STEPS = 256
MAX_PORT = 65535

CAP_REASON = " (this Space caps requests so that one user cannot exhaust its CPU)"
CAPPED_FIELDS = ("Number of images", "Steps", "Number of completions")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def check_range(label: str, value: Any, low: float, high: float, integer: bool = False,
                reason: str = "") -> int | float:
    """``value`` as an int/float within ``[low, high]``, else a ``ValueError`` naming ``label`` and the range
    (``reason`` follows the range: why it is capped)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{label} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number, got {value}.")
    if integer and value != int(value):
        raise ValueError(f"{label} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{label} must be between {_num(low)} and {_num(high)}, got {_num(value)}{reason}.")
    return int(value) if integer else float(value)
