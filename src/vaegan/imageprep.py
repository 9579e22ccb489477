"""What happens to one training image between the file and the batch: crop, flip, and what to do if it is bad.

Runs inside DataLoader workers (``data.num_workers``): everything here pickles. ``hf:`` sources decode through
``datasets``' ``with_transform`` (see :class:`RowDecoder`), file sources in the dataset's ``__getitem__``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .errors import ConfigError

logger = logging.getLogger(__name__)

CROPS = ("center", "none")
BAD_IMAGE_POLICIES = ("error", "skip")
#: A run stops when more than this fraction of its images cannot be read, even with ``on_bad_image: skip``.
MAX_BAD_FRACTION = 0.01
#: What PIL and the decoders raise for a file that is not a readable image.
BAD_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)


def center_crop(img: Image.Image) -> Image.Image:
    """The largest centred square of ``img`` (e.g. CelebA's 178x218 -> 178x178)."""
    width, height = img.size
    if width == height:
        return img
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return img.crop((left, top, left + side, top + side))


def auto_num_workers(num_processes: int = 1) -> int:
    """``data.num_workers: null``: the CPU cores this process may use, shared by the local processes, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(num_processes, 1) - 1))


class BadImages:
    """``data.on_bad_image``: ``error`` raises naming the image; ``skip`` records it and the dataset moves on.

    Skipped images are appended to ``log_path`` (one line each), which every DataLoader worker and process can
    write; :meth:`check` (in the main process) reads it, warns about new ones and stops past 1%.
    """

    def __init__(self, policy: str = "error", log_path: str | os.PathLike | None = None) -> None:
        if policy not in BAD_IMAGE_POLICIES:
            raise ConfigError(f"data.on_bad_image must be one of {', '.join(BAD_IMAGE_POLICIES)}, got {policy!r}.")
        self.policy = policy
        self.log_path = Path(log_path) if log_path else None
        self.reported = 0
        self.local: list[str] = []

    def report(self, name: str, err: BaseException) -> None:
        if self.policy == "error":
            raise ConfigError(f"bad image {name}: {type(err).__name__}: {err}. Remove or fix it, or set "
                              "data.on_bad_image: skip to skip unreadable images (a run with more than "
                              f"{MAX_BAD_FRACTION:.0%} of them still stops).") from err
        line = f"{name}\t{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        self.local.append(line)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as log:  # O_APPEND: whole lines even from several processes
                log.write(line.replace("\n", " ") + "\n")

    def skipped(self) -> list[str]:
        if self.log_path is not None and self.log_path.is_file():
            return self.log_path.read_text().splitlines()
        return list(self.local)

    def check(self, total_images: int) -> None:
        """Warn about newly skipped images; raise ConfigError when more than 1% of ``total_images`` are bad."""
        lines = self.skipped()
        unique = sorted({line.split("\t")[0] for line in lines})
        if len(unique) > MAX_BAD_FRACTION * total_images:
            raise ConfigError(
                f"{len(unique)} of {total_images} images are unreadable (more than {MAX_BAD_FRACTION:.0%}), e.g. "
                f"{', '.join(unique[:5])}; the data source looks broken: fix it before training"
                + (f" (full list: {self.log_path})." if self.log_path else ".")
            )
        if len(unique) > self.reported:
            logger.warning("skipped %d unreadable image(s) so far (data.on_bad_image: skip), e.g. %s%s",
                           len(unique), "; ".join(lines[:3]), f"; full list: {self.log_path}" if self.log_path else "")
            self.reported = len(unique)


class RowDecoder:
    """``datasets`` transform: the image column (stored undecoded) -> uint8 ``(C, S, S)`` tensors, in the worker.

    A bad image raises ``ValueError`` naming its file when the row has one.
    """

    def __init__(self, image_column: str, convert: Any) -> None:
        self.image_column = image_column
        self.convert = convert  # value -> uint8 tensor (a picklable partial)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        batch = dict(batch)
        batch[self.image_column] = [self._decode(value) for value in batch[self.image_column]]
        return batch

    def _decode(self, value: Any) -> torch.Tensor:
        try:
            return self.convert(value)
        except BAD_IMAGE_ERRORS as err:
            path = value.get("path") if isinstance(value, dict) else None
            raise ValueError(f"{type(err).__name__}: {err}" + (f" (file {path})" if path else "")) from err
