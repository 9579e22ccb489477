"""The Gated PixelCNN: masking (no pixel sees itself or a later one), exact likelihoods, the cached sampler drawing
the textbook loop's images, completion, conditioning, save/load and config errors."""

from __future__ import annotations

import math

import pytest
import torch

from vaegan import AutoModel, ConfigError, PixelCNN
from vaegan.models.masked import CachedPass


def seed(n: int) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def tiny(**overrides) -> PixelCNN:
    config = dict(image_size=7, in_channels=1, channels=8, num_layers=3, head_channels=8) | overrides
    model = PixelCNN(**config)
    with torch.no_grad():  # untrained weights give near-constant logits: make every dependency visible
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=seed(1)) * 0.5)
    return model


@pytest.mark.parametrize("options", [{}, {"output": "categorical", "in_channels": 3}, {"kernel_size": 5},
                                     {"num_classes": 3}, {"dilations": [1, 2, 3]},
                                     {"kernel_size": 5, "dilations": [1, 4, 2]}])
def test_each_pixel_depends_only_on_the_pixels_before_it(options):
    model = tiny(**options)
    labels = torch.tensor([1]) if "num_classes" in options else None
    c, h, w = model.image_shape
    images = torch.rand(1, c, h, w, generator=seed(0), requires_grad=True)
    logits = model.net(images * 2 - 1, labels)
    for position in [0, 10, 24, h * w - 1]:
        i, j = divmod(position, w)
        grad, = torch.autograd.grad(logits[:, :, i, j].sum(), images, retain_graph=True)
        seen = (grad.abs().sum((0, 1)) > 0).flatten().nonzero().flatten().tolist()
        assert all(p < position for p in seen), (position, seen)
        if position >= w + 1:  # no blind spot: the pixel above, to the left and above-right are all seen
            assert {position - 1, position - w, position - w + 1} <= set(seen) or j == w - 1


@pytest.mark.parametrize("dilations", [None, [1, 2]])
def test_log_likelihood_is_a_normalised_density_over_all_binary_images(dilations):
    model = tiny(image_size=3, num_layers=2, dilations=dilations)
    every = torch.tensor([[int(b) for b in f"{n:09b}"] for n in range(2**9)], dtype=torch.float32).view(-1, 1, 3, 3)
    total = torch.logsumexp(model.log_likelihood(every).double(), 0)
    assert abs(float(total)) < 1e-5  # sum over all 512 images of p(x) is 1


def test_categorical_likelihood_sums_to_one_over_a_pixels_levels():
    model = tiny(image_size=2, output="categorical", num_layers=2)
    base = torch.zeros(256, 1, 2, 2)
    base[:, 0, 0, 0] = torch.arange(256) / 255  # every value of the first pixel, the others fixed at 0
    log_p = model.log_likelihood(base)
    with torch.no_grad():
        logits = model._logits(base, None)  # the other three pixels' log-probabilities of their value 0
    rest = torch.log_softmax(logits, dim=2)[:, 0, 0].flatten(1)[:, 1:].sum(1)
    assert abs(float(torch.logsumexp((log_p - rest).double(), 0))) < 1e-5


def test_bernoulli_likelihood_refuses_grey_images_and_wrong_shapes():
    model = tiny()
    with pytest.raises(ValueError, match="binary images"):
        model.log_likelihood(torch.full((1, 1, 7, 7), 0.5))
    with pytest.raises(ValueError, match=r"shape \(B, 1, 7, 7\)"):
        model.log_likelihood(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("options", [{}, {"output": "categorical", "in_channels": 2}, {"num_classes": 4},
                                     {"dilations": [1, 2, 4]}])
def test_cached_sampler_draws_the_textbook_loops_images(options):
    model = tiny(**options)
    labels = [0, 3, 1] if "num_classes" in options else None
    fast = model.sample(3, generator=seed(5), class_labels=labels)
    slow = model.sample(3, generator=seed(5), class_labels=labels, sampler="textbook")
    assert torch.equal(fast, slow)
    assert fast.shape == (3, *model.image_shape) and fast.min() >= 0 and fast.max() <= 1
    assert not torch.equal(fast, model.sample(3, generator=seed(6), class_labels=labels))


@pytest.mark.parametrize("dilations", [None, [1, 3, 2]])
def test_cached_pass_gives_the_full_networks_logits(dilations):
    model = tiny(output="categorical", in_channels=2, num_classes=2, kernel_size=5, dilations=dilations)
    x = torch.rand(2, 2, 7, 7, generator=seed(0)) * 2 - 1
    labels = torch.tensor([0, 1])
    full = model.net(x, labels)
    cached = CachedPass(model.net, x, labels)
    for i in range(7):
        for j in range(7):
            assert torch.allclose(cached.logits(i, j), full[:, :, i, j], atol=1e-5)


def test_samples_are_binary_for_bernoulli_and_levels_for_categorical():
    assert set(tiny().sample(2, generator=seed(0)).unique().tolist()) <= {0.0, 1.0}
    levels = tiny(output="categorical").sample(2, generator=seed(0)) * 255
    assert torch.equal(levels, levels.round())


def test_completion_keeps_the_known_pixels_and_redraws_the_rest():
    model = tiny()
    images = (torch.rand(2, 1, 7, 7, generator=seed(0)) > 0.5).float()
    keep = torch.zeros(7, 7, dtype=torch.bool)
    keep[:3] = True  # the top three rows
    out = model.complete(images, keep, generator=seed(1), num_completions=4)
    assert out.shape == (8, 1, 7, 7)
    assert torch.equal(out[:4, :, :3], images[:1, :, :3].expand(4, -1, -1, -1))
    assert torch.equal(out[4:, :, :3], images[1:, :, :3].expand(4, -1, -1, -1))
    assert len({tuple(o.flatten().tolist()) for o in out[:4]}) > 1  # four different completions
    same = model.complete(images, keep, generator=seed(1), num_completions=4, sampler="textbook")
    assert torch.equal(out, same)


def test_completion_errors_name_the_problem():
    model = tiny()
    images = torch.zeros(1, 1, 7, 7)
    with pytest.raises(ValueError, match="nothing to complete"):
        model.complete(images, torch.ones(7, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="known_mask must have shape"):
        model.complete(images, torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        model.complete(images, torch.ones(7, 7))
    with pytest.raises(ValueError, match="num_completions"):
        model.complete(images, torch.zeros(7, 7, dtype=torch.bool), num_completions=0)


def test_sampling_argument_errors():
    model = tiny()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(1, temperature=bad)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, sampler="fast")
    with pytest.raises(ValueError, match="num_samples"):
        model.sample(0)


def test_class_conditioning_changes_the_density_and_needs_labels():
    model = tiny(num_classes=3)
    images = (torch.rand(2, 1, 7, 7, generator=seed(0)) > 0.5).float()
    a = model.log_likelihood(images, class_labels=[0, 0])
    b = model.log_likelihood(images, class_labels=[2, 2])
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_likelihood(images)
    drawn = model.sample(4, generator=seed(0))  # labels drawn with the generator
    assert torch.equal(drawn, model.sample(4, generator=seed(0)))


def test_capabilities_and_loss():
    assert PixelCNN.capabilities() == {"log_likelihood", "completion"}
    model = tiny()
    assert model.latent_dim is None and model.latent_shape is None and not model.has_encoder
    images = (torch.rand(4, 1, 7, 7, generator=seed(0)) > 0.5).float()
    losses = model.compute_loss("model", images, 0)
    assert torch.allclose(losses["loss"], -model.log_likelihood(images).mean(), atol=1e-4)
    assert math.isclose(float(losses["bpd"]), losses["loss"].item() / (49 * math.log(2)), rel_tol=1e-5)
    with pytest.raises(NotImplementedError, match="no latent space"):
        model.interpolate(torch.zeros(1), torch.zeros(1))


def test_save_and_load_give_the_same_density_and_samples(tmp_path):
    model = tiny(output="categorical", num_classes=2)
    model.save_pretrained(tmp_path / "pixelcnn")
    loaded = AutoModel.from_pretrained(tmp_path / "pixelcnn")
    assert type(loaded) is PixelCNN and loaded.config.output == "categorical"
    images = torch.rand(2, 1, 7, 7, generator=seed(0))
    assert torch.equal(loaded.log_likelihood(images, [0, 1]), model.log_likelihood(images, [0, 1]))
    assert torch.equal(loaded.sample(2, generator=seed(3), class_labels=1), model.sample(2, generator=seed(3),
                                                                                         class_labels=1))


@pytest.mark.parametrize(("options", "message"), [
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"kernel_size": 1}, "kernel_size"),
    ({"output": "gaussian"}, "output"),
    ({"num_layers": 0}, "num_layers"),
    ({"channels": 10**6}, "channels"),
    ({"class_names": ["a", "b"]}, "num_classes"),
    ({"num_layers": 2, "dilations": [1, 2, 4]}, r"one entry per layer \(2"),
    ({"num_layers": 2, "dilations": [2, 1]}, "first layer's dilation must be 1"),
    ({"num_layers": 2, "dilations": [1, 0]}, "every dilation"),
    ({"num_layers": 2, "dilations": "1,2"}, "dilations must be a list"),
    ({"clusters": 1}, "clusters"),
    ({"clusters": 4, "num_classes": 10}, "exclude each other"),
])
def test_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        PixelCNN(**options)


def _fitted_mixture(clusters: int = 3) -> PixelCNN:
    model = tiny(image_size=3, num_layers=2, clusters=clusters)
    images = (torch.rand(30, 1, 3, 3, generator=seed(2)) > 0.5).float()
    assert not model.can_sample
    model.on_train_start([images[:20], images[20:]])
    assert model.can_sample
    return model


def test_a_mixture_over_clusters_is_a_normalised_density_and_samples_its_clusters_by_share():
    model = _fitted_mixture()
    every = torch.tensor([[int(b) for b in f"{n:09b}"] for n in range(2**9)], dtype=torch.float32).view(-1, 1, 3, 3)
    log_p = model.log_likelihood(every).double()
    assert abs(float(torch.logsumexp(log_p, 0))) < 1e-5  # sum over all 512 images of sum_k w_k p(x | k) is 1
    components = torch.stack([model._log_probs(every, torch.full((512,), k)) for k in range(3)], 1).double()
    assert torch.all(log_p >= components.max(1).values + model.cluster_set.weights.double().log().max() - 1e-5)
    generator = seed(0)  # sample() draws the clusters with their shares, then the pixels given them
    drawn = model.cluster_set.draw(4, generator, torch.device("cpu"))
    manual = model._draw(torch.zeros(4, 1, 3, 3), torch.zeros(4, 1, 3, 3, dtype=torch.bool), generator, 1.0, drawn,
                         "cached")
    assert torch.equal(model.sample(4, generator=seed(0)), manual)
    with pytest.raises(ValueError, match="class_labels"):
        model.sample(2, class_labels=[0, 1])


def test_a_mixture_trains_on_each_images_cluster_and_completes_with_the_nearest_on_the_known_pixels(monkeypatch):
    model = _fitted_mixture(2)
    seen = []
    original = model._log_probs
    monkeypatch.setattr(model, "_log_probs", lambda images, labels: seen.append(labels) or original(images, labels))
    images = (torch.rand(5, 1, 3, 3, generator=seed(4)) > 0.5).float()
    model.compute_loss("model", images, step=0)
    assert torch.equal(seen[0], model.cluster_set.assign(images))
    known = torch.zeros(3, 3, dtype=torch.bool)
    known[0] = True
    drawn = []
    draw = model._draw
    monkeypatch.setattr(model, "_draw", lambda canvas, known_, g, t, labels, s: drawn.append(labels) or draw(
        canvas, known_, g, t, labels, s))
    model.complete(images, known, generator=seed(0), num_completions=2)
    expected = model.cluster_set.assign(images, known.expand(5, 1, 3, 3)).repeat_interleave(2)
    assert torch.equal(drawn[0], expected)


def _train_tiny(output_dir, **model_options):
    """A 12 x 12 PixelCNN trained for one epoch on 128 dynamically binarized digits; the saved folder."""
    from training_utils import reset_accelerate_state

    from vaegan.training import train
    from vaegan.training.config import config_from_dict

    reset_accelerate_state()
    return train(config_from_dict({
        "model": {"class": "PixelCNN", "image_size": 12, "channels": 8, "num_layers": 2, "head_channels": 8,
                  **model_options},
        "data": {"source": "mnist-5k", "limit": 128, "binarize": "dynamic"},
        "train": {"output_dir": str(output_dir), "epochs": 1, "batch_size": 32, "log_every": 1,
                  "num_preview_images": 10},
    }))


def test_a_mixture_saves_its_clusters_and_trains_with_the_trainer(tmp_path):
    model = AutoModel.from_pretrained(_train_tiny(tmp_path, clusters=4))
    assert model.can_sample and float(model.cluster_set.weights.sum()) == pytest.approx(1.0)
    assert torch.equal(model.sample(3, generator=seed(0)), model.sample(3, generator=seed(0)))
    model.save_pretrained(tmp_path / "again", model_card=False)
    again = PixelCNN.from_pretrained(tmp_path / "again")
    assert torch.equal(again.cluster_set.centers, model.cluster_set.centers)
    assert torch.equal(again.sample(3, generator=seed(0)), model.sample(3, generator=seed(0)))
    card = (tmp_path / "model" / "README.md").read_text()
    assert "mixture over 4 k-means clusters" in card and "latent dimensions" not in card


def test_trains_on_binarized_digits_with_the_trainer(tmp_path):
    import json

    model_dir = _train_tiny(tmp_path, num_classes=10)
    model = AutoModel.from_pretrained(model_dir)
    assert type(model) is PixelCNN and model.num_classes == 10
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["steps"] == 4 and summary["metrics"]["heldout_loss"] > 0
    assert (tmp_path / "samples.png").is_file() and not (tmp_path / "interpolation.png").exists()
    assert "binarize: dynamic" in (model_dir / "training_config.yaml").read_text()


def test_cli_complete_writes_the_kept_part_and_the_completions(tmp_path, capsys):
    from PIL import Image

    from vaegan import VAE
    from vaegan.cli import main
    from vaegan.completion import keep_mask

    tiny(image_size=8).save_pretrained(tmp_path / "pc")
    Image.fromarray((torch.rand(8, 8, generator=seed(0)).numpy() * 255).astype("uint8")).save(tmp_path / "d.png")
    assert main(["complete", str(tmp_path / "pc"), str(tmp_path / "d.png"), "-n", "3", "--keep", "top-quarter",
                 "-o", str(tmp_path / "out" / "c.png")]) == 0
    width, height = Image.open(tmp_path / "out" / "c.png").size
    assert width > 3 * height  # one row: the kept part and three completions
    assert keep_mask("top-quarter", 8, 8)[:2].all() and not keep_mask("top-quarter", 8, 8)[2:].any()
    with pytest.raises(ValueError, match="Keep must be one of top-half, top-third, top-quarter, top-two-thirds, "
                                         "got 'all'"):
        keep_mask("all", 8, 8)
    capsys.readouterr()
    assert main(["complete", str(tmp_path / "pc"), str(tmp_path / "d.png"), "-n", "0", "-o", "x.png"]) == 2
    assert "--num-completions must be between 1 and 1024, got 0" in capsys.readouterr().err
    VAE(architecture="mlp", hidden_dims=(8,), image_size=8).save_pretrained(tmp_path / "vae")
    assert main(["complete", str(tmp_path / "vae"), str(tmp_path / "d.png"), "-o", "x.png"]) == 2
    assert "cannot complete images" in capsys.readouterr().err
    assert main(["complete", str(tmp_path / "pc"), str(tmp_path / "missing.png"), "-o", "x.png"]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_evaluate_binarizes_heldout_digits_for_a_binarized_model(tmp_path, capsys):
    import json

    from vaegan.cli import main
    from vaegan.data import binarize_heldout, load_image_dataset
    from vaegan.metrics import evaluate

    model = tiny(image_size=28)
    with pytest.raises(ValueError, match="binary images"):  # grey held-out digits: no exact Bernoulli likelihood
        evaluate(model, metrics=["nll"], num_heldout=20)
    result = evaluate(model, metrics=["nll", "bpd"], num_heldout=20, binarize=True)
    grey = load_image_dataset("mnist-5k", image_size=28, channels=1, split="test", limit=20)
    bits = binarize_heldout(torch.stack([grey[i][0] for i in range(20)]))
    assert result["heldout_binarized"] and math.isclose(result["metrics"]["nll"],
                                                        -model.log_likelihood(bits).mean().item(), rel_tol=1e-5)
    assert math.isclose(result["metrics"]["bpd"], result["metrics"]["nll"] / (784 * math.log(2)), rel_tol=1e-6)
    # vaegan evaluate reads the model's training config: binarized training -> binarized held-out digits
    model.save_pretrained(tmp_path / "pc", training_config={"data": {"binarize": "dynamic"}})
    assert main(["evaluate", str(tmp_path / "pc"), "--metrics", "nll", "--num-heldout", "20",
                 "-o", str(tmp_path / "r.json")]) == 0
    assert "binarized once (seed 0) as in the model's training" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["nll"] == pytest.approx(result["metrics"]["nll"])
