"""Sanity-check the MNIST judge: real digits pass, degenerate sample sets fail.

Run ``python benchmarks/check_judge.py``; exits non-zero if any check goes the wrong way.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_samples import MIN_ENTROPY_RATIO, evaluate, summary  # noqa: E402
from mnist_classifier import load_mnist_split  # noqa: E402


def main() -> int:
    """Run the checks, print one line per case, return the number of failed checks."""
    torch.set_num_threads(2)
    _, _, x_te, y_te = load_mnist_split()
    gen = torch.Generator().manual_seed(0)
    n = 2000
    rgb64 = F.interpolate(x_te, size=(64, 64), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    eight_classes = x_te[y_te < 8]
    k = torch.exp(-0.5 * (torch.arange(-2, 3.0) / 0.8) ** 2)
    k2d = (k[:, None] * k[None, :] / k.sum() ** 2).view(1, 1, 5, 5)
    blurred = F.conv2d(x_te, k2d, padding=2)  # VAE-like blur (gaussian, sigma 0.8 px)
    cases: list[tuple[str, torch.Tensor, bool, str]] = [
        ("(a) real held-out digits", x_te, True, "pass"),
        ("(a') real held-out digits as 64x64 RGB", rgb64, True, "pass"),
        ("(info) real held-out digits, gaussian-blurred", blurred, True, "pass"),
        ("(b) uniform noise", torch.rand(n, 1, 28, 28, generator=gen), False, "fail"),
        ("(b) all-black", torch.zeros(n, 1, 28, 28), False, "fail"),
        ("(c) only real '1's (held-out)", x_te[y_te == 1], False, "fail on entropy"),
        ("(info) held-out digits of classes 0-7 only", eight_classes, False, "fail on entropy"),
    ]
    failures = 0
    for name, images, should_pass, expect in cases:
        m = evaluate(images)
        ok = m["pass"] == should_pass
        if expect == "fail on entropy":  # must fail *because of* mode collapse, not low confidence
            ok = ok and m["entropy"] < MIN_ENTROPY_RATIO * math.log(10) and m["confident_fraction"] >= 0.8
        failures += not ok
        print(f"[{'ok' if ok else 'WRONG'}] expect {expect:15s} | {summary(m, name)}")
    print("judge sanity checks:", "all OK" if failures == 0 else f"{failures} WRONG")
    return failures


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
