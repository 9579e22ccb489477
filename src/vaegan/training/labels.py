"""Before a class-conditional model trains: the data must have labels the model can take."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..models import GenerativeModel
from .config import DataConfig


def check_labelled_dataset(model: GenerativeModel, dataset: Any, data: DataConfig) -> None:
    """Refuse a dataset without labels, or with more classes than the model has; fill in ``class_names``.

    Runs before the first step, so a run that could not train fails at once with what to change. When the
    model has no ``class_names`` yet, the dataset's class names (folder names, ``ClassLabel`` names) are stored
    in its config, so the saved model, the CLI and the card can show them.
    """
    num_classes = model.num_classes
    fixes = ("set data.label_column to the column that holds the class (hf: sources), give imagefolder: one "
             "subfolder per class, or set model.num_classes: null to train an unconditional model")
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, torch.Tensor):  # in-memory labels (mnist-5k): check them all
        low, high = (int(labels.min()), int(labels.max())) if labels.numel() else (-1, -1)
    else:  # the first item: sources have labels for all items or for none
        first = dataset[0] if hasattr(dataset, "__getitem__") else next(iter(dataset))
        low = high = int(first[1])
    if low < 0:
        raise ConfigError(f"model.num_classes is {num_classes}, but data.source {data.source!r} yields images "
                          f"without labels; {fixes}.")
    classes = getattr(dataset, "classes", None)
    found = max(high + 1, len(classes) if classes else 0)
    if found > num_classes:
        raise ConfigError(f"data.source {data.source!r} has {found} classes but model.num_classes is {num_classes}; "
                          f"set model.num_classes: {found}.")
    if model.class_names is None and classes and len(classes) == num_classes:
        model.register_to_config(class_names=[str(name) for name in classes])
