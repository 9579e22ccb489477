"""The metrics ``vaegan evaluate`` knows: names, definitions, and the capability and features each needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from ..models.validation import closest

#: What a metric needs of a model: ``"sample"`` (generation; instance state, an AE needs its fitted prior) or a
#: capability of :data:`vaegan.models.base.CAPABILITIES`, each described in words for error messages.
REQUIREMENTS = {
    "sample": "it needs a model that can sample",
    "likelihood_bounds": "it needs a model with likelihood bounds (the likelihood_bounds method: a VAE's ELBO / IWAE)",
    "log_likelihood": "it needs a model with an exact likelihood (the log_likelihood method, e.g. an autoregressive "
                      "model)",
    "reconstruction": "it needs a model that can reconstruct images (an encoder and a decoder, e.g. an AE or a VAE)",
    "codes": "it needs a model with discrete codes (the encode_codes method of a quantized family, e.g. a VQ-VAE)",
}


@dataclass(frozen=True)
class Metric:
    name: str
    #: How it is computed: "generation" (features of samples), "classifier" (mnist extractor on samples),
    #: "likelihood" (bounds on held-out images), "exact" (exact likelihood of held-out images), "recon", "codes"
    #: (the code histogram of held-out images).
    kind: str
    definition: str
    higher_is_better: bool
    features: str | None = None  # the only extractor it exists for, if any

    @property
    def brief(self) -> str:
        """What it means in a few words (the demo's results table)."""
        return BRIEFS.get(self.name, "")

    @property
    def requires(self) -> str:
        """What the model must offer: a key of :data:`REQUIREMENTS`."""
        return {"generation": "sample", "classifier": "sample", "likelihood": "likelihood_bounds",
                "exact": "log_likelihood", "recon": "reconstruction", "codes": "codes"}[self.kind]

    @property
    def heldout(self) -> bool:
        """Whether it is computed on held-out real images (else on samples)."""
        return self.requires != "sample"


#: Each metric in a few words, for narrow tables (the full text is the metric's ``definition``).
BRIEFS = {
    "fd_mnist": "distance to real digits' classifier features", "fid": "distance to real images' Inception features",
    "kid": "kernel distance to real images' features", "kid_std": "spread of kid over its subsets",
    "is_mnist": "clear and varied classifier predictions", "inception_score": "clear and varied Inception classes",
    "precision": "share of samples that look real", "recall": "share of the real variety the samples reach",
    "density": "how closely samples sit among real images", "coverage": "share of real images with a sample near",
    "pr_f1": "balance of precision and recall", "confident": "share of samples read as a clear digit",
    "class_coverage": "how evenly all ten digits appear", "class_accuracy": "share of samples of the asked digit",
    "nll": "exact negative log-likelihood, nats per image", "bpd": "nll in bits per dimension",
    "elbo_nll": "likelihood bound (ELBO), nats per image", "iwae_nll": "tighter likelihood bound (IWAE), nats",
    "elbo_bpd": "elbo_nll in bits per dimension", "iwae_bpd": "iwae_nll in bits per dimension",
    "recon_mse": "reconstruction error of held-out images",
    "codebook_perplexity": "codes in use (equally used equivalent)", "dead_codes": "codes no held-out image uses",
}

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
    Metric("pr_f1", "generation", "harmonic mean of `precision` and `recall`, 2PR / (P + R): one number that is "
           "high only when samples are both realistic and varied (a balanced choice for train.select_best_by)", True),
    Metric("confident", "classifier", "share of generated samples that vaegan's MNIST classifier assigns to a "
           "digit with probability >= 0.9", True, "mnist"),
    Metric("class_coverage", "classifier", "entropy of the predicted-digit histogram of generated samples "
           "divided by ln 10 (1.0: all ten digits equally often)", True, "mnist"),
    Metric("class_accuracy", "classifier", "class-conditional models of the ten digits: share of generated "
           "samples that vaegan's MNIST classifier assigns to the requested digit (the same number of samples per "
           "class)", True, "mnist"),
    Metric("nll", "exact", "exact negative log-likelihood -log p(x) of held-out real images, nats per image", False),
    Metric("bpd", "exact", "`nll` in bits per dimension (divided by C x H x W x ln 2)", False),
    Metric("elbo_nll", "likelihood", "negative ELBO on held-out real images, nats per image", False),
    Metric("iwae_nll", "likelihood", "negative importance-weighted bound (Burda et al. 2016, k posterior "
           "samples) on held-out real images, nats per image", False),
    Metric("elbo_bpd", "likelihood", "`elbo_nll` in bits per dimension", False),
    Metric("iwae_bpd", "likelihood", "`iwae_nll` in bits per dimension", False),
    Metric("recon_mse", "recon", "mean squared error per pixel of reconstructions of held-out real images", False),
    Metric("codebook_perplexity", "codes", "exp(entropy) of the histogram of the codes of held-out real images: the "
           "number of equally used codes with the same spread (at most the codebook size)", True),
    Metric("dead_codes", "codes", "codes of the codebook that no held-out real image uses", False),
]
METRICS: dict[str, Metric] = {m.name: m for m in _ALL}


def applicable_metrics(capabilities: Iterable[str], can_sample: bool, features: str | None,
                       digit_classes: bool = False) -> list[str]:
    """Names of the metrics that apply to a model with ``capabilities`` (``type(model).capabilities()``) and
    feature extractor ``features``; ``can_sample``: whether it can sample (``model.can_sample``).

    ``digit_classes``: the model is class-conditional with ten classes, read as the digits 0-9 (``class_accuracy``).
    """
    return [metric.name for metric in _ALL
            if _missing(metric, frozenset(capabilities), can_sample, features, digit_classes) is None]


def _missing(metric: Metric, capabilities: frozenset[str], can_sample: bool, features: str | None,
             digit_classes: bool) -> str | None:
    """Why ``metric`` does not apply, in words, or None when it does."""
    if metric.requires == "sample":
        if not can_sample:
            return REQUIREMENTS["sample"]
        if features is None or metric.features not in (None, features):
            return f"it needs --features {metric.features}" if metric.features else "it needs features"
        if metric.name == "class_accuracy" and not digit_classes:
            return "it needs a class-conditional model of the ten digits (num_classes: 10)"
        return None
    return None if metric.requires in capabilities else REQUIREMENTS[metric.requires]


def resolve_metrics(requested: list[str] | None, capabilities: Iterable[str], can_sample: bool, features: str | None,
                    model_name: str = "this model", digit_classes: bool = False) -> list[str]:
    """The metrics to compute: all that apply when ``requested`` is None, else ``requested`` after checks (a
    :class:`~vaegan.errors.ConfigError` says which capability a metric misses)."""
    capabilities = frozenset(capabilities)
    valid = applicable_metrics(capabilities, can_sample, features, digit_classes)
    if requested is None:
        return valid
    for name in requested:
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}.{closest(name, METRICS)} Valid metrics for {model_name}: "
                              f"{', '.join(valid) or 'none'}.")
        why = _missing(METRICS[name], capabilities, can_sample, features, digit_classes)
        if why is not None:
            raise ConfigError(f"metric {name!r} does not apply to {model_name}: {why}. Valid metrics for "
                              f"{model_name}: {', '.join(valid) or 'none'}.")
    return list(dict.fromkeys(requested))
