"""A local stand-in for a Hub dataset: images whose pixels spell their own index, saved with save_to_disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def numbered_dataset(folder: Path, n_train: int = 64, n_test: int = 8, size: int = 8) -> Path:
    """A DatasetDict (train/test) of ``size``x``size`` grey images whose every pixel is the row's index."""
    import datasets

    def split(start: int, n: int):
        images = [Image.fromarray(np.full((size, size), start + i, np.uint8)) for i in range(n)]
        return datasets.Dataset.from_dict({"image": images, "label": [(start + i) % 10 for i in range(n)]}) \
            .cast_column("image", datasets.Image())

    datasets.DatasetDict({"train": split(0, n_train), "test": split(200, n_test)}).save_to_disk(folder)
    return folder


def image_ids(images) -> list[int]:
    """The indices a batch of numbered images spells (first pixel x 255)."""
    return [round(float(v) * 255) for v in images[:, 0, 0, 0]]


def streaming_config(data_dir: Path, output_dir: Path, **train):
    from vaegan.training.config import config_from_dict

    return config_from_dict({
        "model": {"class": "AE", "architecture": "mlp", "image_size": 8, "in_channels": 1, "latent_dim": 2,
                  "hidden_dims": [16]},
        "data": {"source": f"hf:{data_dir}", "streaming": True, "num_workers": 0},
        "train": {"output_dir": str(output_dir), "batch_size": 8, "max_steps": 8, "epochs": 100, "log_every": 2,
                  "checkpoint_every": 1000, "num_preview_images": 4, **train},
    })
