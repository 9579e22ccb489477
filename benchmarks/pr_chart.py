"""The precision-recall chart of benchmarks/README.md: every shipped MNIST config, the real-data reference, and
arrows from each config's previous numbers.

    python benchmarks/pr_chart.py [--points benchmarks/results/pr_points.json] [--output benchmarks/pr_chart.png]

Reads measured numbers (never measures): ``--points`` is a JSON file ``{"num_samples": N, "points": [{"config",
"precision", "recall", "confident", "fd_mnist", "previous": {"precision", "recall"}?}, ...]}``; the real-data point
is vaegan's shipped reference (``vaegan evaluate --real``, :func:`vaegan.metrics.reference.reference_result`).
Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_points(path: Path) -> dict:
    """The points file, checked: every point has a config, a precision and a recall in [0, 1]."""
    data = json.loads(path.read_text())
    for point in data.get("points", []):
        for key in ("precision", "recall"):
            values = [point.get(key)] + ([point["previous"].get(key)] if point.get("previous") else [])
            if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in values):
                raise ValueError(f"{path}: point {point.get('config')!r} needs a {key} in [0, 1].")
    if not data.get("points"):
        raise ValueError(f"{path}: no points.")
    return data


def draw(data: dict, reference: dict | None, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6.5), dpi=110)
    points = data["points"]
    for point in points:
        previous = point.get("previous")
        if previous:
            ax.annotate("", xy=(point["recall"], point["precision"]),
                        xytext=(previous["recall"], previous["precision"]),
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 1.2})
            ax.plot(previous["recall"], previous["precision"], "o", color="0.75", ms=5)
    confident = [p.get("confident", 0.0) for p in points]
    scatter = ax.scatter([p["recall"] for p in points], [p["precision"] for p in points], c=confident, cmap="viridis",
                         vmin=0, vmax=1, s=60, edgecolors="black", linewidths=0.5, zorder=3)
    for point in points:
        # "label_offset" (points, optional): where a label goes when the default would cover a neighbour's.
        ax.annotate(point["config"], (point["recall"], point["precision"]), textcoords="offset points",
                    xytext=tuple(point.get("label_offset", (6, 4))), fontsize=8)
    if reference is not None:
        real = reference["metrics"]
        ax.plot(real["recall"], real["precision"], "*", color="crimson", ms=16, zorder=4)
        ax.annotate(f"real digits ({reference['num_samples']:,} held-out)", (real["recall"], real["precision"]),
                    textcoords="offset points", xytext=(-10, -14), fontsize=8, color="crimson", ha="right")
    fig.colorbar(scatter, ax=ax, label="confident (share of clear digits)")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="recall (variety)", ylabel="precision (realism)",
           title=f"Shipped MNIST configs, {data.get('num_samples', 0):,} samples each; grey: previous numbers")
    ax.grid(alpha=0.3)
    if reference is not None and reference["num_samples"] != data.get("num_samples"):
        fig.text(0.01, 0.01, f"The real-digits point uses {reference['num_samples']:,} samples (all of "
                 f"{reference['data']}'s held-out images);\nprecision and recall depend on the sample count, so it "
                 "is a guide, not an exact ceiling.", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(output)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=Path, default=HERE / "results" / "pr_points.json")
    parser.add_argument("--output", type=Path, default=HERE / "pr_chart.png")
    parser.add_argument("--data", default="mnist-5k", help="the real-data reference to draw (none: --data '')")
    args = parser.parse_args()
    from vaegan.metrics.reference import reference_result

    data = load_points(args.points)
    draw(data, reference_result(args.data) if args.data else None, args.output)
    print(f"Wrote {args.output} ({len(data['points'])} configs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
