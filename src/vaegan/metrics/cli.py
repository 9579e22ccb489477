"""``vaegan evaluate MODEL ...``: arguments, the printed table, ``--output`` and ``--update-card``."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError, VaeganError
from ..files import check_output_path, write_file
from .evaluate import DEFAULT_DATA, DEFAULT_IWAE_SAMPLES, DEFAULT_NUM_HELDOUT, DEFAULT_NUM_SAMPLES
from .features import FEATURE_EXTRACTORS, check_features
from .registry import METRICS


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="Hub id or local model folder (none with --real)")
    parser.add_argument("--real", action="store_true",
                        help="no model: measure real held-out images of --data (its test split) against its training "
                             "images, the reference row model rows are read against; --num-samples of them, or all "
                             "when it has fewer")
    parser.add_argument("--image-size", type=int, help="with --real: side of the images (default 28)")
    parser.add_argument("--channels", type=int, help="with --real: image channels (default 1)")
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"real images: a data source (default {DEFAULT_DATA})")
    parser.add_argument("-n", "--num-samples", type=int, default=DEFAULT_NUM_SAMPLES,
                        help=f"generated samples (default {DEFAULT_NUM_SAMPLES:,})")
    parser.add_argument("--metrics", help="comma-separated metric names (default: all that apply); known: "
                        + ", ".join(METRICS))
    parser.add_argument("--features", help=f"feature extractor: {' or '.join(FEATURE_EXTRACTORS)} (default: the one "
                        "--metrics names, else mnist for MNIST data and inception for other data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iwae-samples", type=int, default=DEFAULT_IWAE_SAMPLES,
                        help=f"posterior samples per image for iwae_nll (default {DEFAULT_IWAE_SAMPLES})")
    parser.add_argument("--num-heldout", type=int, default=DEFAULT_NUM_HELDOUT,
                        help=f"held-out images for the likelihood metrics (default {DEFAULT_NUM_HELDOUT})")
    parser.add_argument("--binarize", choices=("auto", "yes", "no"), default="auto",
                        help="binarize the held-out images once (seed 0) for the likelihood and reconstruction "
                             "metrics: auto (default) does when the model was trained with data.binarize (its "
                             "training_config.yaml says so)")
    parser.add_argument("--temperature", type=float,
                        help="sample at this temperature, 0-2 (default: the model's own, 1 unless its config stores "
                             "a sample_temperature)")
    parser.add_argument("-o", "--output", help="also write the results to this JSON file")
    parser.add_argument("--update-card", action="store_true",
                        help="write the results into the model's card (model-index + table) and eval_results.json; "
                             "for a Hub id, as a commit to that repo")
    parser.add_argument("--device", default="cpu")


def format_table(result: dict[str, Any]) -> str:
    """The metrics as an aligned two-column text table."""
    rows = [(name, f"{value:.6g}") for name, value in result["metrics"].items()]
    width = max(len(name) for name, _ in rows)
    subject = (f"{result['model']} against its {result['real_images']:,} training images" if result.get("real")
               else f"{result['model']} on {result['data']}")
    temperature = f", temperature {result['temperature']:g}" if result.get("temperature", 1.0) != 1.0 else ""
    lines = [subject + (f" ({result['num_samples']:,} samples, seed {result['seed']}{temperature}, features "
                        f"{result['features']})" if "num_samples" in result else "")]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if result.get("skipped"):
        lines.append(f"Skipped {', '.join(result['skipped']['metrics'])}: {result['skipped']['reason']}")
    return "\n".join(lines)


def _push_card_update(repo_id: str, result: dict[str, Any]) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    from .card import EVAL_RESULTS_FILENAME, update_card

    with tempfile.TemporaryDirectory() as tmp:
        try:
            Path(tmp, "README.md").write_bytes(Path(hf_hub_download(repo_id, "README.md")).read_bytes())
        except EntryNotFoundError:
            pass
        update_card(tmp, result)
        operations = [CommitOperationAdd(name, str(Path(tmp, name))) for name in ("README.md", EVAL_RESULTS_FILENAME)]
        commit = HfApi().create_commit(repo_id, operations, commit_message="Add vaegan evaluation results")
    return commit.commit_url


def trained_on_binarized_data(model: str) -> bool:
    """Whether the model's recorded training config (``training_config.yaml``) used ``data.binarize``."""
    from ..training.finetune import recorded_training_config

    try:
        recorded = recorded_training_config(model) or {}
    except (VaeganError, OSError):  # unreadable or unreachable: it says nothing about binarization
        return False
    data = recorded.get("data") if isinstance(recorded, dict) else None
    return isinstance(data, dict) and data.get("binarize", "none") not in (None, "none")


def _check_model_or_real(args: argparse.Namespace) -> None:
    if args.real and args.model:
        raise ConfigError(f"give a model or --real, not both (got {args.model!r} and --real).")
    if not args.real and not args.model:
        raise ConfigError("give a model (a Hub id or a folder) to evaluate, or --real for the real-data reference.")
    if args.real and args.update_card:
        raise ConfigError("--update-card needs a model; --real measures real images (write them with --output).")
    if not args.real and (args.image_size is not None or args.channels is not None):
        raise ConfigError("--image-size and --channels go with --real; a model is evaluated at its own image shape.")
    if args.temperature is not None:
        from ..demo.limits import MAX_TEMPERATURE, check_range  # the range of vaegan sample and the demo

        if args.real:
            raise ConfigError("--temperature goes with a model (the temperature it samples at); drop it with --real.")
        check_range("--temperature", args.temperature, 0.0, MAX_TEMPERATURE)


def _write_output(path: str, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=2) + "\n"
    write_file(path, lambda staged: staged.write_text(text))
    print(f"Wrote {path}")


def run_evaluate_real(args: argparse.Namespace, metrics: list[str] | None) -> None:
    from .reference import comparison_note, evaluate_real

    result = evaluate_real(args.data, num_samples=args.num_samples, seed=args.seed, metrics=metrics,
                           features=args.features, channels=args.channels or 1, image_size=args.image_size or 28)
    print(format_table(result))
    if "note" in result:
        print(result["note"])
    print(comparison_note(result))
    if args.output:
        _write_output(args.output, result)


def run_evaluate(args: argparse.Namespace) -> None:
    from ..models import AutoModel
    from .card import update_card
    from .evaluate import evaluate

    _check_model_or_real(args)
    if args.features is not None:
        check_features(args.features)  # before loading anything
    if args.output:
        check_output_path(args.output, "--output", example="eval.json")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.real:
        run_evaluate_real(args, metrics)
        return
    model = AutoModel.from_pretrained(args.model).to(args.device)
    binarize = args.binarize == "yes" or (args.binarize == "auto" and trained_on_binarized_data(args.model))
    if binarize:
        print("Held-out images binarized once (seed 0)" + (" as in the model's training (data.binarize)."
                                                            if args.binarize == "auto" else "."))
    result = evaluate(model, data=args.data, num_samples=args.num_samples, seed=args.seed, metrics=metrics,
                      features=args.features, iwae_samples=args.iwae_samples, num_heldout=args.num_heldout,
                      progress=True, binarize=binarize, temperature=args.temperature)
    result["model"] = args.model
    print(format_table(result))
    if args.output:
        _write_output(args.output, result)
    if args.update_card:
        if Path(args.model).is_dir():
            update_card(args.model, result)
            print(f"Updated the model card {Path(args.model) / 'README.md'}")
        else:
            print(f"Updated the model card of {args.model}: {_push_card_update(args.model, result)}")
