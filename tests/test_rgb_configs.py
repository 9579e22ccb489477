"""The RGB / Fashion-MNIST configs: documented, valid, and trained end to end on tiny local stand-ins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from training_utils import reset_accelerate_state

from vaegan import AutoModel
from vaegan.training import load_config, train

CONFIGS = Path(__file__).parents[1] / "configs"
# config -> (the Hub dataset it names, how to build a stand-in of the same shape and columns)
RGB_CONFIGS = {
    "cifar10-dcgan": ("uoft-cs/cifar10", {"image_column": "img", "size": (32, 32), "mode": "RGB", "test": True}),
    "celeba64-vae": ("nielsr/CelebA-faces", {"image_column": "image", "size": (178, 218), "mode": "RGB",
                                             "test": False}),
    "celeba64-dcgan": ("nielsr/CelebA-faces", {"image_column": "image", "size": (178, 218), "mode": "RGB",
                                               "test": False}),
    "fashion-mnist-vae": ("zalando-datasets/fashion_mnist", {"image_column": "image", "size": (28, 28), "mode": "L",
                                                             "test": True}),
}


def _stand_in(folder: Path, image_column: str, size: tuple[int, int], mode: str, test: bool, n: int = 24) -> Path:
    """A save_to_disk dataset with the real one's columns, image size and splits (random pixels)."""
    import datasets

    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())

    def split(count):
        images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode) for _ in range(count)]
        columns = {image_column: images}
        if test:
            columns["label"] = [i % 10 for i in range(count)]
        return datasets.Dataset.from_dict(columns).cast_column(image_column, datasets.Image())

    (datasets.DatasetDict({"train": split(n), "test": split(8)}) if test else split(n)).save_to_disk(folder)
    return folder


@pytest.mark.parametrize("name", sorted(RGB_CONFIGS))
def test_config_is_documented_and_valid(name):
    hub_id, stand_in = RGB_CONFIGS[name]
    path = CONFIGS / f"{name}.yaml"
    text = path.read_text()
    config = load_config(path)
    assert config.data.source == f"hf:{hub_id}" and hub_id in text
    assert "GPU-hour" in text and "accelerate launch --config_file configs/accelerate/" in text
    model = config.model_class(**config.model_kwargs)
    channels = 3 if stand_in["mode"] == "RGB" else 1
    assert model.image_shape == (channels, config.model["image_size"], config.model["image_size"])
    if stand_in["size"][0] != stand_in["size"][1]:
        assert config.data.crop == "center"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RGB_CONFIGS))
def test_config_trains_end_to_end_on_a_stand_in(tmp_path, name):
    _, stand_in = RGB_CONFIGS[name]
    data = _stand_in(tmp_path / "data", **stand_in)
    overrides = [f"data.source=hf:{data}", f"train.output_dir={tmp_path / 'run'}", "train.max_steps=2",
                 "train.batch_size=4", "train.log_every=1", "train.num_preview_images=4", "data.num_workers=0",
                 "train.mixed_precision='no'", "train.checkpoint_every=1"]
    config = load_config(CONFIGS / f"{name}.yaml", overrides)
    try:
        model_dir = train(config)
    finally:
        reset_accelerate_state()
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["steps"] == 2
    model = AutoModel.from_pretrained(model_dir)
    assert model.image_shape[1:] == (config.model["image_size"],) * 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]["source"] == f"hf:{data}"
    assert (tmp_path / "run" / "samples.png").is_file()
