"""The real-data reference: the sample metrics of real held-out images, the ceiling a model's numbers are read against.

:func:`evaluate_real` measures the source's held-out ("test") images as if a model had generated them, against the
same training images and with the same code as :func:`~vaegan.metrics.evaluate`. Precision, recall, density and
coverage depend on the sample count, so a model row compares with the reference only at the same count.

vaegan ships the reference of mnist-5k (``references/mnist-5k.json``, read by :func:`reference_result`, shown in the
demo), made with::

    vaegan evaluate --real --data mnist-5k --num-samples 500 --output src/vaegan/metrics/references/mnist-5k.json
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch

from ..errors import ConfigError
from .evaluate import (
    _BATCH,
    DEFAULT_DATA,
    DEFAULT_NUM_SAMPLES,
    _real_features,
    _real_labelled,
    default_features,
    sample_metric_values,
)
from .features import check_features, extract
from .registry import METRICS, resolve_metrics

#: The data sources whose reference ships with vaegan (``vaegan/metrics/references/<source>.json``).
SHIPPED_REFERENCES = ("mnist-5k",)


def real_label(data: str) -> str:
    """How a reference row is named: ``real held-out images of <data>``."""
    return f"real held-out images of {data}"


def evaluate_real(data: str = DEFAULT_DATA, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
                  metrics: list[str] | None = None, features: str | None = None, *, channels: int = 1,
                  image_size: int = 28, cache_dir: str | None = None) -> dict[str, Any]:
    """The sample metrics of ``num_samples`` real held-out images of ``data`` against its training images.

    The held-out images play the samples: a random subset of ``num_samples`` of them (``seed``), or all of them
    when the held-out split has fewer, in which case ``num_samples`` in the result is the count used and ``note``
    says so. ``metrics`` and ``features`` as for :func:`~vaegan.metrics.evaluate` (only the sample metrics apply;
    None: all of them). Returns the dict :func:`~vaegan.metrics.evaluate` returns for a model, with ``"real":
    True`` and ``requested_samples``.
    """
    if features is not None:
        check_features(features)
    chosen = features or default_features(data, metrics)
    label = real_label(data)
    names = resolve_metrics(list(metrics) if metrics is not None else None, (), True, chosen, label)
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}.")
    heldout, _ = _real_labelled(data, "test", channels, image_size, None, cache_dir)
    used = min(num_samples, len(heldout))
    if used <= 3 and {"precision", "recall", "density", "coverage", "pr_f1"} & set(names):
        raise ConfigError(f"{data}'s held-out split has {len(heldout)} images; precision and recall need more than "
                          "3.")
    chosen_images = heldout[torch.randperm(len(heldout), generator=torch.Generator().manual_seed(seed))[:used]]
    real_feats, _ = _real_features(data, chosen, channels, image_size, cache_dir)
    parts = [extract(batch, chosen) for batch in chosen_images.split(_BATCH)]
    fake_feats, fake_logits = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    result: dict[str, Any] = {"model": label, "real": True, "data": data, "seed": seed, "features": chosen,
                              "num_samples": used, "requested_samples": num_samples, "real_images": len(real_feats)}
    values = sample_metric_values(names, chosen, real_feats, fake_feats, fake_logits, seed, result=result)
    if used < num_samples:
        result["note"] = (f"{data}'s held-out split has only {len(heldout):,} images, so this row uses all "
                          f"{used:,} (not {num_samples:,}).")
    result["metrics"] = {n: values[n] for n in names if n in values}
    return result


def comparison_note(result: dict[str, Any]) -> str:
    """One line: model rows compare with this reference only when measured at its sample count."""
    count = result["num_samples"]
    return (f"Compare with model rows measured at the same count (vaegan evaluate MODEL --num-samples {count}): "
            "precision, recall, density and coverage depend on it.")


def reference_result(data: str) -> dict[str, Any] | None:
    """The shipped real-data reference of ``data`` (the JSON :func:`evaluate_real` wrote), or None."""
    if data not in SHIPPED_REFERENCES:
        return None
    text = resources.files("vaegan.metrics").joinpath("references", f"{data}.json").read_text()
    result = json.loads(text)
    unknown = set(result.get("metrics", {})) - METRICS.keys()
    if unknown:  # written by another vaegan
        raise ValueError(f"the shipped reference of {data} names unknown metrics: {', '.join(sorted(unknown))}.")
    return result
