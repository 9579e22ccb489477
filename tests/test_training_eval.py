"""The trainer's evaluation hook: train.eval_every / eval_metrics / select_best_by, and the evaluated card."""

import io
import json
import re
import sys

import pytest
from huggingface_hub import ModelCard
from training_utils import read_metrics, reset_accelerate_state, tiny_config

from vaegan import ConfigError
from vaegan.metrics import read_eval_results
from vaegan.training import train


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


@pytest.mark.parametrize("family,train_keys,match", [
    ("gan", {"eval_metrics": ["iwae_nll"]}, r"'iwae_nll' does not apply.*GAN.*needs a model with likelihood bounds"),
    ("vae", {"eval_metrics": ["fid_mnist"]}, r"unknown metric 'fid_mnist'.*Did you mean 'fd_mnist'"),
    ("vae", {"select_best_by": "fd_mnist"}, r"select_best_by' needs evaluations during training.*eval_every"),
    ("vae", {"eval_every": 10, "eval_metrics": ["recon_mse"], "select_best_by": "fd_mnist"},
     r"select_best_by' must be one of the evaluated metrics: recon_mse; got 'fd_mnist'"),
    ("ae", {"eval_every": 10, "select_best_by": "fd_mnist"}, r"an AE samples only after training.*recon_mse"),
    ("vae", {"eval_every": -1}, r"eval_every' must be >= 0"),
])
def test_bad_evaluation_settings_are_refused_when_the_config_loads(tmp_path, family, train_keys, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(family, tmp_path, **train_keys)


def test_periodic_evaluation_keeps_the_best_model_and_the_card_carries_the_final_one(tmp_path):
    config = tiny_config("vae", tmp_path / "run", epochs=3, eval_every=8, eval_metrics=["recon_mse", "elbo_nll"],
                         select_best_by="recon_mse")
    model_dir = train(config)
    logged = [m for m in read_metrics(tmp_path / "run") if "eval/recon_mse" in m]
    assert [m["step"] for m in logged] == [8, 16, 24] and all("eval/elbo_nll" in m for m in logged)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    values = {m["step"]: m["eval/recon_mse"] for m in logged}
    assert best["metric"] == "recon_mse" and best["value"] == min(values.values())
    assert values[best["step"]] == best["value"]
    # The saved model is the best one: its held-out reconstruction error is the best periodic value.
    final = read_eval_results(model_dir)
    assert final["metrics"]["recon_mse"] == pytest.approx(best["value"], rel=1e-6)
    assert list(final["metrics"]) == ["recon_mse", "elbo_nll"]
    card = ModelCard.load(model_dir / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"recon_mse", "elbo_nll"}
    assert f"recon_mse = {best['value']:.6g} at step {best['step']}" in card.text
    summary = json.loads((model_dir / "training_summary.json").read_text())
    assert summary["evaluation"]["metrics"] == final["metrics"]


def test_select_best_by_the_balance_of_precision_and_recall(tmp_path):
    config = tiny_config("vae", tmp_path / "run", epochs=2, eval_every=8, eval_num_samples=60,
                         eval_metrics=["precision", "recall", "pr_f1"], select_best_by="pr_f1",
                         final_eval_num_samples=60)
    model_dir = train(config)
    logged = [m for m in read_metrics(tmp_path / "run") if "eval/pr_f1" in m]
    assert [m["step"] for m in logged] == [8, 16]
    for m in logged:  # the harmonic mean of the same evaluation's precision and recall
        p, r = m["eval/precision"], m["eval/recall"]
        assert m["eval/pr_f1"] == pytest.approx(0.0 if p + r == 0 else 2 * p * r / (p + r))
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["metric"] == "pr_f1" and best["value"] == max(m["eval/pr_f1"] for m in logged)  # higher is better
    assert list(read_eval_results(model_dir)["metrics"]) == ["precision", "recall", "pr_f1"]


def test_no_evaluation_unless_configured(tmp_path):
    model_dir = train(tiny_config("vae", tmp_path / "run", epochs=1))
    assert read_eval_results(model_dir) is None and not (tmp_path / "run" / "best.json").exists()
    assert not any(k.startswith("eval/") for m in read_metrics(tmp_path / "run") for k in m)


@pytest.mark.slow
def test_gan_training_with_sample_metrics(tmp_path):
    config = tiny_config("gan", tmp_path / "run", epochs=2, eval_every=8, eval_num_samples=500,
                         eval_metrics=["fd_mnist", "confident"], select_best_by="fd_mnist")
    model_dir = train(config)
    final = read_eval_results(model_dir)
    assert final["num_samples"] == 10_000 and list(final["metrics"]) == ["fd_mnist", "confident"]
    logged = [m for m in read_metrics(tmp_path / "run") if "eval/fd_mnist" in m]
    assert len(logged) == 2 and json.loads((tmp_path / "run" / "best.json").read_text())["metric"] == "fd_mnist"


def test_final_evaluation_sample_count_is_a_setting_defaulting_to_the_metrics_default(tmp_path):
    from vaegan.metrics import DEFAULT_NUM_SAMPLES
    from vaegan.training.config import TrainConfig

    assert TrainConfig().final_eval_num_samples == DEFAULT_NUM_SAMPLES
    with pytest.raises(ConfigError, match=r"'train.final_eval_num_samples' must be >= 2, got 1"):
        tiny_config("vae", tmp_path, eval_metrics=["recon_mse"], final_eval_num_samples=1)


def _train_with_final_evaluation(tmp_path):
    config = tiny_config("gan", tmp_path / "run", epochs=1, max_steps=2, eval_metrics=["fd_mnist", "confident"],
                         final_eval_num_samples=600)
    return train(config)


def test_the_final_evaluation_says_what_it_does_and_how_long_it_took(tmp_path, capsys):
    model_dir = _train_with_final_evaluation(tmp_path)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Evaluating the final model"))
    assert lines[start].startswith("Evaluating the final model: 600 samples, metrics fd_mnist, confident (")
    assert re.fullmatch(r"Evaluated in \d+ s\.", lines[start + 1])
    assert start + 1 < next(i for i, line in enumerate(lines) if line.startswith("Model written to"))
    assert "sampling" not in err  # not a terminal: no progress bar in the log
    assert read_eval_results(model_dir)["num_samples"] == 600


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_final_evaluation_shows_a_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _train_with_final_evaluation(tmp_path)
    assert re.search(r"\d+/600 \[.*img/s\]", terminal.getvalue())  # the sampling bar
