"""Evaluate trained models with `vaegan evaluate` and print the Markdown table of benchmarks/README.md.

    python benchmarks/evaluate_models.py RUNS_DIR [--configs mnist-vae,mnist-gan,...] [--output-dir DIR]

RUNS_DIR holds one training output per config (``RUNS_DIR/<config>/model``). Each model is evaluated by a
`vaegan evaluate MODEL --num-samples 10000 --seed 0 --output DIR/<config>.json` process run under
``/usr/bin/time``, whose user + system CPU seconds go into the table. Configs without a model are listed as
not ready.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGS = ("mnist-vae", "mnist-ae", "mnist-vae-16d", "mnist-gan", "mnist-dcgan", "mnist-wgan", "mnist-wgan-gp",
           "mnist-sngan", "mnist-cvae", "mnist-cdcgan")
COLUMNS = ("fd_mnist", "kid", "precision", "recall", "density", "coverage", "confident", "class_coverage",
           "class_accuracy", "elbo_nll", "iwae_nll", "recon_mse")


def evaluate(model: Path, output: Path, num_samples: int, seed: int) -> tuple[dict, float]:
    """Run `vaegan evaluate` on ``model``; return its JSON and its user + system CPU seconds."""
    times = output.with_suffix(".time")
    command = ["/usr/bin/time", "-f", "%U %S", "-o", str(times), sys.executable, "-m", "vaegan.cli", "evaluate",
               str(model), "--num-samples", str(num_samples), "--seed", str(seed), "--output", str(output)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    user, system = (float(v) for v in times.read_text().split()[-2:])
    return json.loads(output.read_text()), user + system


def table(rows: list[tuple[str, dict, float]]) -> str:
    lines = ["| config | " + " | ".join(COLUMNS) + " | CPU s |", "|---" * (len(COLUMNS) + 2) + "|"]
    for config, result, seconds in rows:
        values = [f"{result['metrics'][c]:.4g}" if c in result["metrics"] else "-" for c in COLUMNS]
        lines.append(f"| {config} | " + " | ".join(values) + f" | {seconds:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--output-dir", type=Path, default=None, help="where the JSON results go (default: a temp dir)")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    output_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="vaegan-eval-"))
    output_dir.mkdir(parents=True, exist_ok=True)
    rows, missing = [], []
    for config in args.configs.split(","):
        model = args.runs_dir / config / "model"
        if not (model / "config.json").is_file():
            missing.append(config)
            continue
        result, seconds = evaluate(model, output_dir / f"{config}.json", args.num_samples, args.seed)
        rows.append((config, result, seconds))
        print(f"{config}: {seconds:.0f} CPU s", file=sys.stderr, flush=True)
    print(table(rows))
    if missing:
        print(f"\nNot ready (no model in {args.runs_dir}): {', '.join(missing)}")
    print(f"\nJSON results: {output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
