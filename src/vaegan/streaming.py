"""``data.streaming: true``: ``hf:`` datasets read as a stream (``datasets.IterableDataset``), never downloaded whole.

Sharding: the stream is split into shards (a Hub dataset's files; ``to_iterable_dataset(num_shards=...)`` for a
local ``save_to_disk`` folder). Accelerate gives each process its own shards (``IterableDataset.shard``) when
there are at least as many shards as processes, else every process reads the stream and keeps its own slice of
each global batch; inside a process ``datasets`` hands each DataLoader worker its own shards. Either way each
image is used once per epoch across the whole world. Shard order and a shuffle buffer are reseeded every epoch
(``set_epoch``). Decoding, cropping, resizing and flipping run in the workers (``IterableDataset.map``).

Training is driven by ``train.max_steps`` (a stream has no length). Resume: the checkpoint stores the epoch and
the batches of it already used; resuming restarts that epoch's stream (same shard order and shuffle seed) and
skips those batches, so it continues exactly where it stopped, at the cost of reading the skipped part again.
(``datasets``' ``IterableDataset.state_dict`` cannot be used here: with DataLoader workers each worker holds
its own position, which only a stateful DataLoader could collect.)
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.data import TensorDataset

from .data import _parse_hf, _parse_source, _require, _to_label, _to_uint8_chw
from .errors import ConfigError
from .imageprep import BAD_IMAGE_ERRORS, BadImages

#: Shards made from a local save_to_disk dataset: enough for 8 processes x 8 workers.
LOCAL_SHARDS = 64
SHUFFLE_BUFFER = 10_000


def _open_stream(source: str, split: str, cache_dir: str | None, num_shards: int) -> Any:
    kind, arg = _parse_source(source)
    if kind != "hf":
        raise ConfigError(f"data.streaming works with hf: sources only, not {source!r}; remove data.streaming.")
    datasets = _require("datasets", f"Streaming {source!r}")
    name, config, local = _parse_hf(arg)
    if not local:
        return datasets.load_dataset(name, config, split=split, streaming=True, cache_dir=cache_dir)
    obj = datasets.load_from_disk(name)
    if hasattr(obj, "keys"):
        wanted = ("train",) if split == "train" else ("test", "validation", "valid", "val")
        key = next((k for k in wanted if k in obj), None)
        if key is None:
            raise ValueError(f"{source!r} has no {split!r} split (it has: {', '.join(obj)})")
        obj = obj[key]
    elif split != "train":
        raise ValueError(f"{source!r} is a single split; streaming holds nothing out")
    return obj.to_iterable_dataset(num_shards=min(num_shards, max(len(obj), 1)))


def _columns(stream: Any, source: str, image_column: str | None, label_column: str | None) -> tuple[str, str | None]:
    datasets = _require("datasets", "Streaming")
    features = stream.features or {}
    names = list(features) if features else list(stream.column_names or [])
    if image_column is None:
        image_column = next((c for c in names if isinstance(features.get(c), datasets.Image)), None)
        image_column = image_column or next((c for c in ("image", "img") if c in names), None)
    if image_column is None or (names and image_column not in names):
        raise ConfigError(f"Data source {source!r} has no image column {image_column or ''} (columns: "
                          f"{', '.join(names)}); set data.image_column.")
    if label_column is None:
        label_column = next((c for c in ("label", "labels") if c in names), None)
    return image_column, label_column


class _DecodeRow:
    """``IterableDataset.map`` function: one row -> ``pixel_values`` (float CHW in [0, 1]), ``label``, ``ok``."""

    def __init__(self, image_column: str, label_column: str | None, convert: Any, hflip: bool,
                 bad_images: BadImages, source: str) -> None:
        self.image_column, self.label_column, self.convert = image_column, label_column, convert
        self.hflip, self.bad_images, self.source = hflip, bad_images, source

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        value = row[self.image_column]
        label = _to_label(row[self.label_column]) if self.label_column else -1
        try:
            image = self.convert(value)
        except BAD_IMAGE_ERRORS as err:
            path = value.get("path") if isinstance(value, dict) else None
            self.bad_images.report(path or f"an image of {self.source}", err)
            return {"pixel_values": None, "label": label, "ok": False}
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return {"pixel_values": image.to(torch.float32).div_(255.0), "label": label, "ok": True}


def _is_ok(row: dict[str, Any]) -> bool:
    return row["ok"]


def collate_pairs(rows: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream rows -> ``(images, labels)``, the batches map-style datasets give."""
    return torch.stack([r["pixel_values"] for r in rows]), torch.tensor([r["label"] for r in rows])


def load_streaming_dataset(source: str, *, image_size: int, channels: int, image_column: str | None = None,
                           label_column: str | None = None, seed: int = 0, cache_dir: str | None = None,
                           crop: str = "center", hflip: bool = False, on_bad_image: str | BadImages = "error",
                           num_shards: int = LOCAL_SHARDS, shuffle_buffer: int = SHUFFLE_BUFFER) -> Any:
    """The training split of an ``hf:`` source as a shuffled, decoding ``datasets.IterableDataset``.

    Its rows are dicts; batch them with :func:`collate_pairs`. Call ``set_epoch`` each epoch (Accelerate's
    DataLoader does) to reshuffle.
    """
    datasets = _require("datasets", f"Streaming {source!r}")
    stream = _open_stream(source, "train", cache_dir, num_shards)
    image_column, label_column = _columns(stream, source, image_column, label_column)
    if isinstance((stream.features or {}).get(image_column), datasets.Image):  # vaegan decodes, naming bad files
        stream = stream.cast_column(image_column, datasets.Image(decode=False))
    bad_images = on_bad_image if isinstance(on_bad_image, BadImages) else BadImages(on_bad_image)
    convert = functools.partial(_to_uint8_chw, channels=channels, image_size=image_size, crop=crop)
    stream = stream.shuffle(seed=seed, buffer_size=shuffle_buffer)
    decoded = stream.map(_DecodeRow(image_column, label_column, convert, hflip, bad_images, source),
                         remove_columns=list(stream.column_names or [image_column]))
    return decoded.filter(_is_ok)


def load_streaming_heldout(source: str, *, image_size: int, channels: int, limit: int = 1000,
                           image_column: str | None = None, label_column: str | None = None,
                           cache_dir: str | None = None, crop: str = "center") -> TensorDataset:
    """The first ``limit`` images of the test (or validation) split, in memory, for previews and held-out loss."""
    stream = _open_stream(source, "test", cache_dir, 1)
    image_column, label_column = _columns(stream, source, image_column, label_column)
    images, labels = [], []
    for row in stream.take(limit):
        images.append(_to_uint8_chw(row[image_column], channels, image_size, crop).to(torch.float32).div_(255.0))
        labels.append(_to_label(row[label_column]) if label_column else -1)
    if not images:
        raise ValueError(f"the held-out split of {source!r} is empty")
    return TensorDataset(torch.stack(images), torch.tensor(labels))

