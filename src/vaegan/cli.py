"""The ``vaegan`` command: ``train``, ``sample``, ``interpolate``, ``push`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import VaeganError


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config, e.g. configs/mnist-vae.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable), e.g. --set train.epochs=5")
    parser.add_argument("--output-dir", help="shortcut for --set train.output_dir=DIR")
    parser.add_argument("--resume", metavar="latest|PATH", help="continue from the newest checkpoint or a given one")
    parser.add_argument("--init-from", metavar="HUB_ID|DIR", help="fine-tune a pretrained model")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the trained model at the end")


def run_train(args: argparse.Namespace) -> None:
    from .training import load_config, train

    overrides = list(args.overrides) + ([f"train.output_dir={args.output_dir}"] if args.output_dir else [])
    config = load_config(args.config, overrides)
    train(config, resume=args.resume, init_from=args.init_from, push_to_hub=args.push_to_hub)


def _load(model: str, device: str):
    from .models import AutoModel

    return AutoModel.from_pretrained(model).to(device)


def run_sample(args: argparse.Namespace) -> None:
    from .figures import save_sample_grid

    path = save_sample_grid(_load(args.model, args.device), args.output, num_samples=args.num_samples,
                            seed=args.seed, temperature=args.temperature, nrow=args.nrow)
    print(f"Wrote {args.num_samples} samples to {path}")


def run_interpolate(args: argparse.Namespace) -> None:
    from .figures import save_interpolation

    path = save_interpolation(_load(args.model, args.device), args.output, steps=args.steps, seed=args.seed,
                              mode=args.mode, gif=args.gif)
    print(f"Wrote a {args.steps}-step {args.mode} interpolation to {path}" + (f" and {args.gif}" if args.gif else ""))


def run_push(args: argparse.Namespace) -> None:
    summary_file = Path(args.model) / "training_summary.json"  # written by the trainer: keeps the card's training part
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    url = _load(args.model, "cpu").push_to_hub(args.repo_id, private=args.private or None, training_summary=summary)
    print(f"Pushed {args.model} to {url}")


def run_demo(args: argparse.Namespace) -> None:
    from .demo.options import check_arguments

    check_arguments(args)
    try:
        from .demo.layout import run
    except ModuleNotFoundError as err:
        raise ImportError(f"vaegan demo needs the demo's extra: pip install 'vaegan[space]' ({err}).") from None
    run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaegan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train or fine-tune a model from a YAML config")
    add_train_arguments(train)
    train.set_defaults(run=run_train)

    for name, run, helptext in (("sample", run_sample, "write a grid of samples"),
                                ("interpolate", run_interpolate, "write a latent interpolation strip")):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("model", help="Hub id or local model folder")
        sub.add_argument("-o", "--output", required=True, help="PNG file to write")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--device", default="cpu")
        sub.set_defaults(run=run)
    sample, interpolate = commands.choices["sample"], commands.choices["interpolate"]
    sample.add_argument("-n", "--num-samples", type=int, default=64)
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--nrow", type=int, default=None, help="images per row (default: a square grid)")
    interpolate.add_argument("--steps", type=int, default=10)
    interpolate.add_argument("--mode", choices=("slerp", "lerp"), default="slerp")
    interpolate.add_argument("--gif", help="also write an animated GIF here")

    push = commands.add_parser("push", help="upload a local model folder to the Hub")
    push.add_argument("model", help="local model folder")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.set_defaults(run=run_push)

    from .demo.options import add_arguments  # no gradio import

    demo = commands.add_parser("demo", help="serve the Gradio demo (the Space) for some models")
    add_arguments(demo)
    demo.set_defaults(run=run_demo)
    return parser


# Errors a user can fix from the message alone: shown as one line, without a traceback.
USER_ERRORS = (VaeganError, ValueError, RuntimeError, OSError, ImportError)


def run_command(args: argparse.Namespace, prog: str) -> int:
    """Run ``args.run(args)``; a user error becomes one line on stderr and exit status 2."""
    try:
        args.run(args)
    except USER_ERRORS as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args, f"vaegan {args.command}")


if __name__ == "__main__":
    sys.exit(main())
