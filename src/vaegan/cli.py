"""The ``vaegan`` command: ``train``, ``sample``, ``interpolate``, ``evaluate``, ``configs``, ``push`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .completion import DEFAULT_KEEP, KEEP_CHOICES
from .errors import ConfigError, VaeganError
from .files import check_output_path


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config (configs/mnist-vae.yaml), a bundled config's name "
                        "(mnist-vae; see `vaegan configs`), or a Hub id / model folder to fine-tune (org/mnist-vae)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable), e.g. --set train.epochs=5")
    parser.add_argument("--output-dir", help="shortcut for --set train.output_dir=DIR")
    parser.add_argument("--resume", metavar="latest|PATH", help="continue from the newest checkpoint or a given one")
    parser.add_argument("--init-from", metavar="HUB_ID|DIR", help="fine-tune a pretrained model")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an output_dir that holds an earlier run, removing only what vaegan "
                             "wrote there (checkpoints, samples, model, metrics, config)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the trained model at the end")
    parser.add_argument("--stage", metavar="NAME",
                        help="families trained in stages (e.g. autoencoder, then prior): train only this stage, with "
                             "its train.stages.NAME settings; e.g. --stage prior --init-from DIR trains the prior of "
                             "an already trained autoencoder. Resume such a run with the same --stage.")


def run_train(args: argparse.Namespace) -> None:
    from .training import load_config, train
    from .training.finetune import finetune_config, is_model_reference

    overrides = list(args.overrides) + ([f"train.output_dir={args.output_dir}"] if args.output_dir else [])
    init_from = args.init_from
    if is_model_reference(args.config):
        if init_from:
            raise ConfigError(f"{args.config} is the model to fine-tune; drop --init-from {init_from}.")
        config, notes = finetune_config(args.config, overrides)
        init_from = args.config
        if os.environ.get("LOCAL_RANK", "0") == "0":  # once per machine (no accelerate state before the trainer's)
            print("\n".join([*notes, f"Writing to {config.train.output_dir} (--output-dir changes it)."]))
    else:
        config = load_config(args.config, overrides)
    train(config, resume=args.resume, init_from=init_from, push_to_hub=args.push_to_hub,
          overwrite=args.overwrite, stage=args.stage)


def _load(model: str, device: str):
    from .models import AutoModel

    return AutoModel.from_pretrained(model).to(device)


def _cli_label(model, label: str | None) -> int | None:
    """``--label``: a class name of the model, else a class index."""
    if label is None:
        return None
    if label in (model.class_names or []) or not label.lstrip("-").isdigit():
        return int(model.prepare_class_labels(label)[0])
    return int(model.prepare_class_labels(int(label))[0])


def _describe_classes(model) -> str:
    names = model.class_names
    return ", ".join(f"{i}={n}" for i, n in enumerate(names)) if names else f"0..{model.num_classes - 1}"


def _check_limits(args: argparse.Namespace) -> None:
    """The caps of ``vaegan sample`` / ``interpolate`` (vaegan.demo.limits), checked before loading the model."""
    from .demo.limits import CLI_MAX_IMAGES, CLI_MAX_STEPS, MAX_TEMPERATURE, MIN_STEPS, check_range

    if getattr(args, "num_samples", None) is not None:
        check_range("--num-samples", args.num_samples, 1, CLI_MAX_IMAGES, integer=True)
    if getattr(args, "temperature", None) is not None:
        check_range("--temperature", args.temperature, 0.0, MAX_TEMPERATURE)
    if hasattr(args, "steps"):
        check_range("--steps", args.steps, MIN_STEPS, CLI_MAX_STEPS, integer=True)


def run_sample(args: argparse.Namespace) -> None:
    from .figures import save_class_grid, save_sample_grid

    _check_limits(args)
    check_output_path(args.output, "-o", example="samples.png")
    model = _load(args.model, args.device)
    if not model.can_sample:
        raise RuntimeError(f"{args.model}: {model.cannot_sample_reason()}")
    if args.all_classes and args.label is not None:
        raise ValueError("--all-classes draws every class; drop --label (or drop --all-classes for one class).")
    if args.all_classes:
        per_class = args.num_samples or 8
        if model.num_classes is None:
            raise ValueError(f"{args.model} is unconditional (no classes); --all-classes needs a class-conditional "
                             "model. Drop --all-classes.")
        path = save_class_grid(model, args.output, per_class=per_class, seed=args.seed, temperature=args.temperature)
        print(f"Wrote {per_class} samples of each of {model.num_classes} classes ({_describe_classes(model)}), one "
              f"class a row, to {path}")
        return
    num_samples = args.num_samples or 64
    label = _cli_label(model, args.label)
    path = save_sample_grid(model, args.output, num_samples=num_samples, seed=args.seed,
                            temperature=args.temperature, nrow=args.nrow, class_labels=label)
    what = "" if label is None else f" of class {label}" + (f" ({model.class_names[label]})" if model.class_names
                                                             else "")
    if label is None and model.num_classes is not None:
        what = f" of classes drawn at random (pick one with --label; classes: {_describe_classes(model)})"
    print(f"Wrote {num_samples} samples{what} to {path}")


def run_interpolate(args: argparse.Namespace) -> None:
    from .figures import save_interpolation

    _check_limits(args)
    check_output_path(args.output, "-o", example="interpolation.png")
    if args.gif:
        check_output_path(args.gif, "--gif", example="interpolation.gif")
    model = _load(args.model, args.device)
    if not model.has_latent_space:
        raise ValueError(f"{args.model} ({type(model).__name__}) has no latent space, so it cannot interpolate; use "
                         f"`vaegan sample {args.model}` to generate images.")
    path = save_interpolation(model, args.output, steps=args.steps, seed=args.seed,
                              mode=args.mode, gif=args.gif, class_labels=_cli_label(model, args.label))
    print(f"Wrote a {args.steps}-step {args.mode} interpolation to {path}" + (f" and {args.gif}" if args.gif else ""))


def run_complete(args: argparse.Namespace) -> None:
    import torch
    from PIL import Image, UnidentifiedImageError

    from .completion import complete_image
    from .data import to_image_tensor
    from .demo.limits import CLI_MAX_IMAGES, check_range

    check_range("--num-completions", args.num_completions, 1, CLI_MAX_IMAGES, integer=True)
    model = _load(args.model, args.device)
    if not model.supports("completion"):
        raise ValueError(f"{args.model} ({type(model).__name__}) cannot complete images (it has no `complete` "
                         "method: an autoregressive model such as a PixelCNN can).")
    channels, height, width = model.image_shape
    try:
        with Image.open(args.image) as picture:
            image = to_image_tensor(picture, channels=channels, image_size=height)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{args.image}: not a readable image ({err}).") from err
    label = _cli_label(model, args.label)
    if model.num_classes is not None and label is None:
        raise ValueError(f"{args.model} is class-conditional: pass --label (classes: {_describe_classes(model)}).")
    grid = complete_image(model, image, args.keep, args.num_completions,
                          generator=torch.Generator().manual_seed(args.seed), class_labels=label)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(output)
    print(f"Wrote the kept part ({args.keep}, grey: redrawn) and {args.num_completions} completions to {output}")


def run_push(args: argparse.Namespace) -> None:
    from .training.config import load_yaml

    summary_file = Path(args.model) / "training_summary.json"  # written by the trainer: keeps the card's training part
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    evaluation = Path(args.model) / "eval_results.json"  # written by `vaegan evaluate --update-card` and the trainer
    if evaluation.is_file():
        summary = {**(summary or {}), "evaluation": json.loads(evaluation.read_text())}
    config_file = Path(args.model) / "training_config.yaml"  # the trainer's too: `vaegan train REPO` fine-tunes with it
    training_config = load_yaml(config_file.read_text()) if config_file.is_file() else None
    if isinstance(training_config, dict):  # a folder saved before vaegan left local folders out of it
        from .training.config import shareable_config

        training_config = shareable_config(training_config)
    url = _load(args.model, "cpu").push_to_hub(args.repo_id, private=args.private or None, training_summary=summary,
                                               training_config=training_config)
    print(f"Pushed {args.model} to {url}")


def run_evaluate(args: argparse.Namespace) -> None:
    from .metrics.cli import run_evaluate as run

    run(args)


def run_configs(args: argparse.Namespace) -> None:
    from .training.bundled import bundled_configs, config_descriptions

    descriptions = config_descriptions()
    if args.paths:
        for name, entry in bundled_configs().items():
            print(f"{name}\t{entry}")
        return
    width = max(map(len, descriptions), default=0)
    for name, description in descriptions.items():
        print(f"{name:<{width}}  {description}")
    print("\nTrain one with `vaegan train NAME` (e.g. vaegan train mnist-vae --set train.epochs=5).")


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
    sample.add_argument("-n", "--num-samples", type=int, default=None,
                        help="number of samples (default 64); with --all-classes, samples per class (default 8)")
    sample.add_argument("--all-classes", action="store_true",
                        help="class-conditional models: a grid with one row per class")
    sample.add_argument("--temperature", type=float, default=None,
                        help="spread of the model's randomness, 0-2 (default: the model's own, 1 unless its config "
                             "stores a sample_temperature)")
    sample.add_argument("--nrow", type=int, default=None, help="images per row (default: a square grid)")
    for sub in (sample, interpolate):
        sub.add_argument("--label", help="class-conditional models: class name or index (default: drawn from --seed)")
    interpolate.add_argument("--steps", type=int, default=10)
    interpolate.add_argument("--mode", choices=("slerp", "lerp"), default="slerp")
    interpolate.add_argument("--gif", help="also write an animated GIF here")

    complete = commands.add_parser("complete", help="keep part of an image and let the model redraw the rest")
    complete.add_argument("model", help="Hub id or local model folder of a model that can complete (a PixelCNN)")
    complete.add_argument("image", help="the image to complete (resized to the model's image size)")
    complete.add_argument("--keep", choices=sorted(KEEP_CHOICES), default=DEFAULT_KEEP,
                          help="the part of the image kept (default top-half); the rest is redrawn in raster order")
    complete.add_argument("-n", "--num-completions", type=int, default=8, help="completions to draw (default 8)")
    complete.add_argument("-o", "--output", required=True, help="PNG file to write: the kept part, then the "
                                                                  "completions, in one row")
    complete.add_argument("--label", help="class-conditional models: the class name or index to complete as")
    complete.add_argument("--seed", type=int, default=0)
    complete.add_argument("--device", default="cpu")
    complete.set_defaults(run=run_complete)

    evaluate = commands.add_parser("evaluate", help="compute generation / likelihood metrics of a model")
    from .metrics.cli import add_evaluate_arguments

    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    configs = commands.add_parser("configs", help="list the bundled training configs")
    configs.add_argument("--paths", action="store_true", help="print each config's file path instead")
    configs.set_defaults(run=run_configs)

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
# torch re-raises an error of a DataLoader worker (a bad image) with the worker's traceback as its message.
_WORKER_ERROR = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


def error_message(err: BaseException) -> str:
    """What the user reads of ``err``: its message; for a DataLoader worker's error, the original one."""
    text = str(err)
    if not _WORKER_ERROR.match(text):
        return text
    cls = type(err)
    for prefix in (f"\n{cls.__module__}.{cls.__qualname__}: ", f"\n{cls.__qualname__}: "):
        if prefix in text:
            return text[text.rindex(prefix) + len(prefix):].strip()
    return text.strip().splitlines()[-1]  # torch could not rebuild the type: "Name: message"


def run_command(args: argparse.Namespace, prog: str) -> int:
    """Run ``args.run(args)``; a user error becomes one line on stderr and exit status 2."""
    try:
        args.run(args)
    except USER_ERRORS as err:
        print(f"{prog}: error: {error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (" Continue the run from its last checkpoint with --resume latest (make quickstart does)."
                if args.run is run_train else "")
        print(f"{prog}: interrupted.{hint}", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args, f"vaegan {args.command}")


if __name__ == "__main__":
    sys.exit(main())
