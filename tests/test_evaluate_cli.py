"""`vaegan evaluate`: the JSON, reproducibility, errors, and results in the model card (folder and Hub)."""

import json
import sys
from pathlib import Path

import bernoulli_family
import torch
from huggingface_hub import ModelCard

from vaegan import AE, VAE
from vaegan.cli import main
from vaegan.metrics import features, read_eval_results

FAST = ["-n", "200", "--iwae-samples", "10", "--num-heldout", "30"]


def saved_vae(folder):
    torch.manual_seed(0)
    VAE(architecture="mlp", hidden_dims=(32,), latent_dim=2).save_pretrained(folder)
    return folder


def test_same_seed_gives_identical_json(tmp_path, capsys):
    model = saved_vae(tmp_path / "vae")
    for name in ("a.json", "b.json"):
        assert main(["evaluate", str(model), *FAST, "--seed", "3", "--output", str(tmp_path / name)]) == 0
    a, b = (tmp_path / "a.json").read_text(), (tmp_path / "b.json").read_text()
    assert a == b
    result = json.loads(a)
    assert {k: result[k] for k in ("model", "data", "num_samples", "seed", "features")} == {
        "model": str(model), "data": "mnist-5k", "num_samples": 200, "seed": 3, "features": "mnist"}
    assert {"fd_mnist", "kid", "precision", "recall", "confident", "class_coverage", "elbo_nll", "iwae_nll",
            "recon_mse"} <= set(result["metrics"])
    out = capsys.readouterr().out
    assert "fd_mnist" in out and "iwae_nll" in out  # the printed table


def test_bad_arguments_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as when vaegan[inception] is not installed
    features.build_inception.cache_clear()
    model = saved_vae(tmp_path / "vae")
    assert main(["evaluate", str(model), "--features", "inceptionv3"]) == 2
    err = capsys.readouterr().err
    assert "unknown feature extractor 'inceptionv3'" in err and "Valid choices: mnist, inception" in err
    assert "Traceback" not in err
    assert main(["evaluate", str(model), "--metrics", "fid", "--features", "mnist", *FAST]) == 2
    assert "'fid' does not apply" in (err := capsys.readouterr().err) and "needs --features inception" in err
    # `fid` picks the inception extractor, which needs torch-fidelity (not installed here): what to install.
    assert main(["evaluate", str(model), "--metrics", "fid", *FAST]) == 2
    assert "pip install 'vaegan[inception]'" in capsys.readouterr().err


def test_ae_without_a_prior_says_which_metrics_were_skipped_and_why(tmp_path, capsys):
    torch.manual_seed(0)
    AE(architecture="mlp", hidden_dims=(32,), latent_dim=2).save_pretrained(tmp_path / "ae")
    assert main(["evaluate", str(tmp_path / "ae"), *FAST, "--output", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert list(result["metrics"]) == ["recon_mse"]
    sampled = ["fd_mnist", "kid", "kid_std", "is_mnist", "precision", "recall", "density", "coverage", "pr_f1",
               "confident", "class_coverage"]
    assert result["skipped"]["metrics"] == sampled
    assert result["skipped"]["reason"].startswith("This AE has no latent prior yet")
    assert "so it cannot generate samples" in result["skipped"]["reason"]
    out = capsys.readouterr().out
    assert f"Skipped {', '.join(sampled)}: This AE has no latent prior yet" in out and "fit_prior" in out


def test_update_card_round_trip_and_push(tmp_path, hub, capsys):
    model = saved_vae(tmp_path / "vae")
    assert main(["evaluate", str(model), *FAST, "--update-card", "--output", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    card = ModelCard.load(model / "README.md")
    numbers = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert numbers == result["metrics"]
    assert {r.task_type for r in card.data.eval_results} == {"unconditional-image-generation"}
    assert {r.dataset_type for r in card.data.eval_results} == {"ylecun/mnist"}
    assert "## Evaluation" in card.text and "4,500 real images" in card.text and "200 samples" in card.text
    assert "Fréchet distance" in card.text and str(tmp_path) not in card.text
    assert card.text.count("## Evaluation") == 1 and "## Usage" in card.text  # the rest of the card is kept
    assert read_eval_results(model)["metrics"] == result["metrics"]

    # Evaluating again replaces the section rather than adding one.
    assert main(["evaluate", str(model), *FAST, "--seed", "1", "--update-card"]) == 0
    again = ModelCard.load(model / "README.md")
    assert again.text.count("## Evaluation") == 1 and read_eval_results(model)["seed"] == 1

    # `vaegan push` carries the evaluation to the Hub: metadata and eval_results.json.
    assert main(["push", str(model), "org/evaluated-vae"]) == 0
    pushed = ModelCard.load("org/evaluated-vae")
    stored = read_eval_results(model)
    assert {r.metric_type: r.metric_value for r in pushed.data.eval_results} == stored["metrics"]
    assert read_eval_results("org/evaluated-vae") == stored

    # --update-card on a Hub id commits the new card and results to the repo.
    assert main(["evaluate", "org/evaluated-vae", *FAST, "--seed", "5", "--update-card"]) == 0
    assert read_eval_results("org/evaluated-vae")["seed"] == 5
    assert ModelCard.load("org/evaluated-vae").text.count("## Evaluation") == 1
    capsys.readouterr()


def test_read_eval_results_from_a_card_without_the_json(tmp_path):
    model = saved_vae(tmp_path / "vae")
    assert read_eval_results(model) is None
    assert main(["evaluate", str(model), *FAST, "--metrics", "recon_mse", "--update-card"]) == 0
    metrics = read_eval_results(model)["metrics"]
    (model / "eval_results.json").unlink()
    assert read_eval_results(model) == {"data": "mnist-5k", "metrics": metrics}


def test_saving_new_weights_drops_the_old_evaluation(tmp_path):
    model = saved_vae(tmp_path / "vae")
    assert main(["evaluate", str(model), *FAST, "--metrics", "recon_mse", "--update-card"]) == 0
    assert read_eval_results(model) is not None
    torch.manual_seed(1)
    VAE(architecture="mlp", hidden_dims=(32,), latent_dim=2).save_pretrained(model)  # other weights, same folder
    assert read_eval_results(model) is None and "## Evaluation" not in (model / "README.md").read_text()


def test_evaluate_a_saved_model_with_an_exact_likelihood(tmp_path, capsys):
    """A latent-free family registered by a plugin: `vaegan evaluate` offers nll / bpd, never the VAE's bounds."""
    with bernoulli_family.registered():
        bernoulli_family.make().save_pretrained(tmp_path / "m")
        output = str(tmp_path / "r.json")
        assert main(["evaluate", str(tmp_path / "m"), *FAST, "--output", output, "--update-card"]) == 0
        result = json.loads(Path(output).read_text())
        assert {"nll", "bpd", "fd_mnist", "confident"} <= set(result["metrics"])
        assert not {"elbo_nll", "iwae_nll", "recon_mse"} & set(result["metrics"]) and "iwae_samples" not in result
        assert result["metrics"]["bpd"] > 0 and result["heldout_images"] == 30
        card = ModelCard.load(tmp_path / "m" / "README.md")
        splits = {r.metric_type: r.dataset_split for r in card.data.eval_results}
        assert splits["nll"] == splits["bpd"] == "test" and splits["fd_mnist"] == "train"
        assert "| `nll` |" in card.text and "--num-heldout 30" in card.text and "--iwae-samples" not in card.text
        assert "nll" in capsys.readouterr().out

        assert main(["evaluate", str(tmp_path / "m"), "--metrics", "iwae_nll", *FAST]) == 2
        err = capsys.readouterr().err
        assert "'iwae_nll' does not apply to PixelBernoulli" in err and "needs a model with likelihood bounds" in err
        assert "Valid metrics" in err and "nll, bpd" in err and "Traceback" not in err
