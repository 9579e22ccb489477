"""Wall time of ``import vaegan`` next to ``import torch; from diffusers import ModelMixin, ConfigMixin``.

Each import runs in a fresh interpreter; the two alternate so that both see the same machine load.

    python benchmarks/import_time.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = {
    "torch + diffusers ModelMixin/ConfigMixin": "import torch; from diffusers import ModelMixin, ConfigMixin",
    "vaegan": "import vaegan",
}


def time_import(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for code in IMPORTS.values():  # warm the file cache once
        time_import(code)
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(args.repeats):
        for name, code in IMPORTS.items():
            times[name].append(time_import(code))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:42s} median {medians[name]:.3f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    base, ours = medians.values()
    print(f"import vaegan costs {ours - base:+.3f} s over torch + diffusers ModelMixin (median of {args.repeats})")


if __name__ == "__main__":
    main()
