"""Entry point for ``accelerate launch -m vaegan.train CONFIG [options]`` (same options as ``vaegan train``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import add_train_arguments, run_train
from .errors import VaeganError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaegan.train", description="Train a vaegan model from a YAML config.")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_train(args)
    except VaeganError as err:
        print(f"vaegan.train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
