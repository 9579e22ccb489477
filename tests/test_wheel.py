"""vaegan installed from a built wheel (not editable) in a fresh virtual environment has its bundled configs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from checkout import ROOT, fresh_checkout

TORCH_PIN = "torch==2.13.0"  # the Makefile's pin: the CPU build, installed first


def _run(args: list, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_lists_and_trains_bundled_configs(tmp_path):
    source = fresh_checkout(tmp_path / "source")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
          source], cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("vaegan-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    bundled = sorted(f"vaegan/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml"))
    assert bundled and set(bundled) <= set(names)
    assert "vaegan/metrics/weights/mnist_classifier.safetensors" in names  # the `mnist` feature extractor
    assert not any(name.startswith("configs/") for name in names)  # inside the package, not a top-level folder

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    _run([*pip, TORCH_PIN], cwd=tmp_path)
    _run([*pip, f"{wheel}[train]"], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"  # no configs/ folder, no source tree
    elsewhere.mkdir()
    vaegan = venv / "bin" / "vaegan"
    located = _run([venv / "bin" / "python", "-c", "import vaegan; print(vaegan.__file__)"], cwd=elsewhere)
    assert str(venv) in located.stdout  # the installed wheel, not the source tree
    listing = _run([vaegan, "configs"], cwd=elsewhere).stdout
    assert all(Path(name).stem in listing for name in bundled)
    assert "The textbook variational autoencoder" in listing
    _run([vaegan, "train", "mnist-vae", "--set", "train.max_steps=5"], cwd=elsewhere)
    model = elsewhere / "outputs" / "mnist-vae" / "model"
    assert (model / "config.json").is_file()
    assert yaml.safe_load((model / "training_config.yaml").read_text())["train"]["max_steps"] == 5
