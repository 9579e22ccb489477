"""Two data-parallel processes on the CPU through `accelerate launch` (gloo): world size and weight sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _launch(family: str, output_dir: Path) -> list[dict]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", str(TESTS / "ddp_worker.py"), family, str(output_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return [json.loads((output_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan", "cluster-gan"])
def test_two_cpu_processes_keep_identical_weights(tmp_path, family):
    ranks = _launch(family, tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["backend"] == "gloo"
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    # 256 images, batch 32 per process, 2 processes: each optimisation step consumes 64 images.
    assert ranks[0]["steps"] == 4
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["hardware"] == "2 x cpu" and summary["batch_size"] == 64
    assert (tmp_path / "model" / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.slow
def test_accelerate_launch_module_entry_point(tmp_path):
    """`accelerate launch --config_file configs/accelerate/cpu-2proc.yaml -m vaegan.train CONFIG`: two processes."""
    import yaml
    from training_utils import TINY_MODELS

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": TINY_MODELS["ae"], "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path / "out"), "epochs": 1, "batch_size": 32, "num_preview_images": 4},
    }))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    accelerate_config = TESTS.parent / "configs" / "accelerate" / "cpu-2proc.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
               "--main_process_port", "0", "-m", "vaegan.train", str(config)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["hardware"] == "2 x cpu" and summary["steps"] == 4
    assert (tmp_path / "out" / "model" / "config.json").is_file()
