"""Cluster-conditioned GANs (``clusters=K``) and the mode-seeking term (``mode_seeking``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from model_helpers import gen, tiny_kwargs
from training_utils import read_metrics, reset_accelerate_state, weights_sha256

from vaegan import GAN, AutoModel
from vaegan.errors import ConfigError
from vaegan.models.clusters import ClusterSet
from vaegan.training import Trainer, train
from vaegan.training.config import config_from_dict
from vaegan.training.trainer import list_checkpoints

TINY = tiny_kwargs("gan")


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


def _three_blobs(per_blob: tuple[int, int, int] = (60, 30, 10)) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 4, 4) around three distinct prototypes, and which prototype each came from."""
    g = gen(0)
    prototypes = torch.zeros(3, 1, 4, 4)
    prototypes[0, :, :2] = 1.0   # top half lit
    prototypes[1, :, :, :2] = 1.0  # left half lit
    prototypes[2] = 0.5
    which = torch.cat([torch.full((n,), i) for i, n in enumerate(per_blob)])
    images = (prototypes[which] + 0.05 * torch.randn(len(which), 1, 4, 4, generator=g)).clamp(0, 1)
    return images, which


def test_kmeans_finds_known_clusters_their_shares_and_assigns_images():
    images, which = _three_blobs()
    clusters = ClusterSet(3, 16)
    assert not clusters.fitted
    clusters.fit([images[:50], images[50:]])
    assert clusters.fitted
    assigned = clusters.assign(images)
    # the same partition as the prototypes (cluster ids are arbitrary)
    mapping = {int(w): int(a) for w, a in zip(which, assigned, strict=True)}
    assert len(set(mapping.values())) == 3
    assert all(mapping[int(w)] == int(a) for w, a in zip(which, assigned, strict=True))
    shares = {w: float(clusters.weights[mapping[w]]) for w in range(3)}
    assert shares == pytest.approx({0: 0.6, 1: 0.3, 2: 0.1})


def test_clusters_are_drawn_with_their_training_shares_and_seeded():
    clusters = ClusterSet(3, 16)
    clusters.weights.copy_(torch.tensor([0.6, 0.3, 0.1]))
    drawn = clusters.draw(20_000, gen(0), torch.device("cpu"))
    shares = torch.bincount(drawn, minlength=3) / len(drawn)
    torch.testing.assert_close(shares, torch.tensor([0.6, 0.3, 0.1]), atol=0.015, rtol=0)
    assert torch.equal(drawn, clusters.draw(20_000, gen(0), torch.device("cpu")))
    per_sample = clusters.draw(4, [gen(i) for i in range(4)], torch.device("cpu"))
    assert per_sample.shape == (4,)


def test_fit_needs_at_least_one_image_per_cluster():
    images, _ = _three_blobs((1, 1, 0))
    with pytest.raises(ValueError, match="clusters=3 needs at least 3 training images"):
        ClusterSet(3, 16).fit([images])


def _fitted_gan(**options) -> GAN:
    torch.manual_seed(0)
    model = GAN(**TINY, clusters=4, **options)
    model.on_train_start([torch.rand(40, 1, 28, 28, generator=gen(1))])
    return model


def test_cluster_gan_latent_is_z_and_a_one_hot_cluster():
    model = _fitted_gan()
    assert model.latent_dim == 8 + 4 and model.num_classes is None
    latents = model.prior_latents(6, generator=gen(0))
    assert latents.shape == (6, 12)
    assert torch.equal(latents[:, 8:].sum(1), torch.ones(6)) and set(latents[:, 8:].unique().tolist()) == {0.0, 1.0}
    images = model.sample(6, generator=gen(0))
    assert images.shape == (6, 1, 28, 28) and torch.equal(images, model.sample(6, generator=gen(0)))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, class_labels=1)


def test_cluster_gan_cannot_sample_before_its_clusters_are_fitted():
    model = GAN(**TINY, clusters=4)
    assert not model.can_sample
    with pytest.raises(RuntimeError, match="no fitted clusters yet"):
        model.sample(2)


def test_card_of_an_unfitted_cluster_gan_gives_the_models_reason(tmp_path):
    GAN(**TINY, clusters=4).save_pretrained(tmp_path / "gan")
    card = (tmp_path / "gan" / "README.md").read_text()
    assert "No samples are shown" in card and "no fitted clusters yet" in card and "autoencoder" not in card


def test_cluster_gan_trains_on_the_clusters_of_its_real_images():
    """D sees real images with their nearest cluster; G's fakes are drawn for the batch's clusters."""
    model = _fitted_gan()
    images = torch.rand(8, 1, 28, 28, generator=gen(2))
    seen = []
    original = model.discriminator.forward
    model.discriminator.forward = lambda x, labels=None: (seen.append(labels), original(x, labels))[1]
    model.compute_loss("discriminator", images, step=0)
    real_labels, fake_labels = seen
    assert torch.equal(real_labels, model.cluster_set.assign(images)) and torch.equal(fake_labels, real_labels)


def test_cluster_gan_saves_and_loads_strictly_with_its_clusters(tmp_path):
    model = _fitted_gan()
    model.save_pretrained(tmp_path / "gan", model_card=False)
    loaded = AutoModel.from_pretrained(tmp_path / "gan")
    assert loaded.can_sample
    assert torch.equal(loaded.cluster_set.centers, model.cluster_set.centers)
    assert torch.equal(loaded.cluster_set.weights, model.cluster_set.weights)
    assert torch.equal(loaded.sample(3, generator=gen(0)), model.sample(3, generator=gen(0)))


@pytest.mark.parametrize("options, message", [
    ({"clusters": 1}, "clusters"),
    ({"clusters": 4, "num_classes": 10}, "cannot be combined"),
    ({"mode_seeking": -1.0}, "mode_seeking"),
])
def test_bad_cluster_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        GAN(**TINY, **options)


@pytest.mark.parametrize("options", [{"clusters": 4}, {"num_classes": 3}, {}], ids=["clusters", "classes", "plain"])
def test_mode_seeking_pairs_share_their_class_and_penalise_identical_fakes(options):
    model = _fitted_gan(mode_seeking=1.0) if "clusters" in options else GAN(**TINY, mode_seeking=1.0, **options)
    extra = {"class_labels": torch.tensor([0, 1, 2, 0, 1, 2])} if "num_classes" in options else {}
    latents = torch.randn(6, model.config.latent_dim)
    labels = extra.get("class_labels")
    if "clusters" in options:
        latents = torch.cat([latents, torch.eye(4)[[0, 1, 2, 3, 0, 1]]], dim=1)
    paired, paired_labels, _ = model._paired(latents, labels, labels)
    assert torch.equal(paired[:, :8], latents[:, :8])  # every sample keeps its own z
    assert torch.equal(paired[3:, 8:], paired[:3, 8:])  # ... and the second half repeats the first half's cluster
    if labels is not None:
        assert torch.equal(paired_labels[3:], paired_labels[:3])
    same = torch.zeros(6, 1, 28, 28)
    assert float(model._diversity_ratio(same, paired)) == 0.0  # a collapsed generator: the term is 1 / 1e-5
    losses = model.compute_loss("generator", torch.rand(6, 1, 28, 28), step=0, **extra)
    assert math.isfinite(float(losses["loss"].detach())) and float(losses["diversity_ratio"]) > 0


def _config(tmp_path: Path, max_steps: int = 4, **model):
    return config_from_dict({
        "model": {"class": "GAN", **TINY, "clusters": 4, **model},
        "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path), "epochs": 1, "max_steps": max_steps, "batch_size": 32,
                  "log_every": 1, "checkpoint_every": 2, "num_preview_images": 4, "sample_every_epochs": 1},
    })


def test_trainer_clusters_the_data_first_and_the_model_samples(tmp_path):
    model_dir = train(_config(tmp_path, mode_seeking=1.0, diff_augment="translation"))
    metrics = read_metrics(tmp_path)
    losses = [v for m in metrics for k, v in m.items() if k.endswith("loss")]
    assert len(metrics) == 4 and losses and all(math.isfinite(v) for v in losses)
    model = AutoModel.from_pretrained(model_dir)
    assert model.can_sample and float(model.cluster_set.weights.sum()) == pytest.approx(1.0)
    assert (model.cluster_set.weights > 0).all()  # k-means leaves no cluster empty
    assert torch.isfinite(model.sample(3, generator=gen(0))).all()


def test_resume_keeps_the_clusters_and_is_bit_exact(tmp_path, monkeypatch):
    """A resumed run takes the clusters from its checkpoint (no second k-means) and ends where one run ends."""
    whole = train(_config(tmp_path / "whole"))
    reset_accelerate_state()
    train(_config(tmp_path / "split", max_steps=2))
    reset_accelerate_state()
    assert [p.name for p in list_checkpoints(tmp_path / "split")] == ["step_00000002"]
    monkeypatch.setattr(GAN, "on_train_start", lambda self, batches: pytest.fail("a resumed run must not re-cluster"))
    split = Trainer(_config(tmp_path / "split"), resume="latest").train()
    assert weights_sha256(AutoModel.from_pretrained(split)) == weights_sha256(AutoModel.from_pretrained(whole))
