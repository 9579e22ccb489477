"""Judge generated MNIST digits with an independent CNN classifier.

Metrics: fraction of confidently classified samples (max softmax >= 0.9) and the entropy of
the predicted-class histogram (mode coverage).  A sample set passes when
``confident_fraction >= 0.8`` and ``entropy >= 0.95 * ln 10``.

Usage::

    python benchmarks/evaluate_samples.py MODEL_DIR_OR_HUB_ID [-n 2000] [--seed 0] [--json out.json]
    python benchmarks/evaluate_samples.py --images samples.npy [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_classifier import load_classifier  # noqa: E402

CONFIDENCE = 0.9
MIN_CONFIDENT_FRACTION = 0.8
MIN_ENTROPY_RATIO = 0.95
BATCH = 500

_MODEL: torch.nn.Module | None = None


def _classifier() -> torch.nn.Module:
    """Load the judge once per process."""
    global _MODEL
    if _MODEL is None:
        _MODEL = load_classifier().eval()
    return _MODEL


def to_mnist_format(images: torch.Tensor) -> torch.Tensor:
    """Convert (N, C, H, W) / (N, H, W) images in [0, 1] to float (N, 1, 28, 28) gray in [0, 1]."""
    x = torch.as_tensor(images).float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (N, H, W) images, got shape {tuple(x.shape)}")
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif x.shape[1] != 1:
        x = x.mean(1, keepdim=True)  # e.g. RGBA or odd channel counts
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def evaluate(images: torch.Tensor) -> dict:
    """Score images (N, 1, 28, 28) floats in [0, 1]; other sizes/channels are converted first."""
    x = to_mnist_format(images)
    model = _classifier()
    probs = torch.cat([F.softmax(model(xb), dim=1) for xb in x.split(BATCH)])
    conf, pred = probs.max(1)
    hist = torch.bincount(pred, minlength=10)
    p = hist.double() / max(len(pred), 1)
    entropy = max(0.0, float(-(p[p > 0] * p[p > 0].log()).sum()))
    confident_fraction = float((conf >= CONFIDENCE).float().mean())
    return {
        "n": len(pred),
        "confident_fraction": confident_fraction,
        "mean_max_prob": float(conf.mean()),
        "class_histogram": hist.tolist(),
        "entropy": entropy,
        "entropy_ratio": entropy / math.log(10),
        "pass": bool(confident_fraction >= MIN_CONFIDENT_FRACTION and entropy >= MIN_ENTROPY_RATIO * math.log(10)),
    }


def load_npy(path: str) -> torch.Tensor:
    """Load N,1,28,28 or N,28,28 floats in [0, 1] from a .npy file."""
    return torch.from_numpy(np.load(path).astype(np.float32))


@torch.no_grad()
def sample_model(model_id: str, n: int, seed: int) -> torch.Tensor:
    """Draw ``n`` samples (in batches of 500) from a vaegan model dir or Hub id."""
    from vaegan import AutoModel  # lazy: only needed for the model branch

    model = AutoModel.from_pretrained(model_id)
    if hasattr(model, "eval"):
        model.eval()
    gen = torch.Generator().manual_seed(seed)
    chunks = [model.sample(min(BATCH, n - i), generator=gen).float().cpu() for i in range(0, n, BATCH)]
    return torch.cat(chunks)


def summary(metrics: dict, source: str) -> str:
    """One-line human summary of ``evaluate`` output."""
    verdict = "PASS" if metrics["pass"] else "FAIL"
    return (
        f"{verdict}  {source}: n={metrics['n']} confident={metrics['confident_fraction']:.3f} "
        f"(>= {MIN_CONFIDENT_FRACTION}) entropy_ratio={metrics['entropy_ratio']:.3f} "
        f"(>= {MIN_ENTROPY_RATIO}) hist={metrics['class_histogram']}"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit status 0 when the samples pass, 1 otherwise."""
    parser = argparse.ArgumentParser(description="Judge generated MNIST digits with a held-out classifier.")
    parser.add_argument("model", nargs="?", help="vaegan model directory or Hub id")
    parser.add_argument("--images", help=".npy file of N,1,28,28 or N,28,28 floats in [0, 1]")
    parser.add_argument("-n", type=int, default=2000, help="number of samples to draw from the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    if (args.model is None) == (args.images is None):
        parser.error("give exactly one of MODEL_DIR_OR_HUB_ID or --images FILE.npy")
    torch.set_num_threads(2)
    if args.images:
        images, source = load_npy(args.images), args.images
    else:
        images, source = sample_model(args.model, args.n, args.seed), args.model
    metrics = evaluate(images)
    metrics["source"] = source
    if args.model:
        metrics["seed"] = args.seed
    print(summary(metrics, source))
    print(json.dumps(metrics, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0 if metrics["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
