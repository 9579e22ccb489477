"""``evaluate``: sample a model, compare with real images, and return the numbers as a JSON-ready dict."""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from ..errors import ConfigError
from .classifier import class_coverage, class_histogram, confident
from .features import check_features, extract
from .generation import frechet_distance, inception_score, kernel_distance, pr_f1, precision_recall_density_coverage
from .likelihood import codebook_usage, exact_nll, likelihood_bounds, reconstruction_mse
from .registry import METRICS, resolve_metrics

logger = logging.getLogger(__name__)

DEFAULT_DATA = "mnist-5k"
DEFAULT_NUM_SAMPLES = 10_000
DEFAULT_IWAE_SAMPLES = 1000
#: Held-out images for the likelihood metrics (the data source's "test" split, made with seed 0 when the source
#: has none, like the trainer's default); the first ``DEFAULT_NUM_HELDOUT`` of them. The IWAE bound costs
#: ``DEFAULT_NUM_HELDOUT x iwae_samples`` decoder passes (200 x 1000: about 2.5 CPU minutes for the conv MNIST VAE).
DEFAULT_NUM_HELDOUT = 200
_BATCH = 500
#: Posterior draws per image for ``elbo_nll`` when the IWAE bound is not asked for.
ELBO_SAMPLES = 10


def default_features(data: str, metrics: list[str] | None = None) -> str:
    """The extractor that ``metrics`` name (``fd_mnist`` -> ``mnist``, ``fid`` -> ``inception``), else ``mnist``
    for MNIST digit data and ``inception`` for other data."""
    from ..cards import dataset_tag

    implied = {METRICS[m].features for m in metrics or () if m in METRICS and METRICS[m].features}
    if len(implied) == 1:
        return implied.pop()
    return "mnist" if dataset_tag(data) == "mnist" else "inception"


def _load_model(model: Any):
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        from ..models import AutoModel

        return AutoModel.from_pretrained(str(model)), str(model)
    return model, getattr(model, "name_or_path", None) or type(model).__name__


@functools.lru_cache(maxsize=4)
def _real_labelled(data: str, split: str, channels: int, image_size: int, limit: int | None,
                   cache_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.utils.data import DataLoader

    from ..data import load_image_dataset

    dataset = load_image_dataset(data, image_size=image_size, channels=channels, split=split, limit=limit,
                                 cache_dir=cache_dir)
    batches = list(DataLoader(dataset, batch_size=_BATCH))
    return torch.cat([images for images, _ in batches]), torch.cat([labels for _, labels in batches])


def _real_images(data: str, split: str, channels: int, image_size: int, limit: int | None,
                 cache_dir: str | None) -> torch.Tensor:
    return _real_labelled(data, split, channels, image_size, limit, cache_dir)[0]


def digit_classes(model) -> bool:
    """Whether ``model`` is class-conditional with ten classes, read as the digits 0-9 (for ``class_accuracy``)."""
    return getattr(model, "num_classes", None) == 10


def balanced_labels(num_samples: int, num_classes: int) -> torch.Tensor:
    """Labels ``0, 1, ..., num_classes - 1, 0, 1, ...``: every class equally often (to within one)."""
    return torch.arange(num_samples) % num_classes


@functools.lru_cache(maxsize=4)
def _real_features(data: str, features: str, channels: int, image_size: int,
                   cache_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    images = _real_images(data, "train", channels, image_size, None, cache_dir)
    parts = [extract(batch, features) for batch in images.split(_BATCH)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _sample_features(model, num_samples: int, seed: int, features: str, progress: bool,
                     labels: torch.Tensor | None = None, temperature: float = 1.0):
    from tqdm.auto import tqdm

    generator = torch.Generator(device="cpu").manual_seed(seed)
    feats, logits = [], []
    with tqdm(total=num_samples, desc="sampling", unit="img", disable=not progress or None, leave=False) as bar:
        for start in range(0, num_samples, _BATCH):
            n = min(_BATCH, num_samples - start)
            batch_labels = None if labels is None else labels[start:start + n]
            images = model.sample(n, generator=generator, temperature=temperature, class_labels=batch_labels)
            f, lg = extract(images.float().cpu(), features)
            feats.append(f)
            logits.append(lg)
            bar.update(n)
    return torch.cat(feats), torch.cat(logits)


def evaluate(model: Any, data: str = DEFAULT_DATA, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0,
             metrics: list[str] | None = None, features: str | None = None, *,
             iwae_samples: int = DEFAULT_IWAE_SAMPLES, num_heldout: int | None = DEFAULT_NUM_HELDOUT,
             progress: bool = False, cache_dir: str | None = None, binarize: bool = False,
             temperature: float | None = None) -> dict[str, Any]:
    """Evaluate ``model`` (a vaegan model, Hub id or folder) against the real images of ``data``.

    ``metrics``: names from :data:`~vaegan.metrics.METRICS` (None: every one that applies to the model's
    capabilities and the feature extractor). ``features``: ``"mnist"`` or ``"inception"`` (None: the one
    ``metrics`` name, else ``mnist`` for MNIST data and ``inception`` for other data).

    Generation metrics compare ``num_samples`` samples drawn with ``torch.Generator().manual_seed(seed)`` at
    ``temperature`` (default: the model's ``default_temperature``, the one its ``sample`` uses) with the source's
    training split. Likelihood and reconstruction metrics use the first ``num_heldout`` images of
    its held-out split: ``nll`` / ``bpd`` for a model with an exact likelihood, the bounds ``elbo_nll`` /
    ``iwae_nll`` for one with likelihood bounds (the VAE), with ``iwae_samples`` posterior samples per image for
    ``iwae_nll`` (the slowest metric: ``num_heldout x iwae_samples`` decoder passes; ``elbo_nll`` alone uses
    :data:`ELBO_SAMPLES`). ``binarize``: the held-out images are binarized once with seed 0
    (:func:`vaegan.data.binarize_heldout`), as for a model trained with ``data.binarize``: every model is then
    measured on the same bits. The same arguments give the same numbers; the caller's random number generators
    are left as they were.

    A class-conditional model samples every class equally often (``0, 1, ..., 0, 1, ...``; 1,000 per class of the
    ten digits with the default 10,000 samples); ``class_accuracy`` is the share of samples classified as their
    requested digit. Its likelihood and reconstruction metrics are conditional on the held-out images' labels.

    Returns ``{"model", "data", "seed", "features", "num_samples", "temperature", "real_images", "heldout_images",
    "iwae_samples" | "elbo_samples", "metrics": {name: value}, "class_histogram", "skipped"}`` (the keys that apply;
    ``skipped``: ``{"metrics": [...], "reason": ...}``, the sample-based metrics left out of the default selection
    because the model cannot sample now, e.g. an AE before its prior is fitted).
    """
    model, name = _load_model(model)
    if features is not None:
        check_features(features)
    chosen = features or default_features(data, metrics)
    names = resolve_metrics(list(metrics) if metrics is not None else None, model.capabilities(), model.can_sample,
                            chosen, f"{type(model).__name__} {name!r}", digit_classes(model))
    if not names:
        raise ConfigError(f"no metric applies to {type(model).__name__} {name!r}.")
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}.")
    kinds = {METRICS[n].kind for n in names}
    result: dict[str, Any] = {"model": name, "data": data, "seed": seed}
    skipped = _skipped_for_sampling(model, names, chosen) if metrics is None else None
    if skipped:
        result["skipped"] = skipped
    was_training = model.training
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]):  # never disturbs the caller's random streams (a training run)
            _compute(model, names, kinds, chosen, data, num_samples, seed, iwae_samples, num_heldout, progress,
                     cache_dir, result, binarize, _temperature(model, temperature))
    finally:
        model.train(was_training)
    return result


def _temperature(model, temperature: float | None) -> float:
    """``temperature``, else the model's default (1 for a stand-in without ``default_temperature``)."""
    return float(temperature) if temperature is not None else float(getattr(model, "default_temperature", 1.0))


def _skipped_for_sampling(model, names: list[str], features: str) -> dict[str, Any] | None:
    """The sample-based metrics of ``features`` that ``names`` lacks because ``model`` cannot sample now, and why."""
    reason = model.cannot_sample_reason()
    if reason is None:
        return None
    skipped = [n for n, metric in METRICS.items() if metric.kind in ("generation", "classifier") and n not in names
               and metric.features in (None, features) and (n != "class_accuracy" or digit_classes(model))]
    return {"metrics": skipped, "reason": reason} if skipped else None


def sample_metric_values(names: list[str], features: str, real_feats: torch.Tensor, fake_feats: torch.Tensor,
                         fake_logits: torch.Tensor, seed: int, labels: torch.Tensor | None = None,
                         result: dict[str, Any] | None = None) -> dict[str, float]:
    """The generation and classifier metrics of ``names`` for samples with ``fake_feats`` / ``fake_logits`` against
    real images with ``real_feats``; ``labels``: the classes asked of a conditional model (``class_accuracy``).
    The predicted-digit histogram goes to ``result["class_histogram"]``."""
    wanted, kinds = set(names), {METRICS[n].kind for n in names}
    values: dict[str, float] = {}
    if wanted & {"fd_mnist", "fid"}:
        values["fd_mnist" if features == "mnist" else "fid"] = frechet_distance(real_feats, fake_feats)
    if wanted & {"kid", "kid_std"}:
        values["kid"], values["kid_std"] = kernel_distance(real_feats, fake_feats, seed=seed)
    if wanted & {"is_mnist", "inception_score"}:
        score, _ = inception_score(fake_logits, splits=min(10, len(fake_logits)), seed=seed)
        values["is_mnist" if features == "mnist" else "inception_score"] = score
    if wanted & {"precision", "recall", "density", "coverage", "pr_f1"}:
        values.update(precision_recall_density_coverage(real_feats, fake_feats, k=3))
        values["pr_f1"] = pr_f1(values["precision"], values["recall"])
    if "classifier" in kinds:
        probabilities = fake_logits.softmax(1)
        values["confident"] = confident(probabilities)
        values["class_coverage"] = class_coverage(probabilities)
        if result is not None:
            result["class_histogram"] = class_histogram(probabilities)
        if "class_accuracy" in wanted:
            values["class_accuracy"] = float((probabilities.argmax(1) == labels).float().mean())
    return values


def _compute(model, names: list[str], kinds: set[str], chosen: str, data: str, num_samples: int, seed: int,
             iwae_samples: int, num_heldout: int | None, progress: bool, cache_dir: str | None,
             result: dict[str, Any], binarize: bool = False, temperature: float = 1.0) -> None:
    channels, size = model.image_shape[0], model.image_shape[1]
    values: dict[str, float] = {}
    if kinds & {"generation", "classifier"}:
        result.update(features=chosen, num_samples=num_samples, temperature=temperature)
        real_feats, _ = _real_features(data, chosen, channels, size, cache_dir)
        result["real_images"] = len(real_feats)
        num_classes = getattr(model, "num_classes", None)
        labels = balanced_labels(num_samples, num_classes) if num_classes else None
        fake_feats, fake_logits = _sample_features(model, num_samples, seed, chosen, progress, labels, temperature)
        values.update(sample_metric_values(names, chosen, real_feats, fake_feats, fake_logits, seed, labels, result))
    if any(METRICS[n].heldout for n in names):
        heldout, heldout_labels = _real_labelled(data, "test", channels, size, num_heldout, cache_dir)
        result["heldout_images"] = len(heldout)
        if binarize:
            from ..data import binarize_heldout

            heldout = binarize_heldout(heldout)
            result["heldout_binarized"] = True
        if getattr(model, "num_classes", None) is None:
            heldout_labels = None
        if "likelihood" in kinds:
            # The ELBO alone (analytic KL) needs few posterior draws; the IWAE bound needs its k.
            iwae = bool({"iwae_nll", "iwae_bpd"} & set(names))
            draws = iwae_samples if iwae else min(iwae_samples, ELBO_SAMPLES)
            result["iwae_samples" if iwae else "elbo_samples"] = draws
            generator = torch.Generator().manual_seed(seed)
            values.update(likelihood_bounds(model, heldout, k=draws, generator=generator, progress=progress,
                                            class_labels=heldout_labels))
        if "exact" in kinds:
            values.update(exact_nll(model, heldout, class_labels=heldout_labels))
        if "recon" in kinds:
            values["recon_mse"] = reconstruction_mse(model, heldout, class_labels=heldout_labels)
        if "codes" in kinds:
            values.update(codebook_usage(model, heldout, class_labels=heldout_labels))
    result["metrics"] = {n: values[n] for n in names if n in values}
