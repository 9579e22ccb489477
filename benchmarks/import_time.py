"""Wall time of ``import vaegan`` next to ``import torch; from diffusers import ModelMixin, ConfigMixin``.

Each import runs in a fresh interpreter; the two alternate so that both see the same machine load.

    python benchmarks/import_time.py --repeats 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

IMPORTS = {
    "torch + diffusers ModelMixin/ConfigMixin": "import torch; from diffusers import ModelMixin, ConfigMixin",
    "vaegan": "import vaegan",
}


def time_import(code: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a fresh interpreter running ``code``; CPU time is what a loaded machine
    distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for code in IMPORTS.values():  # warm the file cache once
        time_import(code)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in IMPORTS}
    for _ in range(args.repeats):
        for name, code in IMPORTS.items():
            times[name].append(time_import(code))
    for kind, index in (("wall", 0), ("CPU", 1)):
        medians = {name: statistics.median(v[index] for v in values) for name, values in times.items()}
        for name, values in times.items():
            runs = ", ".join(f"{v[index]:.2f}" for v in values)
            print(f"{kind:4s} {name:42s} median {medians[name]:.3f} s  (runs: {runs})")
        base, ours = medians.values()
        print(f"{kind:4s} import vaegan costs {ours - base:+.3f} s over torch + diffusers ModelMixin "
              f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
