"""Command-line options of the demo and where its model list comes from (no gradio import: ``vaegan --help``).

Precedence of the model list: the command line, else ``$VAEGAN_MODELS`` (comma-separated), else the ``models:``
list of a Space README's front matter, else the official vaegan models.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .limits import DEFAULT_CONCURRENCY, DEFAULT_MAX_QUEUE, MAX_PORT, check_range

OFFICIAL_MODELS = ("vaegan/mnist-vae", "vaegan/mnist-vae-16d", "vaegan/mnist-ae", "vaegan/mnist-dcgan",
                   "vaegan/mnist-wgan-gp")
MODELS_ENV = "VAEGAN_MODELS"
HELDOUT_SOURCE = "mnist-5k"


def readme_models(readme: str | os.PathLike | None) -> list[str]:
    """The ``models:`` list of a Space README's YAML front matter (empty if absent or unreadable)."""
    if readme is None:
        return []
    try:
        text = Path(readme).read_text(encoding="utf-8")
    except OSError:
        return []
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not match:
        return []
    import yaml

    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return []
    models = data.get("models") if isinstance(data, dict) else None
    return [str(m) for m in models] if isinstance(models, list) else []


def model_specs(cli: Sequence[str] | None, environ: Mapping[str, str] | None = None,
                readme: str | os.PathLike | None = None) -> list[str]:
    """Command-line specs (each may be comma-separated), else ``$VAEGAN_MODELS``, else the README's, else official."""
    environ = os.environ if environ is None else environ
    if cli:
        return [spec.strip() for value in cli for spec in value.split(",") if spec.strip()]
    if environ.get(MODELS_ENV, "").strip():
        return [spec.strip() for spec in environ[MODELS_ENV].split(",") if spec.strip()]
    return readme_models(readme) or list(OFFICIAL_MODELS)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options, shared by ``vaegan demo`` and ``spaces/demo/app.py``."""
    parser.add_argument("models", nargs="*", metavar="[NAME=]PATH_OR_HUB_ID",
                        help=f"model folders or Hub ids; default: ${MODELS_ENV}, the Space README's models, or the "
                             "official ones")
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH_OR_HUB_ID",
                        help="one more model (repeatable; the same as a positional argument)")
    parser.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or "
                                                     "127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--heldout", default=os.environ.get("VAEGAN_HELDOUT", HELDOUT_SOURCE),
                        help="vaegan.data source of the held-out digits, or 'none' (default: mnist-5k)")
    parser.add_argument("--concurrency", type=int,
                        default=int(os.environ.get("VAEGAN_CONCURRENCY", DEFAULT_CONCURRENCY)),
                        help="model calls running at once, over all endpoints (default: 2)")
    parser.add_argument("--max-queue", type=int, default=int(os.environ.get("VAEGAN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
                        help="requests allowed to wait (default: 64)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: "
                                                                  "$VAEGAN_TORCH_THREADS or 1)")
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values that would make a server that cannot serve (``ValueError`` naming the option)."""
    for option in ("concurrency", "max_queue"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}.")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}.")
    if args.port is not None:
        check_range("--port", args.port, 1, MAX_PORT, integer=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the demo's command line (``spaces/demo/app.py``); ``args.specs`` joins positional and ``--model``."""
    parser = add_arguments(argparse.ArgumentParser(
        description="vaegan demo: sample, interpolate, explore and reconstruct with AE / VAE / GAN models."))
    args = parser.parse_args(argv)
    try:
        check_arguments(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def specs_of(args: argparse.Namespace) -> list[str]:
    """The model specs given on a parsed command line (positional and ``--model``), in order."""
    return [*args.models, *args.model]
