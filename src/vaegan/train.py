"""Entry point for ``accelerate launch -m vaegan.train CONFIG [options]`` (same options as ``vaegan train``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import add_train_arguments, run_command, run_train


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaegan.train", description="Train a vaegan model from a YAML config.")
    add_train_arguments(parser)
    parser.set_defaults(run=run_train)
    return run_command(parser.parse_args(argv), "vaegan.train")


if __name__ == "__main__":
    sys.exit(main())
