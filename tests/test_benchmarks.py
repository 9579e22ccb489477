"""The benchmark scripts run (a few steps / samples each): they report numbers, so they must not rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from vaegan import AE, GAN, VAE

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_throughput_benchmark_compares_the_trainer_with_a_bare_loop():
    out = _run("benchmarks/throughput.py", "--steps", "4", "--warmup", "1", "--batch-size", "16")
    assert re.search(r"bare PyTorch loop : +[\d.]+ img/s", out) and re.search(r"ratio trainer/bare: [\d.]+", out)
    out = _run("benchmarks/throughput.py", "--config", "configs/mnist-cdcgan.yaml", "--steps", "3", "--warmup", "1",
               "--batch-size", "16")  # a class-conditional model: the trainer passes labels
    assert "ratio trainer/bare" in out


def test_ablation_benchmark_compares_ema_and_priors(tmp_path):
    torch.manual_seed(0)
    GAN(architecture="mlp", latent_dim=8, generator_hidden_dims=(16,), discriminator_hidden_dims=(16,),
        ema_decay=0.9).save_pretrained(tmp_path / "mnist-dcgan" / "model", model_card=False)
    VAE(architecture="mlp", hidden_dims=(16,), latent_dim=2).save_pretrained(tmp_path / "mnist-vae-16d" / "model",
                                                                             model_card=False)
    out = _run("benchmarks/ablation.py", str(tmp_path), "--configs", "mnist-dcgan,mnist-vae-16d", "--num-samples",
               "50")
    rows = [line for line in out.splitlines() if line.startswith("| mnist")]
    assert [row.split(" | ")[1] for row in rows] == ["EMA generator", "last-step generator", "prior: standard",
                                                    "prior: gmm (refitted)", "prior: flow (refitted)"]


def test_ablation_benchmark_refits_mixture_sizes_and_samples_at_temperatures(tmp_path):
    torch.manual_seed(0)
    model = AE(architecture="mlp", hidden_dims=(16,), latent_dim=2, prior="gmm", prior_components=2)
    model.fit_prior(torch.randn(64, 2))
    model.save_pretrained(tmp_path / "mnist-ae" / "model", model_card=False)
    out = _run("benchmarks/ablation.py", str(tmp_path), "--configs", "mnist-ae", "--num-samples", "50",
               "--gmm-components", "3,5", "--temperatures", "0.5")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| mnist-ae")]
    assert [row[1] for row in rows] == ["prior: gmm", "prior: gaussian (refitted)", "prior: flow (refitted)",
                                        "prior: gmm, 3 components (refitted)", "prior: gmm, 5 components (refitted)",
                                        "temperature 0.5"]
    fd_mnist = {row[1]: float(row[4]) for row in rows}
    assert fd_mnist["temperature 0.5"] != fd_mnist["prior: gmm"]  # the same prior with a narrower spread


def test_ablation_rows_of_a_gan_sample_at_its_stored_temperature(tmp_path):
    torch.manual_seed(0)
    GAN(architecture="mlp", latent_dim=8, generator_hidden_dims=(16,), discriminator_hidden_dims=(16,),
        sample_temperature=0.5).save_pretrained(tmp_path / "mnist-dcgan" / "model", model_card=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "benchmarks/ablation.py", str(tmp_path), "--configs", "mnist-dcgan",
                             "--num-samples", "50", "--temperatures", "0.5,1", "--gmm-components", "3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row[1]: row[2:] for row in (line.split(" | ") for line in result.stdout.splitlines()
                                        if line.startswith("| mnist-dcgan"))}
    assert list(rows) == ["as saved", "temperature 0.5", "temperature 1"]
    assert rows["as saved"][:-1] == rows["temperature 0.5"][:-1] != rows["temperature 1"][:-1]  # but the CPU time
    assert "GAN, which has no latent mixture to refit; skipped" in result.stderr


def test_pr_chart_draws_the_shipped_points_and_refuses_bad_ones(tmp_path):
    import json

    from PIL import Image

    out = _run("benchmarks/pr_chart.py", "--output", str(tmp_path / "chart.png"))
    configs = json.loads((ROOT / "benchmarks/results/pr_points.json").read_text())["points"]
    assert f"({len(configs)} configs)" in out and Image.open(tmp_path / "chart.png").size[0] > 500
    assert {p["config"] for p in configs} >= {"mnist-vae-16d", "mnist-ae", "mnist-dcgan", "mnist-wgan-gp"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"points": [{"config": "x", "precision": 1.5, "recall": 0.1}]}))
    result = subprocess.run([sys.executable, "benchmarks/pr_chart.py", "--points", str(bad), "--output",
                             str(tmp_path / "bad.png")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "'x' needs a precision in [0, 1]" in result.stderr


def test_pixelcnn_sampling_benchmark_compares_cached_and_textbook_samplers(tmp_path):
    from vaegan import PixelCNN

    PixelCNN(image_size=6, channels=8, num_layers=2, head_channels=8).save_pretrained(tmp_path / "pc", model_card=False)
    out = _run("benchmarks/pixelcnn_sampling.py", "--model", str(tmp_path / "pc"), "--batch-sizes", "2,8",
               "--full-textbook-up-to", "2", "--textbook-passes", "3")
    assert re.search(r"\| 2 \| textbook \| [\d.]+ \| [\d.]+ \| True \|", out)
    assert "extrapolated from 3 passes" in out and re.search(r"speed-up at batch 8: [\d.]+x", out)
