"""vaegan.metrics: the estimators against references and limiting cases, the shipped MNIST classifier, the
likelihood bounds, metric selection and its errors, and the inception code path with a stand-in network."""

import json
import math
import sys

import bernoulli_family
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from vaegan import AE, GAN, VAE, ConfigError
from vaegan.metrics import (
    CLASSIFIER_INFO,
    METRICS,
    applicable_metrics,
    class_coverage,
    confident,
    evaluate,
    exact_nll,
    frechet_distance,
    inception_score,
    kernel_distance,
    likelihood_bounds,
    mnist_probabilities,
    pr_f1,
    precision_recall_density_coverage,
)
from vaegan.metrics import features as features_module
from vaegan.metrics.evaluate import _real_images, _real_labelled
from vaegan.metrics.mnist import mnist_logits_and_features


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with SciPy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def gaussians(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    return torch.from_numpy(rng.normal(size=(n, d)) @ mixing * scale + shift)


# ---------------------------------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.5, 1.0), (0.0, 2.0), (3.0, 0.5)])
def test_frechet_distance_matches_a_scipy_reference(shift, scale):
    a, b = gaussians(2000, 16, 0), gaussians(1500, 16, 1, shift, scale)
    expected = reference_frechet(a.numpy(), b.numpy())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-3)


def test_kid_is_about_zero_for_identical_sets_and_positive_for_different_ones():
    a = gaussians(2000, 16, 0)
    same, same_std = kernel_distance(a, a.clone(), subsets=20, subset_size=500, seed=0)
    different, _ = kernel_distance(a, gaussians(2000, 16, 1, shift=0.5), subsets=20, subset_size=500, seed=0)
    assert abs(same) < 0.02 * different and same_std < 0.05 * different
    assert kernel_distance(a, a, subsets=5, seed=3) == kernel_distance(a, a, subsets=5, seed=3)  # seeded subsets


def test_precision_recall_density_coverage_limits():
    a = gaussians(600, 8, 0)
    identical = precision_recall_density_coverage(a, a.clone())
    assert identical["precision"] == identical["recall"] == identical["coverage"] == 1.0
    assert identical["density"] >= 1.0  # every sample lies in its own ball and in k others on average
    disjoint = precision_recall_density_coverage(a, a + 100.0)
    assert disjoint == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # Mode collapse: every generated sample is (nearly) one of 10 real ones: precise, but low recall and coverage.
    collapsed = precision_recall_density_coverage(a, a[:10].repeat(30, 1) + 1e-3 * gaussians(300, 8, 2))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.1


def test_pr_f1_is_the_harmonic_mean_of_precision_and_recall():
    assert pr_f1(1.0, 1.0) == 1.0 and pr_f1(0.0, 0.0) == 0.0 and pr_f1(0.9, 0.0) == 0.0
    assert pr_f1(1.0, 0.25) == pytest.approx(0.4) and pr_f1(0.25, 1.0) == pr_f1(1.0, 0.25)
    # Below the arithmetic mean: a sharp but collapsed model (high precision, low recall) scores low.
    assert pr_f1(0.95, 0.05) < 0.1 < (0.95 + 0.05) / 2
    assert METRICS["pr_f1"].higher_is_better and METRICS["pr_f1"].kind == "generation"


def test_inception_score_and_classifier_metrics_limits():
    certain = torch.full((1000, 10), -30.0)
    certain[torch.arange(1000), torch.arange(1000) % 10] = 30.0
    assert inception_score(certain, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < inception_score(certain)[0] < 10.0  # 10 random splits: classes not exactly balanced in each
    assert inception_score(torch.zeros(1000, 10))[0] == pytest.approx(1.0)
    probabilities = certain.softmax(1)
    assert confident(probabilities) == 1.0 and class_coverage(probabilities) == pytest.approx(1.0)
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 1.0
    assert class_coverage(one_class) == 0.0
    assert confident(torch.full((5, 10), 0.1)) == 0.0


# ---------------------------------------------------------------------------------------------------- likelihood
def mnist_images(split: str, n: int) -> torch.Tensor:
    return _real_images("mnist-5k", split, 1, 28, n, None)


def train_steps(model: VAE, images: torch.Tensor, steps: int, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(steps):
        batch = images[torch.randint(len(images), (64,))]
        loss = model.compute_loss("model", batch, step)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def tiny_vae(**kwargs) -> VAE:
    torch.manual_seed(0)
    return VAE(architecture="mlp", hidden_dims=(64,), latent_dim=4, **kwargs)


def test_iwae_with_one_posterior_sample_estimates_the_elbo():
    images = mnist_images("test", 200)
    bounds = likelihood_bounds(tiny_vae(), images, k=1, generator=torch.Generator().manual_seed(0))
    assert bounds["iwae_nll"] == pytest.approx(bounds["elbo_nll"], rel=0.01)  # same expectation; MC noise only
    assert bounds["elbo_bpd"] == pytest.approx(bounds["elbo_nll"] / (784 * math.log(2)))


#: likelihood_bounds of the fixed tiny VAEs below, computed by vaegan.metrics.likelihood as of commit b7f8f14 (before
#: the bounds moved into VAE.likelihood_bounds): the move must not change a number.
BOUNDS_BEFORE_THE_MOVE = {
    "bce": (45.20394800397541, 45.02364483467645),
    "mse": (49.05352789027563, 48.99275028239023),
    "conditional": (44.89316532130326, 44.76527084349482),
}


@pytest.mark.parametrize("case", sorted(BOUNDS_BEFORE_THE_MOVE))
def test_likelihood_bounds_give_the_numbers_of_the_code_before_they_moved_into_the_vae(case):
    kwargs = {"bce": {}, "mse": {"reconstruction_loss": "mse", "mse_weight": 50.0},
              "conditional": {"num_classes": 3}}[case]
    labels = torch.arange(70) % 3 if case == "conditional" else None
    torch.manual_seed(0)
    model = VAE(architecture="mlp", hidden_dims=(16,), latent_dim=3, image_size=8, **kwargs)
    images = torch.rand(70, 1, 8, 8, generator=torch.Generator().manual_seed(1))  # two batches of 50 and 20
    bounds = likelihood_bounds(model, images, k=100, generator=torch.Generator().manual_seed(2), class_labels=labels)
    elbo, iwae = BOUNDS_BEFORE_THE_MOVE[case]
    assert bounds["elbo_nll"] == pytest.approx(elbo, rel=1e-12) and bounds["iwae_nll"] == pytest.approx(iwae, rel=1e-12)
    assert bounds["iwae_bpd"] == pytest.approx(iwae / (64 * math.log(2)), rel=1e-12)

    # The model's own per-image bounds (what the metric averages), lower bounds on log p(x): iwae >= elbo on average.
    per_image = model.likelihood_bounds(images[:5], k=50, generator=torch.Generator().manual_seed(0),
                                        class_labels=None if labels is None else labels[:5])
    assert set(per_image) == {"elbo", "iwae"} and all(v.shape == (5,) for v in per_image.values())
    assert float(per_image["iwae"].mean()) > float(per_image["elbo"].mean())
    assert model.training  # the caller's mode is left as it was


def test_the_vae_bounds_need_labels_of_a_conditional_vae_and_k_at_least_one():
    model = tiny_vae(num_classes=10)
    with pytest.raises(ValueError, match="class-conditional.*pass class_labels"):
        model.likelihood_bounds(torch.rand(2, 1, 28, 28), k=2)
    with pytest.raises(ValueError, match="k >= 1"):
        model.likelihood_bounds(torch.rand(2, 1, 28, 28), k=0, class_labels=[1, 2])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_iwae_below_elbo_and_both_fall_as_the_vae_trains(loss):
    train, heldout = mnist_images("train", 2000), mnist_images("test", 100)
    model = tiny_vae(reconstruction_loss=loss)
    bounds = []
    for steps in (30, 600):
        train_steps(model, train, steps)
        bounds.append(likelihood_bounds(model, heldout, k=200, generator=torch.Generator().manual_seed(0)))
    for b in bounds:
        assert b["iwae_nll"] < b["elbo_nll"]
    assert bounds[1]["elbo_nll"] < bounds[0]["elbo_nll"] and bounds[1]["iwae_nll"] < bounds[0]["iwae_nll"]


# ---------------------------------------------------------------------------------------------------- mnist extractor
def test_shipped_classifier_reaches_its_stated_heldout_accuracy():
    """The weights' metadata states the accuracy on the 500 digits the training script held out; check it."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "train_mnist_classifier.py"
    spec = importlib.util.spec_from_file_location("train_mnist_classifier", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, _, x_test, y_test = module.load_mnist_split()
    accuracy = float((mnist_probabilities(x_test).argmax(1) == y_test).double().mean())
    assert CLASSIFIER_INFO["n_holdout"] == len(x_test) == 500
    assert accuracy == pytest.approx(CLASSIFIER_INFO["holdout_accuracy"], abs=1e-6) and accuracy >= 0.99
    assert module.WEIGHTS_PATH.stat().st_size < 2_000_000


def test_mnist_features_separate_real_digits_from_noise():
    real = mnist_images("train", 2000)
    first, second = real[:1000], real[1000:]
    (logits, f_first), f_second = mnist_logits_and_features(first), mnist_logits_and_features(second)[1]
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    f_noise = mnist_logits_and_features(noise)[1]
    same, different = frechet_distance(f_first, f_second), frechet_distance(f_first, f_noise)
    assert same < 0.02 * different
    halves = precision_recall_density_coverage(f_first, f_second)
    assert halves["precision"] > 0.8 and halves["recall"] > 0.8
    probabilities = logits.softmax(1)
    assert confident(probabilities) > 0.95 and class_coverage(probabilities) > 0.99
    assert confident(mnist_probabilities(noise)) < 0.2  # outlier exposure: noise is not a confident digit
    # Any image size / channel count is converted to 28 x 28 grey first.
    rgb = first[:50].repeat(1, 3, 1, 1)
    big = torch.nn.functional.interpolate(first[:50], size=(56, 56), mode="bilinear")
    assert (mnist_probabilities(rgb).argmax(1) == probabilities[:50].argmax(1)).all()
    assert (mnist_probabilities(big).argmax(1) == probabilities[:50].argmax(1)).float().mean() > 0.9


def test_noise_is_off_the_real_manifold_of_the_evaluation_real_set():
    """Against the real set evaluate() uses (4,500 digits), noise and blank images have precision ~0. (With the
    features after the ReLU they all mapped to 0 and had precision 1. A small real set with a few outlier digits
    whose k-NN balls are huge can still swallow them: the known weakness of improved precision.)"""
    real = mnist_logits_and_features(mnist_images("train", None))[1]
    for fake in (torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.zeros(50, 1, 28, 28)):
        scores = precision_recall_density_coverage(real, mnist_logits_and_features(fake)[1])
        assert scores["precision"] < 0.05 and scores["density"] < 0.05 and scores["recall"] == 0.0


# ---------------------------------------------------------------------------------------------------- evaluate()
def tiny_gan() -> GAN:
    torch.manual_seed(0)
    return GAN(architecture="mlp", latent_dim=8, generator_hidden_dims=(32,), discriminator_hidden_dims=(16,))


def test_evaluate_a_gan_gets_generation_metrics_only_and_is_reproducible():
    gan = tiny_gan()
    result = evaluate(gan, num_samples=300, seed=1)
    assert set(result["metrics"]) == {"fd_mnist", "kid", "kid_std", "is_mnist", "precision", "recall", "density",
                                      "coverage", "pr_f1", "confident", "class_coverage"}
    numbers = result["metrics"]
    assert numbers["pr_f1"] == pr_f1(numbers["precision"], numbers["recall"])
    assert evaluate(gan, num_samples=300, seed=1, metrics=["pr_f1"])["metrics"] == {"pr_f1": numbers["pr_f1"]}
    assert not {"elbo_nll", "iwae_nll", "recon_mse"} & set(result["metrics"])
    assert result["features"] == "mnist" and result["num_samples"] == 300 and result["real_images"] == 4500
    assert sum(result["class_histogram"]) == 300
    assert evaluate(gan, num_samples=300, seed=1) == result
    assert evaluate(gan, num_samples=300, seed=2)["metrics"] != result["metrics"]
    assert gan.training  # the caller's mode is restored


def test_evaluate_a_vae_gets_likelihood_and_reconstruction_metrics():
    result = evaluate(tiny_vae(), num_samples=200, iwae_samples=20, num_heldout=50)
    assert {"fd_mnist", "confident", "elbo_nll", "iwae_nll", "elbo_bpd", "iwae_bpd", "recon_mse"} <= set(
        result["metrics"])
    assert result["heldout_images"] == 50 and result["iwae_samples"] == 20
    only = evaluate(tiny_vae(), metrics=["recon_mse", "iwae_nll"], num_heldout=20, iwae_samples=5)
    assert list(only["metrics"]) == ["recon_mse", "iwae_nll"] and "num_samples" not in only


def test_inapplicable_or_unknown_metrics_and_features_are_clear_errors():
    gan = tiny_gan()
    with pytest.raises(ConfigError, match=r"'iwae_nll' does not apply to GAN.*needs a model with likelihood bounds "
                                          r"\(the likelihood_bounds method: a VAE's ELBO / IWAE\).*Valid.*fd_mnist"):
        evaluate(gan, metrics=["iwae_nll"])
    with pytest.raises(ConfigError, match=r"'nll' does not apply to VAE.*needs a model with an exact likelihood "
                                          r"\(the log_likelihood method"):
        evaluate(tiny_vae(), metrics=["nll"])
    with pytest.raises(ConfigError, match=r"'recon_mse' does not apply to GAN.*needs a model that can reconstruct"):
        evaluate(gan, metrics=["recon_mse"])
    with pytest.raises(ConfigError, match=r"unknown metric 'fid_mnist'.*Did you mean 'fd_mnist'"):
        evaluate(gan, metrics=["fid_mnist"])
    with pytest.raises(ConfigError, match=r"'fid' does not apply.*needs --features inception"):
        evaluate(gan, metrics=["fid"], features="mnist")
    with pytest.raises(ConfigError, match=r"unknown feature extractor 'incepton'.*Valid choices: mnist, inception"):
        evaluate(gan, features="incepton")


# ---------------------------------------------------------------------------------------------------- inception
class StandInInception(nn.Module):
    """Takes what torch-fidelity's network takes (uint8 RGB, any size); returns (features, 1008 logits)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple] = []
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 32))  # 2048-d really
        self.logits = nn.Linear(32, 1008)

    def forward(self, x):
        self.seen.append((x.dtype, tuple(x.shape[1:])))
        f = self.features(x.float() / 255)
        return f, self.logits(f)


def test_inception_features_code_path_with_a_stand_in_network(monkeypatch):
    stand_in = StandInInception()
    monkeypatch.setattr(features_module, "build_inception", lambda: stand_in)
    result = evaluate(tiny_gan(), num_samples=120, features="inception")
    assert set(result["metrics"]) == {"fid", "kid", "kid_std", "inception_score", "precision", "recall", "density",
                                      "coverage", "pr_f1"}
    assert result["features"] == "inception"
    assert set(stand_in.seen) == {(torch.uint8, (3, 28, 28))}  # grey samples and real digits, as uint8 RGB


def test_inception_without_torch_fidelity_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    features_module.build_inception.cache_clear()
    with pytest.raises(ImportError, match=r"vaegan\[inception\]"):
        evaluate(tiny_gan(), num_samples=20, features="inception")


def test_the_classifier_weights_are_package_data():
    """pyproject's setuptools config puts the shipped weights into the wheel."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from vaegan.metrics.mnist import WEIGHTS_PATH

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["vaegan.metrics"]
    relative = WEIGHTS_PATH.relative_to(WEIGHTS_PATH.parents[1]).as_posix()
    assert any(fnmatch.fnmatch(relative, p) for p in patterns)


class RealDigitsByLabel(torch.nn.Module):
    """A stand-in class-conditional model that 'generates' real held-out digits of class ``label + shift``."""

    can_sample, num_classes, image_shape = True, 10, (1, 28, 28)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        return frozenset()  # samples only

    def __init__(self, shift: int = 0):
        super().__init__()
        self.shift = shift
        self.requested: list[int] = []
        images, labels = _real_labelled("mnist-5k", "test", 1, 28, None, None)
        self.by_class = {c: images[labels == c] for c in range(10)}

    def sample(self, n, generator=None, temperature=1.0, class_labels=None):
        labels = torch.as_tensor(class_labels)
        self.requested += labels.tolist()
        pools = [self.by_class[(int(y) + self.shift) % 10] for y in labels]
        return torch.stack([pool[i % len(pool)] for i, pool in enumerate(pools)])


def test_class_accuracy_is_the_share_of_samples_classified_as_their_requested_digit():
    right = RealDigitsByLabel()
    result = evaluate(right, num_samples=1000, metrics=["class_accuracy", "confident"])
    assert result["metrics"]["class_accuracy"] > 0.95  # real digits of the asked class (classifier: 99.2%)
    assert np.bincount(right.requested).tolist() == [100] * 10  # every class equally often
    wrong = evaluate(RealDigitsByLabel(shift=1), num_samples=1000, metrics=["class_accuracy", "confident"])
    assert wrong["metrics"]["class_accuracy"] < 0.05  # confident digits, all of the wrong class
    assert wrong["metrics"]["confident"] > 0.9


def test_class_accuracy_needs_a_conditional_digit_model_and_conditional_vaes_get_every_metric():
    with pytest.raises(ConfigError, match=r"'class_accuracy' does not apply.*class-conditional model of the ten"):
        evaluate(tiny_gan(), metrics=["class_accuracy"])
    assert "class_accuracy" not in evaluate(tiny_gan(), num_samples=50)["metrics"]
    cvae = tiny_vae(num_classes=10)
    result = evaluate(cvae, num_samples=100, iwae_samples=5, num_heldout=30)
    assert {"class_accuracy", "elbo_nll", "iwae_nll", "recon_mse", "fd_mnist"} <= set(result["metrics"])
    assert all(math.isfinite(v) for v in result["metrics"].values())


# ---------------------------------------------------------------------------------------------------- capabilities
GENERATION = {"fd_mnist", "kid", "kid_std", "is_mnist", "precision", "recall", "density", "coverage", "pr_f1",
              "confident", "class_coverage"}


def test_metrics_are_chosen_by_capability_never_by_family_name():
    def chosen(cls, can_sample=True):
        return set(applicable_metrics(cls.capabilities(), can_sample, "mnist"))

    assert chosen(bernoulli_family.PixelBernoulli) == GENERATION | {"nll", "bpd"}
    assert chosen(VAE) == GENERATION | {"elbo_nll", "iwae_nll", "elbo_bpd", "iwae_bpd", "recon_mse"}
    assert chosen(AE, can_sample=False) == {"recon_mse"}  # before its prior is fitted
    assert chosen(GAN) == GENERATION

    class RenamedVAE(VAE):  # a family tag says nothing: the capabilities decide
        family = "gan"

    assert chosen(RenamedVAE) == chosen(VAE)


def test_exact_nll_and_bpd_of_a_model_with_an_exact_likelihood():
    images = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    uniform = bernoulli_family.PixelBernoulli()  # every logit 0: each binary pixel has probability 1/2
    assert exact_nll(uniform, images) == pytest.approx({"nll": 64 * math.log(2), "bpd": 1.0}, rel=1e-6)

    model = bernoulli_family.make(image_size=8, num_classes=3)
    labels = torch.arange(30) % 3
    binary = (images > 0.5).float()
    logits = model.logits.detach()[labels]
    expected = -torch.distributions.Bernoulli(logits=logits).log_prob(binary).sum((1, 2, 3)).mean()
    result = exact_nll(model, images, class_labels=labels, batch_size=7)  # batches of 7: the same average
    assert result["nll"] == pytest.approx(float(expected), rel=1e-6)
    assert result["bpd"] == pytest.approx(float(expected) / (64 * math.log(2)), rel=1e-6)
    with pytest.raises(ValueError, match="VAE has no log likelihood.*nll / bpd cannot be computed"):
        exact_nll(tiny_vae(), torch.rand(2, 1, 28, 28))


def test_evaluate_a_latent_free_model_with_an_exact_likelihood():
    model = bernoulli_family.make()
    result = evaluate(model, num_samples=100, num_heldout=40)
    assert set(result["metrics"]) == GENERATION | {"nll", "bpd"} and result["heldout_images"] == 40
    heldout = _real_images("mnist-5k", "test", 1, 28, 40, None)
    assert result["metrics"]["nll"] == pytest.approx(exact_nll(model, heldout)["nll"], rel=1e-9)
    only = evaluate(model, metrics=["bpd"], num_heldout=10)
    assert list(only["metrics"]) == ["bpd"] and "num_samples" not in only and "iwae_samples" not in only


def test_select_best_by_a_sample_metric_needs_a_model_that_samples_during_training():
    """Told by the model built from the config (its latent prior is fitted after training), not by its family."""
    from vaegan.training.config import config_from_dict

    def config(**model):
        return config_from_dict({"model": model, "data": {"source": "mnist-5k"},
                                 "train": {"eval_every": 10, "select_best_by": "fd_mnist"}})

    with pytest.raises(ConfigError, match=r"a VAE samples only after training, once its latent prior is fitted\): "
                                          r"elbo_nll, .*recon_mse; got 'fd_mnist'"):
        config(**{"class": "VAE", "prior": "gmm"})
    assert config(**{"class": "VAE"}).train.select_best_by == "fd_mnist"
    assert config(**{"class": "GAN", "clusters": 3}).train.select_best_by == "fd_mnist"  # clusters: before training


def _metrics_beside_a_rank_that_does_not_join(rank: int, init_file: str, done: str) -> None:
    """Process ``rank`` of two: rank 0 computes the torchmetrics-based metrics while rank 1 joins no collective
    (as in training, where only the main process evaluates); a gather would time out after 10 s."""
    import datetime
    import time
    from pathlib import Path

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=10))
    try:
        if rank == 0:
            real, fake = gaussians(60, 4, 0), gaussians(50, 4, 1, shift=1.0)
            values = [frechet_distance(real, fake), *kernel_distance(real, fake, subsets=3, subset_size=20),
                      *inception_score(fake, splits=2)]
            Path(done).write_text(json.dumps(values))
        else:
            deadline = time.time() + 120
            while not Path(done).exists() and time.time() < deadline:
                time.sleep(0.1)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_metrics_on_the_main_process_do_not_gather_across_processes(tmp_path):
    """torchmetrics syncs a metric over the process group on compute(); the trainer evaluates on one process only."""
    import torch.multiprocessing as mp

    done = tmp_path / "values.json"
    mp.spawn(_metrics_beside_a_rank_that_does_not_join, args=(str(tmp_path / "init"), str(done)), nprocs=2)
    real, fake = gaussians(60, 4, 0), gaussians(50, 4, 1, shift=1.0)
    alone = [frechet_distance(real, fake), *kernel_distance(real, fake, subsets=3, subset_size=20),
             *inception_score(fake, splits=2)]
    assert json.loads(done.read_text()) == pytest.approx(alone)


def test_every_metric_has_a_few_words_for_narrow_tables():
    assert all(0 < len(metric.brief) <= 48 for metric in METRICS.values()), [m for m in METRICS.values()
                                                                             if not 0 < len(m.brief) <= 48]
