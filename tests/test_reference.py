"""The real-data reference: `vaegan evaluate --real` and `vaegan.metrics.reference`, and the shipped mnist-5k row."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest

from vaegan.cli import main
from vaegan.errors import ConfigError
from vaegan.metrics.reference import SHIPPED_REFERENCES, evaluate_real, reference_result

FEW = ["precision", "recall", "pr_f1", "confident"]


def test_fewer_heldout_images_than_asked_uses_them_all_and_says_so():
    result = evaluate_real("mnist-5k", num_samples=600, metrics=FEW)
    assert result["real"] and result["num_samples"] == 500 and result["requested_samples"] == 600
    assert "only 500 images" in result["note"] and "not 600" in result["note"]
    assert list(result["metrics"]) == FEW and result["real_images"] == 4500
    # Real digits are realistic and varied: the ceiling a model's numbers are read against.
    assert result["metrics"]["precision"] > 0.85 and result["metrics"]["recall"] > 0.8
    assert result["metrics"]["confident"] > 0.95


def test_a_seeded_subset_of_the_heldout_images_when_there_are_enough():
    first = evaluate_real("mnist-5k", num_samples=100, seed=0, metrics=["precision", "recall"])
    assert first["num_samples"] == 100 and "note" not in first
    assert evaluate_real("mnist-5k", num_samples=100, seed=0, metrics=["precision", "recall"]) == first
    assert evaluate_real("mnist-5k", num_samples=100, seed=1, metrics=["precision", "recall"]) != first


def test_model_only_metrics_are_refused_for_real_images():
    with pytest.raises(ConfigError, match=r"'iwae_nll' does not apply to real held-out images of mnist-5k"):
        evaluate_real("mnist-5k", num_samples=100, metrics=["iwae_nll"])


def test_the_shipped_reference_is_what_its_documented_command_computes():
    shipped = reference_result("mnist-5k")
    assert shipped["num_samples"] == 500 and shipped["seed"] == 0 and shipped["features"] == "mnist"
    again = evaluate_real("mnist-5k", num_samples=shipped["requested_samples"], seed=shipped["seed"])
    assert again["metrics"].keys() == shipped["metrics"].keys()
    for name, value in shipped["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    assert reference_result("cifar10") is None


def test_the_references_are_package_data():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["vaegan.metrics"]
    for data in SHIPPED_REFERENCES:
        assert any(fnmatch.fnmatch(f"references/{data}.json", p) for p in patterns)


def test_cli_real_row_with_its_note_and_json(tmp_path, capsys):
    out_file = tmp_path / "real.json"
    assert main(["evaluate", "--real", "-n", "800", "--metrics", "precision,recall", "--output", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("real held-out images of mnist-5k against its 4,500 training images (500 samples")
    assert "uses all 500 (not 800)" in out
    assert "measured at the same count (vaegan evaluate MODEL --num-samples 500)" in out
    result = json.loads(out_file.read_text())
    assert result["real"] and result["num_samples"] == 500 and list(result["metrics"]) == ["precision", "recall"]


@pytest.mark.parametrize(("args", "message"), [
    (["some/model", "--real"], "give a model or --real, not both"),
    ([], "give a model"),
    (["--real", "--update-card"], "--update-card needs a model"),
    (["some/model", "--image-size", "32"], "--image-size and --channels go with --real"),
])
def test_cli_model_or_real_errors(args, message, capsys):
    assert main(["evaluate", *args]) == 2
    assert message in capsys.readouterr().err
