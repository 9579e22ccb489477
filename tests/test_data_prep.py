"""Centre crop, horizontal flips, bad images (error / skip / >1% stops), decoding in workers via with_transform."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader
from training_utils import reset_accelerate_state

from vaegan.cli import main as cli_main
from vaegan.data import load_image_dataset
from vaegan.errors import ConfigError
from vaegan.imageprep import BadImages, auto_num_workers
from vaegan.training import train
from vaegan.training.config import config_from_dict


def _wide_image(path, width=30, height=10):
    """Black, with a white centred square: a centre crop sees only white, squashing sees a third of it."""
    arr = np.zeros((height, width, 3), np.uint8)
    left = (width - height) // 2
    arr[:, left:left + height] = 255
    Image.fromarray(arr).save(path)


def _left_white(path, size=8):
    arr = np.zeros((size, size), np.uint8)
    arr[:, : size // 2] = 255
    Image.fromarray(arr).save(path)


def _folder(root, n, bad=(), make=None):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = root / f"{i:04d}.png"
        if i in bad:
            path.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        elif make:
            make(path)
        else:
            Image.fromarray(np.full((16, 16, 3), i % 256, np.uint8)).save(path)
    return root


def test_center_crop_keeps_the_aspect_ratio(tmp_path):
    _folder(tmp_path / "wide", 2, make=_wide_image)
    source = f"imagefolder:{tmp_path / 'wide'}"
    cropped = load_image_dataset(source, image_size=8, channels=3, crop="center")[0][0]
    squashed = load_image_dataset(source, image_size=8, channels=3, crop="none")[0][0]
    assert cropped.min() == 1.0
    assert 0.2 < squashed.mean() < 0.5
    with pytest.raises(ConfigError, match="crop must be one of center, none"):
        load_image_dataset(source, image_size=8, channels=3, crop="middle")


@pytest.mark.parametrize("source_kind", ["imagefolder", "mnist-5k"])
def test_hflip_flips_about_half_the_time(tmp_path, source_kind):
    if source_kind == "mnist-5k":
        source = "mnist-5k"
    else:
        source = f"imagefolder:{_folder(tmp_path / 'half', 1, make=_left_white)}"
    plain = load_image_dataset(source, image_size=8, channels=1, limit=1)
    flipping = load_image_dataset(source, image_size=8, channels=1, limit=1, hflip=True)
    original = plain[0][0]
    torch.manual_seed(0)
    seen = [flipping[0][0] for _ in range(40)]
    flipped = sum(torch.equal(x, original.flip(-1)) for x in seen)
    assert sum(torch.equal(x, original) for x in seen) + flipped == 40
    assert 10 <= flipped <= 30
    assert all(torch.equal(plain[0][0], original) for _ in range(5))


def test_bad_image_error_names_the_file_and_the_option(tmp_path):
    source = f"imagefolder:{_folder(tmp_path / 'imgs', 4, bad={2})}"
    data = load_image_dataset(source, image_size=16, channels=3, holdout_fraction=0.25, split="train", seed=1)
    bad_index = next(i for i, row in enumerate(data.indices) if row == 2)
    with pytest.raises(ConfigError, match=r"bad image .*0002\.png.*data\.on_bad_image: skip"):
        data[bad_index]


def test_skip_takes_the_next_image_and_logs_it(tmp_path, caplog):
    source = f"imagefolder:{_folder(tmp_path / 'imgs', 300, bad={7, 8})}"
    bad = BadImages("skip", tmp_path / "bad.txt")
    data = load_image_dataset(source, image_size=16, channels=3, on_bad_image=bad, holdout_fraction=0.01)
    order = {row: i for i, row in enumerate(data.indices)}
    image, _ = data[order[7]]
    assert image.shape == (3, 16, 16)
    [line] = (tmp_path / "bad.txt").read_text().splitlines()
    assert line.startswith(str(tmp_path / "imgs" / "0007.png"))
    with caplog.at_level(logging.WARNING):
        bad.check(len(data))  # 1 of 297: fine, but reported
    assert "skipped 1 unreadable image" in caplog.text and "0007.png" in caplog.text
    data[order[8]]
    data[order[8]]  # the same image twice counts once
    bad.check(200)
    with pytest.raises(ConfigError, match=r"2 of 150 images are unreadable \(more than 1%\).*0007\.png"):
        bad.check(150)


@pytest.fixture
def hf_folder(tmp_path):
    import datasets

    good = [Image.fromarray(np.full((12, 20, 3), 30 * i, np.uint8)) for i in range(6)]
    ds = datasets.Dataset.from_dict({"image": good, "label": list(range(6))}).cast_column("image", datasets.Image())
    ds.save_to_disk(tmp_path / "hf")
    return tmp_path / "hf"


def test_hf_rows_decode_in_a_datasets_transform_inside_workers(hf_folder):
    data = load_image_dataset(f"hf:{hf_folder}", image_size=8, channels=3, holdout_fraction=0.5)
    assert data.hf_dataset.format["type"] == "custom"  # datasets' with_transform
    batches = list(DataLoader(data, batch_size=3, num_workers=2))
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (3, 3, 8, 8)
    expected = torch.stack([data[i][0] for i in range(3)])
    assert torch.equal(images, expected)


def test_hf_bad_row_is_named(tmp_path):
    import datasets

    png = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    rows = [{"bytes": png.read_bytes(), "path": "ok.png"}] * 3 + [{"bytes": b"garbage", "path": "broken.jpg"}]
    ds = datasets.Dataset.from_dict({"image": rows}).cast_column("image", datasets.Image(decode=False))
    ds.cast_column("image", datasets.Image()).save_to_disk(tmp_path / "hf")
    data = load_image_dataset(f"hf:{tmp_path / 'hf'}", image_size=8, channels=3, holdout_fraction=0.25, seed=3)
    bad = next(i for i, row in enumerate(data.indices) if row == 3)
    with pytest.raises(ConfigError, match=r"row 3 of hf:.*broken\.jpg"):
        data[bad]


def test_num_workers_auto():
    assert 0 <= auto_num_workers() <= 8
    assert auto_num_workers(10**6) == 0


def _config(tmp_path, source, **data):
    return config_from_dict({
        "model": {"class": "AE", "image_size": 16, "in_channels": 3, "latent_dim": 4, "block_out_channels": [8, 8],
                  "strides": [2, 2]},
        "data": {"source": source, "num_workers": 0, **data},
        "train": {"output_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 50, "num_preview_images": 4,
                  "log_every": 1},
    })


def test_training_skips_a_few_bad_images_and_stops_on_many(tmp_path):
    source = f"imagefolder:{_folder(tmp_path / 'imgs', 220, bad={5})}"
    try:
        train(_config(tmp_path, source, on_bad_image="skip"))
    finally:
        reset_accelerate_state()
    assert "0005.png" in (tmp_path / "run" / "bad_images.txt").read_text()
    assert (tmp_path / "run" / "model" / "config.json").is_file()

    source = f"imagefolder:{_folder(tmp_path / 'many', 220, bad={1, 2, 3, 4, 5, 6, 7, 8, 9})}"
    with pytest.raises(ConfigError, match=r"of 198 images are unreadable \(more than 1%\)"):
        try:
            train(_config(tmp_path / "b", source, on_bad_image="skip"))
        finally:
            reset_accelerate_state()
    with pytest.raises(ConfigError, match=r"bad image .*\.png.*data\.on_bad_image: skip"):
        try:
            train(_config(tmp_path / "c", source))
        finally:
            reset_accelerate_state()


def test_bad_image_read_by_a_dataloader_worker_is_one_line(tmp_path, capsys):
    """torch re-raises a worker's error with the worker's whole traceback as its message: the CLI shows the error."""
    source = f"imagefolder:{_folder(tmp_path / 'imgs', 60, bad=set(range(0, 60, 3)))}"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, source, num_workers=1).to_dict()))
    try:
        assert cli_main(["train", str(config)]) == 2
    finally:
        reset_accelerate_state()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(r"vaegan train: error: bad image \S+\.png: UnidentifiedImageError: .*Remove or fix it, or set "
                        r"data\.on_bad_image: skip .*\n", err), err


def test_config_checks_the_new_keys(tmp_path):
    with pytest.raises(ConfigError, match="data.crop"):
        _config(tmp_path, "mnist-5k", crop="squash")
    with pytest.raises(ConfigError, match="data.on_bad_image"):
        _config(tmp_path, "mnist-5k", on_bad_image="ignore")
