"""Evaluation of vaegan models: generation metrics in a feature space, classifier metrics, likelihood metrics.

* :func:`evaluate` -> a JSON-ready dict (what ``vaegan evaluate`` prints and writes);
* feature extractors ``mnist`` (a digit classifier shipped with vaegan: :func:`load_mnist_classifier`,
  :func:`mnist_probabilities`) and ``inception`` (torch-fidelity's FID network, ``pip install 'vaegan[inception]'``);
* :func:`read_eval_results` / :func:`update_card`: evaluations stored with a model folder, its card or Hub repo.

Who computes what: Fréchet distance, KID and Inception Score come from torchmetrics; precision / recall,
density / coverage and the classifier metrics are vaegan's own (:mod:`.generation`, :mod:`.classifier`); the
likelihood metrics (exact ``nll`` / ``bpd``, the ELBO / IWAE bounds), ``recon_mse`` and the codebook usage
(``codebook_perplexity``, ``dead_codes``) come from the model's own methods, averaged by :mod:`.likelihood`.
"""

from .card import EVAL_RESULTS_FILENAME, eval_results, evaluation_section, read_eval_results, update_card
from .classifier import class_coverage, class_histogram, confident
from .evaluate import DEFAULT_DATA, DEFAULT_NUM_SAMPLES, default_features, evaluate
from .features import FEATURE_EXTRACTORS, extract
from .generation import frechet_distance, inception_score, kernel_distance, pr_f1, precision_recall_density_coverage
from .likelihood import codebook_usage, exact_nll, likelihood_bounds, reconstruction_mse
from .mnist import CLASSIFIER_INFO, load_mnist_classifier, mnist_probabilities, to_mnist_format
from .registry import METRICS, applicable_metrics

__all__ = [
    "CLASSIFIER_INFO", "DEFAULT_DATA", "DEFAULT_NUM_SAMPLES", "EVAL_RESULTS_FILENAME", "FEATURE_EXTRACTORS", "METRICS",
    "applicable_metrics", "class_coverage", "class_histogram", "codebook_usage", "confident", "default_features",
    "eval_results",
    "evaluate", "evaluation_section", "exact_nll", "extract", "frechet_distance", "inception_score", "kernel_distance",
    "likelihood_bounds", "load_mnist_classifier", "mnist_probabilities", "pr_f1", "precision_recall_density_coverage",
    "read_eval_results", "reconstruction_mse", "to_mnist_format", "update_card",
]
