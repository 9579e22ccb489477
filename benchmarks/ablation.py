"""The sample-quality ablations of benchmarks/README.md: EMA on/off for GANs, the latent priors of AEs / VAEs.

    python benchmarks/ablation.py RUNS_DIR [--configs mnist-dcgan,mnist-vae-16d,...] [--num-samples 10000]
                                           [--gmm-components 20,50,100] [--temperatures 0.95,0.9]

Each trained model (``RUNS_DIR/<config>/model``) is evaluated in variants with the same weights and seed: a GAN with
an EMA generator as saved (EMA) and with ``use_ema=False`` (the last-step generator); an AE / VAE with the prior it
was trained with and with each other one (``prior`` switched, the new prior fitted to the same training latents, the
way the trainer fits it): gaussian / gmm / flow for an AE, standard / gmm / flow for a VAE, and with
``--gmm-components`` a mixture of each of those sizes. ``--temperatures`` adds the model as saved sampling at each
temperature (a GAN's latent, an AE / VAE prior's spread, a PixelCNN's logits; the other rows sample at the model's
own ``default_temperature``). Prints one Markdown row per variant
with the CPU seconds of its evaluation (a refitted prior's fit not included).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from vaegan import AutoModel
from vaegan.metrics import evaluate

COLUMNS = ("confident", "class_coverage", "fd_mnist", "precision", "recall")
#: The priors each family compares, in the order of the rows.
FAMILY_PRIORS = {"ae": ("gaussian", "gmm", "flow"), "vae": ("standard", "gmm", "flow")}


def with_prior(model, prior: str, components: int | None = None):
    """The same weights with ``prior`` (a ``components``-Gaussian mixture when given), fitted to the latents of the
    training digits (mnist-5k)."""
    from torch.utils.data import DataLoader

    from vaegan.data import load_image_dataset

    # Without the private keys: diffusers resets the keys listed in `_use_default_values` (an older folder's).
    settings = {k: v for k, v in model.config.items() if not k.startswith("_")}
    if components is not None:
        settings["prior_components"] = components
    other = type(model).from_config({**settings, "prior": prior})
    # The old prior's buffers are left out: the new one is fitted below (and a mixture may change size).
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("latent_prior.")}
    missing, unexpected = other.load_state_dict(other.adapt_pretrained_state(weights), strict=False)
    if unexpected or any(not key.startswith("latent_prior.") for key in missing):
        raise RuntimeError(f"weights do not match: missing {missing}, unexpected {unexpected}")
    if prior != "standard":  # N(0, I) needs no fit
        train = load_image_dataset("mnist-5k", image_size=28, channels=1, split="train")
        other.fit_prior(other.training_latents(images for images, _ in DataLoader(train, batch_size=256)))
    return other


def variants(model, folder: Path, components: list[int], temperatures: list[float]):
    """``(name, model, temperature)`` triples to compare (temperature None: the model's own)."""
    if model.family == "gan" and getattr(model, "has_ema", False):
        yield "EMA generator", model, None
        raw = AutoModel.from_pretrained(folder)
        raw.use_ema = False
        yield "last-step generator", raw, None
    elif model.family in ("ae", "vae"):
        yield f"prior: {model.config.prior}", model, None
        for prior in FAMILY_PRIORS[model.family]:
            if prior != model.config.prior:
                yield f"prior: {prior}" + (" (refitted)" if prior != "standard" else ""), with_prior(model, prior), None
        for count in components:
            yield f"prior: gmm, {count} components (refitted)", with_prior(model, "gmm", count), None
    else:
        yield "as saved", model, None
    if components and model.family not in ("ae", "vae"):
        print(f"--gmm-components: {folder} is a {type(model).__name__}, which has no latent mixture to refit; "
              "skipped.", file=sys.stderr)
    for temperature in temperatures:
        yield f"temperature {temperature:g}", model, temperature


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--configs", default="mnist-dcgan,mnist-sngan,mnist-wgan-gp,mnist-vae-16d,mnist-ae")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--gmm-components", default="", help="AE / VAE: also refit mixtures of these sizes (20,50)")
    parser.add_argument("--temperatures", default="", help="also sample the saved model at these temperatures")
    args = parser.parse_args()
    components = [int(count) for count in args.gmm_components.split(",") if count]
    temperatures = [float(value) for value in args.temperatures.split(",") if value]
    print("| config | variant | " + " | ".join(COLUMNS) + " | eval CPU s |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for config in args.configs.split(","):
        folder = args.runs_dir / config / "model"
        if not (folder / "config.json").is_file():
            print(f"{config}: no model in {folder}", file=sys.stderr)
            continue
        for name, model, temperature in variants(AutoModel.from_pretrained(folder), folder, components,
                                                 temperatures):
            before = os.times()
            with torch.no_grad():
                result = evaluate(model, num_samples=args.num_samples, seed=0, metrics=list(COLUMNS),
                                  temperature=temperature)
            after = os.times()
            seconds = (after.user - before.user) + (after.system - before.system)
            values = " | ".join(f"{result['metrics'][c]:.4g}" for c in COLUMNS)
            print(f"| {config} | {name} | {values} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
