"""The VQ-VAE with a learned prior: contract, codebook (EMA, restarts, straight-through), prior, two-component folder,
training in two stages, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_utils import reset_accelerate_state, stop_after_checkpoint, weights_sha256

from vaegan import VQVAE, AutoModel
from vaegan.errors import ConfigError
from vaegan.metrics import codebook_usage
from vaegan.metrics.registry import applicable_metrics
from vaegan.models.augment import shift
from vaegan.models.quantize import EMAVectorQuantizer
from vaegan.testing import GenerativeModelContract
from vaegan.training.config import config_from_dict
from vaegan.training.trainer import Trainer, train

TINY = {"block_out_channels": [8, 8, 8], "code_dim": 4, "num_codes": 8, "prior_embedding_dim": 4,
        "prior_channels": 8, "prior_layers": 2, "prior_head_channels": 8}
STAGES = {"vqvae": {"max_steps": 3}, "prior": {"max_steps": 3}}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny(seed: int = 0, **overrides) -> VQVAE:
    torch.manual_seed(seed)
    return VQVAE(**{**TINY, **overrides}).eval()


class TestVQVAE(GenerativeModelContract):
    model_class = VQVAE
    tiny_config = TINY
    invalid_configs = [({"norm_num_groups": 3}, "norm_num_groups=3 must divide"),
                       ({"block_out_channels": [8, 8, 8, 8]}, "not divisible by 8"),
                       ({"prior": "flow"}, "prior='flow' is not supported"),
                       ({"prior": None, "num_classes": 10}, "prior is null"),
                       ({"prior_kernel_size": 4}, "kernel_size must be odd"),
                       ({"ema_decay": 1.0}, "ema_decay"),
                       ({"prior_max_shift": 15}, "prior_max_shift"),
                       ({"prior_clusters": 4, "num_classes": 10}, "on classes .* or on clusters"),
                       ({"prior": None, "prior_clusters": 4}, "prior_clusters conditions the prior on clusters")]
    train_config = {"stages": STAGES}


class TestClassConditionalVQVAE(GenerativeModelContract):
    model_class = VQVAE
    tiny_config = {**TINY, "num_classes": 10}
    train_config = {"stages": STAGES}


# ---------------------------------------------------------------------------------------------- the codebook
def _quantizer(**kwargs) -> EMAVectorQuantizer:
    quantizer = EMAVectorQuantizer(4, 2, commitment_cost=0.25, **{"ema_decay": 0.5, "dead_code_threshold": 0.0,
                                                                  **kwargs})
    with torch.no_grad():
        quantizer.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [10, 10], [-10, 10], [10, -10]]))
        quantizer.ema_weight.copy_(quantizer.embedding.weight)
        quantizer.ema_count.fill_(1.0)
    return quantizer


def _latents_near(point: list[float], n: int = 6) -> torch.Tensor:
    return (torch.tensor(point) + 0.1 * torch.randn(n, 2, generator=gen(0))).T.reshape(1, 2, 1, n)


def test_ema_update_moves_the_assigned_code_towards_its_latents_and_leaves_the_others():
    quantizer = _quantizer()
    before = quantizer.embedding.weight.clone()
    latents = _latents_near([1.0, 1.0])
    _, _, codes = quantizer.quantize(latents, update=True)
    assert (codes == 0).all()
    after = quantizer.embedding.weight
    mean = latents.flatten(2).mean(-1)[0]
    assert (after[0] - mean).norm() < 0.6 * (before[0] - mean).norm()  # decay 0.5: half way, in one step
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-3)
    # Without update (the prior stage, evaluation), the codebook stays put.
    quantizer.quantize(latents)
    assert torch.equal(quantizer.embedding.weight, after)


def test_dead_codes_restart_at_encoder_outputs_of_the_batch():
    quantizer = _quantizer(dead_code_threshold=1.0)
    counts = torch.tensor([100.0, 100.0, 0.5, 100.0])  # code 2 is dead
    quantizer.ema_count.copy_(counts)
    quantizer.ema_weight.mul_(counts[:, None])
    latents = _latents_near([1.0, 1.0])
    torch.manual_seed(0)
    quantizer.quantize(latents, update=True)
    outputs = latents.flatten(2)[0].T
    restarted = quantizer.embedding.weight[2]
    assert torch.isclose(outputs, restarted, atol=1e-4).all(1).any(), "code 2 is not one of the batch's latents"
    torch.testing.assert_close(quantizer.embedding.weight[3].detach(), torch.tensor([10.0, -10.0]))  # not restarted
    # A fresh quantizer has no counts: the first batch places the whole codebook on encoder outputs.
    fresh = EMAVectorQuantizer(4, 2, 0.25, ema_decay=0.99, dead_code_threshold=1.0)
    fresh.quantize(latents, update=True)
    for code in fresh.embedding.weight:
        assert torch.isclose(outputs, code, atol=1e-4).all(1).any()


def test_straight_through_gradients_reach_the_encoder_and_the_ema_codebook_gets_none():
    model = tiny().train()
    losses = model.compute_loss("vqvae", torch.rand(4, 1, 28, 28, generator=gen(0)), 0)
    losses["loss"].backward()
    assert model.vqvae.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantizer.embedding.weight.grad is None
    assert all(p is not model.quantizer.embedding.weight for p in model.phase_parameters("vqvae"))


def test_without_ema_the_codebook_learns_by_gradients():
    model = tiny(ema_decay=None).train()
    model.compute_loss("vqvae", torch.rand(4, 1, 28, 28, generator=gen(0)), 0)["loss"].backward()
    assert model.quantizer.embedding.weight.grad.abs().sum() > 0
    assert any(p is model.quantizer.embedding.weight for p in model.phase_parameters("vqvae"))


# ---------------------------------------------------------------------------------------------- codes and the prior
def test_codes_round_trip_and_bad_code_grids_are_refused():
    model = tiny()
    codes = torch.randint(0, 8, (3, 7, 7), generator=gen(0))
    assert torch.equal(model.quantizer.codes(model.quantizer.lookup(codes)), codes)
    images = torch.rand(3, 1, 28, 28, generator=gen(1))
    assert model.encode_codes(images).shape == (3, 7, 7)
    assert torch.equal(model.encode_images(images), model.quantizer.lookup(model.encode_codes(images)))
    assert torch.equal(model.reconstruct(images), model.decode_codes(model.encode_codes(images)))
    with pytest.raises(ValueError, match="indices from 0 to 7"):
        model.decode_codes(torch.full((1, 7, 7), 8))
    with pytest.raises(ValueError, match=r"shape \(B, 7, 7\)"):
        model.decode_codes(torch.zeros(1, 6, 6, dtype=torch.long))


def test_the_prior_reads_only_the_codes_before_each_position():
    prior = tiny().prior
    codes = torch.randint(0, 8, (1, 7, 7), generator=gen(0))
    with torch.no_grad():
        base = prior.logits(codes)
        for position in (0, 10, 24, 48):
            changed = codes.clone().flatten()
            changed[position:] = (changed[position:] + 1) % 8
            other = prior.logits(changed.view(1, 7, 7))
            same = base.flatten(2)[..., :position + 1], other.flatten(2)[..., :position + 1]
            torch.testing.assert_close(*same, rtol=0, atol=1e-5)


def test_cached_sampling_draws_what_one_full_pass_per_position_draws():
    prior = tiny(3, prior_layers=3, prior_dilations=[1, 2, 1]).prior
    codes = prior.sample_codes(5, gen(0))
    expected = torch.zeros_like(codes)
    generator = gen(0)
    with torch.no_grad():
        for i in range(7):
            for j in range(7):
                cdf = prior.logits(expected)[:, :, i, j].softmax(-1).cumsum(-1)
                uniform = torch.rand(5, generator=generator)
                expected[:, i, j] = torch.searchsorted(cdf, uniform[:, None]).squeeze(-1).clamp_max(7)
    assert torch.equal(codes, expected)


def test_completion_keeps_the_known_codes_and_pixels():
    model = tiny()
    images = torch.rand(2, 1, 28, 28, generator=gen(0))
    known = torch.zeros(28, 28, dtype=torch.bool)
    known[:14] = True  # the top half: code rows 0 to 2 and half of row 3
    done = model.complete(images, known, generator=gen(0), num_completions=3)
    assert done.shape == (6, 1, 28, 28)
    assert torch.equal(done[:, :, :14], images.repeat_interleave(3, 0)[:, :, :14])
    codes = model.encode_codes(done)
    assert not torch.equal(done[0], done[1]), "the completions of one image are all the same"
    assert codes.shape == (6, 7, 7)
    with pytest.raises(ValueError, match="nothing to complete"):
        model.complete(images, torch.ones(28, 28, dtype=torch.bool))


# ---------------------------------------------------------------------------------------------- folders
def test_the_pair_saves_as_two_components_and_loads_as_one_model(tmp_path):
    model = tiny(1)
    model.save_pretrained(tmp_path / "model")
    root = tmp_path / "model"
    assert not (root / "diffusion_pytorch_model.safetensors").exists()
    for part, class_name in (("vqvae", "VQVAE"), ("prior", "CodePrior")):
        assert (root / part / "diffusion_pytorch_model.safetensors").is_file()
        assert json.loads((root / part / "config.json").read_text())["_class_name"] == class_name
    assert json.loads((root / "vqvae" / "config.json").read_text())["prior"] is None
    loaded = AutoModel.from_pretrained(root)
    assert type(loaded) is VQVAE and weights_sha256(loaded) == weights_sha256(model)
    assert torch.equal(loaded.sample(4, generator=gen(0)), model.sample(4, generator=gen(0)))
    text = (root / "README.md").read_text()
    assert "two parts" in text and "`vqvae/`" in text and "`prior/`" in text and "codebook of 8 vectors" in text
    # Saving again over the folder replaces the components in place.
    tiny(2).save_pretrained(root)
    assert weights_sha256(AutoModel.from_pretrained(root)) == weights_sha256(tiny(2))


def test_a_model_saved_over_a_pair_removes_its_components_and_keeps_the_users_folders(tmp_path):
    root = tmp_path / "model"
    tiny(1).save_pretrained(root)
    (root / "notes").mkdir()
    (root / "notes" / "config.json").write_text('{"_class_name": "MyThing"}')  # not a vaegan class: kept
    (root / "results").mkdir()
    (root / "results" / "config.json").write_text('{"_class_name": "VQVAE"}')  # no family saves a results/
    (root / "prior" / "table.csv").write_text("a,b")  # a file no save writes: the folder is the user's now
    alone = tiny(2).autoencoder()
    alone.save_pretrained(root)
    assert not (root / "vqvae").exists() and (root / "prior" / "table.csv").is_file()
    assert (root / "notes" / "config.json").is_file() and (root / "results" / "config.json").is_file()
    assert (root / "diffusion_pytorch_model.safetensors").is_file()
    assert weights_sha256(AutoModel.from_pretrained(root)) == weights_sha256(alone)
    tiny(3).save_pretrained(root)  # and back: the pair leaves no root weights behind
    assert not (root / "diffusion_pytorch_model.safetensors").exists()
    assert weights_sha256(AutoModel.from_pretrained(root)) == weights_sha256(tiny(3))


def test_the_vqvae_component_alone_reconstructs_and_says_how_to_get_a_prior(tmp_path):
    model = tiny(1)
    model.save_pretrained(tmp_path / "model")
    alone = AutoModel.from_pretrained(tmp_path / "model", subfolder="vqvae")
    assert type(alone) is VQVAE and alone.prior is None and not alone.can_sample
    images = torch.rand(2, 1, 28, 28, generator=gen(0))
    assert torch.equal(alone.reconstruct(images), model.reconstruct(images))
    assert torch.equal(alone.encode_codes(images), model.encode_codes(images))
    for call in (lambda: alone.sample(2, generator=gen(0)), lambda: alone.complete(images, torch.zeros(28, 28).bool())):
        with pytest.raises(RuntimeError, match=r"needs a prior over its code grids.*--stage prior"):
            call()
    alone.save_pretrained(tmp_path / "alone")  # one component: the usual folder
    assert (tmp_path / "alone" / "diffusion_pytorch_model.safetensors").is_file()
    assert "needs a prior" in (tmp_path / "alone" / "README.md").read_text()


def test_components_that_disagree_with_the_root_config_are_refused(tmp_path):
    tiny(prior_dilations=[1, 1]).save_pretrained(tmp_path / "model")
    path = tmp_path / "model" / "prior" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dilations": [1, 2]}))
    with pytest.raises(ConfigError, match=r"components do not match the root config.json \(prior/dilations\)"):
        AutoModel.from_pretrained(tmp_path / "model")


def test_push_to_the_hub_and_load_samples_the_same(hub):
    model = tiny(1)
    model.push_to_hub("org/mnist-vqvae")
    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files("org/mnist-vqvae"))
    assert {"config.json", "README.md", "vqvae/config.json", "vqvae/diffusion_pytorch_model.safetensors",
            "prior/config.json", "prior/diffusion_pytorch_model.safetensors"} <= files
    loaded = AutoModel.from_pretrained("org/mnist-vqvae")
    assert torch.equal(loaded.sample(6, generator=gen(0)), model.sample(6, generator=gen(0)))
    alone = AutoModel.from_pretrained("org/mnist-vqvae", subfolder="vqvae")
    assert not alone.can_sample and weights_sha256(alone.vqvae) == weights_sha256(model.vqvae)
    # Another model pushed over the pair: the pair's components go in the same commit.
    other = tiny(2).autoencoder()
    other.push_to_hub("org/mnist-vqvae")
    files = set(HfApi().list_repo_files("org/mnist-vqvae"))
    assert "diffusion_pytorch_model.safetensors" in files and not any(f.startswith(("vqvae/", "prior/")) for f in files)
    assert weights_sha256(AutoModel.from_pretrained("org/mnist-vqvae")) == weights_sha256(other)
    model.push_to_hub("org/mnist-vqvae")  # and the pair again: its own components are kept
    assert weights_sha256(AutoModel.from_pretrained("org/mnist-vqvae")) == weights_sha256(model)
    assert "diffusion_pytorch_model.safetensors" not in set(HfApi().list_repo_files("org/mnist-vqvae"))


# ---------------------------------------------------------------------------------------------- training
def _config(out, model=None, **train_settings):
    return config_from_dict({
        "model": {"class": "VQVAE", **TINY, **(model or {})},
        "data": {"source": "mnist-5k", "limit": 96},
        "train": {"output_dir": str(out), "batch_size": 32, "log_every": 1, "checkpoint_every": 2,
                  "num_preview_images": 4, "stages": STAGES, **train_settings},
    })


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    yield
    reset_accelerate_state()


def test_both_stages_train_and_the_prior_stage_leaves_the_autoencoder_alone(tmp_path):
    from safetensors.torch import load_file

    model_dir = train(_config(tmp_path / "run", checkpoint_every=3))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    stages = [(row["step"], row["stage"]) for row in rows if "stage" in row]
    assert stages == [(1, "vqvae"), (2, "vqvae"), (3, "vqvae"), (4, "prior"), (5, "prior"), (6, "prior")]
    after_vqvae = load_file(tmp_path / "run" / "checkpoints" / "step_00000003" / "model.safetensors")
    final = AutoModel.from_pretrained(model_dir)
    assert final.can_sample and final.sample(2, generator=gen(0)).shape == (2, 1, 28, 28)
    for name, tensor in final.vqvae.state_dict().items():  # weights and the codebook's EMA buffers
        assert torch.equal(after_vqvae[f"model.vqvae.{name}"], tensor), name
    assert any(not torch.equal(after_vqvae[f"model.code_prior.{name}"], tensor)
               for name, tensor in final.prior.state_dict().items())


@pytest.mark.parametrize("stop_at, model", [(2, None), (4, None), (4, {"prior_max_shift": 2}),
                                            (4, {"prior_clusters": 3})],
                         ids=["vqvae-stage", "prior-stage", "prior-stage-shifted", "prior-stage-clusters"])
def test_resume_in_either_stage_is_exact(tmp_path, monkeypatch, stop_at, model):
    straight = train(_config(tmp_path / "straight", model=model))
    reset_accelerate_state()
    original = stop_after_checkpoint(monkeypatch, stop_at)
    config = _config(tmp_path / "split", model=model)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    reset_accelerate_state()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = train(config, resume="latest")
    assert weights_sha256(AutoModel.from_pretrained(resumed)) == weights_sha256(AutoModel.from_pretrained(straight))


def test_shift_moves_each_image_by_at_most_its_maximum():
    digits = torch.zeros(64, 1, 12, 12)
    digits[:, :, 4:8, 5:7] = 1.0  # a stroke 4 pixels from every border
    shifted = shift(digits, 2, generator=gen(0))
    assert torch.equal(shift(digits, 0, generator=gen(0)), digits)
    assert torch.equal(shifted.sum((1, 2, 3)), digits.sum((1, 2, 3)))  # nothing falls off the border
    rows, cols = shifted[:, 0].amax(2).argmax(1) - 4, shifted[:, 0].amax(1).argmax(1) - 5
    assert rows.abs().max() == 2 and cols.abs().max() == 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # many different shifts
    assert torch.equal(shifted, shift(digits, 2, generator=gen(0)))  # seeded


def test_the_prior_stage_encodes_shifted_digits_and_the_autoencoder_stage_does_not(monkeypatch):
    model, seen = tiny(0, prior_max_shift=3).train(), []
    original = model.encode_codes
    monkeypatch.setattr(model, "encode_codes", lambda images: seen.append(images) or original(images))
    digits = torch.zeros(16, 1, 28, 28)
    digits[:, :, 10:18, 12:16] = 1.0
    torch.manual_seed(0)
    model.compute_loss("prior", digits, step=0)["loss"].backward()
    [encoded] = seen
    assert encoded.shape == digits.shape and not torch.equal(encoded, digits)
    assert torch.equal(encoded.sum((1, 2, 3)), digits.sum((1, 2, 3)))
    model.compute_loss("vqvae", digits, step=0)
    assert len(seen) == 1  # the autoencoder trains on the digits as they are


def test_a_prior_for_a_vqvae_alone_with_stage_prior(tmp_path):
    tiny(1).autoencoder().save_pretrained(tmp_path / "alone")
    with pytest.raises(ConfigError, match="set model.prior: pixelcnn"):
        train(_config(tmp_path / "none", model={"prior": None}), init_from=str(tmp_path / "alone"), stage="prior")
    reset_accelerate_state()
    model_dir = train(_config(tmp_path / "run", model={"prior": "pixelcnn"}), init_from=str(tmp_path / "alone"),
                      stage="prior")
    pair = AutoModel.from_pretrained(model_dir)
    assert pair.can_sample and weights_sha256(pair.vqvae) == weights_sha256(tiny(1).vqvae)


# ---------------------------------------------------------------------------------------------- metrics
class _FixedCodes:
    """Codes 0 to 3 of a codebook of 8, each on a quarter of the positions."""

    codebook_size = 8

    @staticmethod
    def supports(capability):
        return capability == "codes"

    def encode_codes(self, images, class_labels=None):
        return torch.arange(4).repeat(len(images), 4)


def test_codebook_usage_is_the_perplexity_of_the_code_histogram_and_the_unused_codes():
    usage = codebook_usage(_FixedCodes(), torch.rand(10, 1, 28, 28))
    assert usage == pytest.approx({"codebook_perplexity": 4.0, "dead_codes": 4.0})


def test_codebook_metrics_apply_to_quantized_families_only():
    from vaegan import VAE

    assert {"codebook_perplexity", "dead_codes", "recon_mse"} <= set(
        applicable_metrics(VQVAE.capabilities(), True, "mnist"))
    assert not {"codebook_perplexity", "dead_codes"} & set(applicable_metrics(VAE.capabilities(), True, "mnist"))


# ---------------------------------------------------------------------------------------------- demo
def test_the_demo_shows_the_code_grid_beside_the_reconstruction_samples_and_completes():
    from PIL import Image, ImageDraw

    from vaegan.demo import layout, outputs
    from vaegan.demo.inputs import model_input
    from vaegan.demo.reconstruct import code_picture

    model = tiny(1)
    app = layout.build_demo({"vq": model}, heldout=None).vaegan_app
    digit = Image.new("L", (28, 28))
    ImageDraw.Draw(digit).line((8, 6, 20, 22), fill=255, width=3)
    _, result = app.reconstruct.reconstruct("vq", digit, None)
    with outputs.open_picture(result) as picture:
        assert picture.width == 2 * picture.height  # the code grid, then the reconstruction
        left = picture.convert("RGB").crop((0, 0, picture.height, picture.height)).resize((7, 7), Image.NEAREST)
    codes = model.encode_codes(model_input(digit, None, model.image_shape, "image")[None])
    expected = code_picture(codes[0], 7, model.codebook_size)[0]
    got = torch.from_numpy(np.array(left)).permute(2, 0, 1).float() / 255
    assert (got - expected).abs().max() < 0.01
    assert isinstance(app.sample.sample("vq", 4, 0, 1.0), outputs.InlinePNG)
    completed = app.complete.complete("vq", "yours", digit, None, None, 0, "top-half", 2, 0)
    assert isinstance(completed, outputs.InlinePNG)


def test_the_pipeline_class_loads_the_pair_and_samples_what_it_samples(tmp_path):
    from diffusers import DiffusionPipeline

    from vaegan import VQVAEPipeline

    model = tiny(1)
    VQVAEPipeline(model).save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "vqvae" / "prior" / "diffusion_pytorch_model.safetensors").is_file()
    for load in (VQVAEPipeline.from_pretrained, DiffusionPipeline.from_pretrained):
        pipe = load(tmp_path / "pipe")
        assert type(pipe) is VQVAEPipeline
        images = pipe(batch_size=3, generator=gen(0), output_type="pt").images
        assert torch.equal(images, model.sample(3, generator=gen(0)))
