"""The metrics ``vaegan evaluate`` knows: names, definitions, and which models and features they apply to."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..models.validation import closest


@dataclass(frozen=True)
class Metric:
    name: str
    #: "generation" (feature space, needs samples), "classifier" (mnist extractor), "likelihood" (VAE), "recon".
    kind: str
    definition: str
    higher_is_better: bool
    features: str | None = None  # the only extractor it exists for, if any


_ALL = [
    Metric("fd_mnist", "generation", "Fréchet distance between Gaussians fitted to the features (128-d "
           "penultimate layer, before its ReLU) of vaegan's MNIST classifier on generated and real images; not "
           "comparable to Inception FID", False, "mnist"),
    Metric("fid", "generation", "Fréchet Inception Distance (2048-d pool features of Inception-v3)", False,
           "inception"),
    Metric("kid", "generation", "Kernel distance: unbiased squared MMD with the cubic polynomial kernel between "
           "the feature sets, mean over 100 random subsets of up to 1,000", False),
    Metric("kid_std", "generation", "standard deviation of `kid` over its subsets", False),
    Metric("is_mnist", "generation", "Inception Score computed with vaegan's MNIST classifier: "
           "exp(E KL(p(y|x) || p(y))), mean over 10 splits (at most 10)", True, "mnist"),
    Metric("inception_score", "generation", "Inception Score with Inception-v3, mean over 10 splits", True,
           "inception"),
    Metric("precision", "generation", "improved precision (Kynkäänniemi et al. 2019, k = 3): share of generated "
           "samples inside the k-NN balls of the real features", True),
    Metric("recall", "generation", "improved recall (k = 3): share of real samples inside the k-NN balls of "
           "the generated features", True),
    Metric("density", "generation", "density (Naeem et al. 2020, k = 3): mean number of real k-NN balls holding "
           "a generated sample, divided by k (1.0 for a perfect model)", True),
    Metric("coverage", "generation", "coverage (Naeem et al. 2020, k = 3): share of real k-NN balls that hold a "
           "generated sample", True),
    Metric("confident", "classifier", "share of generated samples that vaegan's MNIST classifier assigns to a "
           "digit with probability >= 0.9", True, "mnist"),
    Metric("class_coverage", "classifier", "entropy of the predicted-digit histogram of generated samples "
           "divided by ln 10 (1.0: all ten digits equally often)", True, "mnist"),
    Metric("class_accuracy", "classifier", "class-conditional models of the ten digits: share of generated "
           "samples that vaegan's MNIST classifier assigns to the requested digit (the same number of samples per "
           "class)", True, "mnist"),
    Metric("elbo_nll", "likelihood", "negative ELBO on held-out real images, nats per image", False),
    Metric("iwae_nll", "likelihood", "negative importance-weighted bound (Burda et al. 2016, k posterior "
           "samples) on held-out real images, nats per image", False),
    Metric("elbo_bpd", "likelihood", "`elbo_nll` in bits per dimension", False),
    Metric("iwae_bpd", "likelihood", "`iwae_nll` in bits per dimension", False),
    Metric("recon_mse", "recon", "mean squared error per pixel of reconstructions of held-out real images", False),
]
METRICS: dict[str, Metric] = {m.name: m for m in _ALL}


def applicable_metrics(family: str, can_sample: bool, features: str | None, digit_classes: bool = False) -> list[str]:
    """Names of the metrics that apply to a model of ``family`` with feature extractor ``features``.

    ``digit_classes``: the model is class-conditional with ten classes, read as the digits 0-9 (``class_accuracy``).
    """
    names = []
    for metric in _ALL:
        if metric.kind in ("generation", "classifier"):
            ok = can_sample and features is not None and metric.features in (None, features)
            ok = ok and (metric.name != "class_accuracy" or digit_classes)
        elif metric.kind == "likelihood":
            ok = family == "vae"
        else:
            ok = family in ("ae", "vae")
        if ok:
            names.append(metric.name)
    return names


def resolve_metrics(requested: list[str] | None, family: str, can_sample: bool, features: str | None,
                    model_name: str = "this model", digit_classes: bool = False) -> list[str]:
    """The metrics to compute: all that apply when ``requested`` is None, else ``requested`` after checks."""
    valid = applicable_metrics(family, can_sample, features, digit_classes)
    if requested is None:
        return valid
    for name in requested:
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}.{closest(name, METRICS)} Valid metrics for {model_name}: "
                              f"{', '.join(valid)}.")
        if name not in valid:
            metric = METRICS[name]
            why = {"likelihood": "it needs a VAE (an encoder and a likelihood)",
                   "recon": "it needs an encoder (an AE or a VAE)"}.get(metric.kind)
            if why is None and name == "class_accuracy" and not digit_classes:
                why = "it needs a class-conditional model of the ten digits (num_classes: 10)"
            if why is None:
                why = ("it needs a model that can sample" if not can_sample else
                       f"it needs --features {metric.features}" if metric.features else "it needs features")
            raise ConfigError(f"metric {name!r} does not apply to {model_name}: {why}. Valid metrics for "
                              f"{model_name}: {', '.join(valid)}.")
    return list(dict.fromkeys(requested))
