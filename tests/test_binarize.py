"""Binarized data (``data.binarize``): dynamic draws differ per read, static ones are fixed, held-out ones are
the same bits for every model."""

from __future__ import annotations

import pytest
import torch

from vaegan.data import BinarizedImages, binarize_heldout, binarize_images, load_image_dataset
from vaegan.errors import ConfigError


def _mnist(binarize: str, **kwargs):
    return load_image_dataset("mnist-5k", image_size=28, channels=1, limit=64, binarize=binarize, **kwargs)


def test_binarized_pixels_follow_their_grey_levels():
    grey = torch.full((1, 1, 200, 200), 0.3)
    bits = binarize_images(grey, torch.Generator().manual_seed(0))
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    assert abs(bits.mean().item() - 0.3) < 0.01
    assert torch.equal(binarize_images(torch.zeros(4, 4)), torch.zeros(4, 4))
    assert torch.equal(binarize_images(torch.ones(4, 4)), torch.ones(4, 4))


def test_static_binarization_is_fixed_and_dynamic_draws_afresh():
    static, dynamic, grey = _mnist("static"), _mnist("dynamic"), _mnist("none")
    assert torch.equal(static[3][0], static[3][0]) and torch.equal(static[3][0], _mnist("static")[3][0])
    assert not torch.equal(dynamic[3][0], dynamic[3][0])
    for dataset in (static, dynamic):
        image, label = dataset[3]
        assert set(image.unique().tolist()) <= {0.0, 1.0} and label == grey[3][1]
        assert (image <= (grey[3][0] > 0).float()).all()  # only inked pixels can be 1
    assert isinstance(static, BinarizedImages) and static.classes == grey.classes and len(static) == len(grey)


def test_heldout_binarization_is_the_same_bits_every_time():
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(binarize_heldout(images), binarize_heldout(images.clone()))


def test_unknown_binarize_mode_is_refused():
    with pytest.raises(ConfigError, match="binarize must be one of none, dynamic, static"):
        _mnist("threshold")


def test_config_checks_data_binarize():
    from vaegan.training.config import config_from_dict

    base = {"model": {"class": "PixelCNN"}, "train": {"output_dir": "out"}}
    assert config_from_dict({**base, "data": {"binarize": "static"}}).data.binarize == "static"
    with pytest.raises(ConfigError, match="'data.binarize' must be one of none, dynamic, static"):
        config_from_dict({**base, "data": {"binarize": "yes"}})
    with pytest.raises(ConfigError, match="'data.binarize' must be none with data.streaming"):
        config_from_dict({**base, "data": {"source": "hf:mnist", "streaming": True, "binarize": "dynamic"},
                          "train": {"output_dir": "out", "max_steps": 10}})


def test_trainer_heldout_bits_are_binarize_heldout_bits():
    grey = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test", limit=5)
    static = BinarizedImages(grey, "static", 0)
    assert torch.equal(torch.stack([static[i][0] for i in range(5)]),
                       binarize_heldout(torch.stack([grey[i][0] for i in range(5)])))
