"""Model cards for vaegan models and pipelines (huggingface_hub's ``ModelCard``).

:func:`write_model_card` runs inside :meth:`GenerativeModel.save_pretrained`, hence for ``push_to_hub`` and at
the end of training (this module never imports the model classes at run time, so ``models/base.py`` imports it
directly). It writes ``README.md`` with Hub metadata (``library_name: vaegan``, tags, pipeline tag,
datasets, license), a usage snippet that runs as written, the model's configuration, the training summary and
final metrics when given, and a grid of samples (``samples.png``, fixed seed) when the model can sample.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .project import install_sentence, project_link
from .version import __version__

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

    from .models.base import GenerativeModel

__all__ = ["SAMPLES_FILENAME", "TRAINING_CONFIG_NAME", "dataset_tag", "model_card", "pipeline_card",
           "save_card_samples", "write_model_card", "write_pipeline_card"]

logger = logging.getLogger(__name__)

LIBRARY_NAME = "vaegan"
PIPELINE_TAG = "unconditional-image-generation"
DEFAULT_LICENSE = "apache-2.0"
SAMPLES_FILENAME = "samples.png"
#: The resolved training config saved next to a trained model; the card links it.
TRAINING_CONFIG_NAME = "training_config.yaml"
#: The card's sample grid: ``CARD_SAMPLES`` images from ``torch.Generator().manual_seed(CARD_SEED)``.
CARD_SAMPLES, CARD_GRID_ROWS, CARD_SEED = 16, 4, 0
#: A class-conditional model's grid: one row per class (the first ``CARD_MAX_CLASSES``), ``CARD_PER_CLASS`` a row.
CARD_PER_CLASS, CARD_MAX_CLASSES = 8, 20

_FAMILY_TAGS = {"ae": "autoencoder", "vae": "vae", "gan": "gan"}
_FAMILY_NAMES = {"ae": "autoencoder", "vae": "variational autoencoder", "gan": "generative adversarial network",
                 "vqvae": "vector-quantized autoencoder with a learned prior"}
_ARCHITECTURE_TAGS = {"conv": "convolutional", "mlp": "mlp", "dcgan": "dcgan"}
_LOSS_TAGS = {"wgan": "wgan", "wgan_gp": "wgan-gp"}
_KNOWN_DATASETS = ("fashion-mnist", "kmnist", "emnist", "mnist", "cifar10", "cifar100", "celeba", "svhn", "stl10")
# Training-summary keys shown in this order with these labels; other keys follow under their own names.
_SUMMARY_LABELS = {
    "dataset": "Dataset",
    "dataset_id": "Dataset on the Hub",
    "train_images": "Training images",
    "epochs": "Epochs",
    "steps": "Optimisation steps",
    "batch_size": "Batch size",
    "optimizer": "Optimizer",
    "learning_rate": "Learning rate",
    "mixed_precision": "Mixed precision",
    "hardware": "Hardware",
    "training_seconds": "Training time",
    "time": "Training time",
    "seed": "Seed",
    "init_from": "Initialised from",
}
_SUMMARY_SKIP = {"metrics", "repo_id", "license", "tags", "evaluation", "base_model", "changes"}


# ---------------------------------------------------------------------------------------------------- helpers
def dataset_tag(name: str | None) -> str | None:
    """A Hub tag for a dataset id or source (``ylecun/mnist``, ``mnist-5k``, ``hf:uoft-cs/cifar10`` ...), or None."""
    if not name:
        return None
    text = str(name).split(":", 1)[1] if re.match(r"^[a-z]+:", str(name)) else str(name)
    text = text.rstrip("/").split("/")[-1].lower().replace("_", "-")
    if text in _KNOWN_DATASETS:
        return text
    for known in _KNOWN_DATASETS:  # 'mnist-5k', 'cifar10-small', 'fashion-mnist (zalando...)' -> the known name
        if re.match(rf"^{re.escape(known)}(?![a-z0-9])", text):
            return known
    return None


def _dataset_id(summary: Mapping[str, Any]) -> str | None:
    if summary.get("dataset_id"):
        return str(summary["dataset_id"])
    source = summary.get("dataset")
    if not source:
        return None
    try:  # a data source string ('mnist-5k', 'hf:ylecun/mnist') -> its Hub dataset id
        from .data import dataset_id

        return dataset_id(str(source))
    except Exception:  # noqa: BLE001 - a free-form description, not a source string
        return None


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


PLACEHOLDER_OWNER = "your-username"


def _load_target(repo_id: str | None, summary: Mapping[str, Any], load_path: str | Path | None,
                 folder: str | Path | None) -> str:
    """What ``from_pretrained`` takes in the usage snippet: the repo id when known, else a placeholder id named
    after the folder (a card never shows a local absolute path; see :func:`_placeholder_note`)."""
    target = repo_id or summary.get("repo_id")
    if target:
        return str(target)
    location = load_path if load_path is not None else folder
    name = Path(location).resolve().name if location is not None else ""
    return f"{PLACEHOLDER_OWNER}/{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-.') or 'model'}"


def _placeholder_note(target: str) -> list[str]:
    """The one-line note above a snippet that loads a placeholder id."""
    if not target.startswith(f"{PLACEHOLDER_OWNER}/"):
        return []
    return [f"# Not on the Hub yet: replace {json.dumps(target)} with the repo id after pushing, or with the path "
            "of this folder."]


def _importable_name(cls: type) -> str | None:
    """``cls.__name__`` when ``from vaegan import <name>`` gives ``cls`` without any plugin lookup."""
    package = sys.modules.get("vaegan")  # loaded: this module is part of it (and must not import it: a circle)
    return cls.__name__ if package is not None and vars(package).get(cls.__name__) is cls else None


# ---------------------------------------------------------------------------------------------------- samples
def save_card_samples(model: GenerativeModel, folder: str | Path) -> str | None:
    """Write the card's sample grid ``samples.png`` into ``folder``.

    Returns None on success, else the reason the model cannot sample, in the model's own words (e.g. an AE
    without a fitted prior).
    """
    import torch

    from .images import make_grid

    if not model.can_sample:
        return model.cannot_sample_reason()
    try:
        if model.num_classes is not None:  # rows = classes
            labels = torch.arange(_card_classes(model)).repeat_interleave(CARD_PER_CLASS)
            images = model.sample(len(labels), generator=torch.Generator().manual_seed(CARD_SEED), class_labels=labels)
            grid = make_grid(images.float().cpu(), nrow=CARD_PER_CLASS)
        else:
            images = model.sample(CARD_SAMPLES, generator=torch.Generator().manual_seed(CARD_SEED), class_labels=None)
            grid = make_grid(images.float().cpu(), nrow=CARD_GRID_ROWS)
    except (RuntimeError, NotImplementedError, ValueError) as err:
        logger.warning("No sample grid in the model card of %s: %s", type(model).__name__, err)
        return f"This model could not generate samples for this card: {err}"
    grid.save(Path(folder) / SAMPLES_FILENAME)
    return None


def _card_classes(model: GenerativeModel) -> int:
    return min(model.num_classes, CARD_MAX_CLASSES)


def _class_list(model: GenerativeModel) -> str:
    names = model.class_names
    if not names:
        return f"labels 0 to {model.num_classes - 1}"
    return ", ".join(f"{i}: {_code(name)}" for i, name in enumerate(names))


def _samples_caption(model: GenerativeModel) -> str:
    seed = f"`torch.Generator().manual_seed({CARD_SEED})`"
    if model.num_classes is None:
        return f"*{CARD_SAMPLES} samples drawn with {seed}.*"
    shown = _card_classes(model)
    which = "one row per class" if shown == model.num_classes else f"one row for each of the first {shown} classes"
    return f"*Class grid: {which}, {CARD_PER_CLASS} samples a row, drawn with {seed}.*"


# ---------------------------------------------------------------------------------------------------- model cards
def _shape(*dims: Any) -> str:
    return "(" + ", ".join(map(str, dims)) + ")"


def _sampling_lines(model: GenerativeModel, shape: tuple[int, int, int]) -> tuple[list[str], str]:
    """Snippet lines that sample (and draw a class grid), and the ``class_labels`` argument they used."""
    if model.num_classes is None:
        return [f"images = model.sample(16, generator=torch.Generator().manual_seed({CARD_SEED}))  "
                f"# {_shape(16, *shape)}, values in [0, 1]",
                *_temperature_lines(model),
                "make_grid(images, nrow=4).save(\"my_samples.png\")"], ""
    names = model.class_names
    label = json.dumps(names[-1]) if names else str(model.num_classes - 1)
    lines = [f"generator = torch.Generator().manual_seed({CARD_SEED})",
             f"images = model.sample(8, class_labels={label}, generator=generator)  # {_shape(8, *shape)} of class "
             f"{label}, values in [0, 1]",
             *_temperature_lines(model),
             "make_grid(images, nrow=8).save(\"my_samples.png\")"]
    if model.has_latent_space:
        lines += ["# one row per latent (its style) drawn as every class",
                  "styles = model.generate_all_classes(model.prior_latents(4, generator=generator))",
                  f"make_grid(styles, nrow={model.num_classes}).save(\"styles.png\")"]
    return lines, f", class_labels={label}"


def _temperature_lines(model: GenerativeModel) -> list[str]:
    """A comment on the stored sampling temperature, when the model has one other than 1."""
    if model.default_temperature == 1.0:
        return []
    return [f"# sample() draws at this model's sample_temperature, {model.default_temperature:g} (typical images); "
            "pass temperature=1.0 for the full spread"]


def _image_lines(model: GenerativeModel, shape: tuple[int, int, int]) -> tuple[list[str], str]:
    """Snippet lines that reconstruct / encode images (a model that cannot sample), and their ``class_labels``."""
    lines = [f"images = torch.rand(4, {', '.join(map(str, shape))})  # replace with your images, values in [0, 1]"]
    labels = ""
    if model.num_classes is not None:
        lines.append("labels = torch.zeros(4, dtype=torch.long)  # replace with the images' classes")
        labels = ", class_labels=labels"
    if model.can_reconstruct:
        lines.append(f"reconstructions = model.reconstruct(images{labels})  # {_shape(4, *shape)}")
    if model.has_encoder:
        latents = _shape(4, *model.latent_shape) if model.latent_shape else "the latents"
        lines.append(f"latents = model.encode_images(images{labels})  # {latents}")
    return lines, labels


def _usage(model: GenerativeModel, target: str, can_sample: bool, subfolder: str | None = None) -> str:
    """A snippet that loads the model and uses what it can do: sample (or reconstruct and encode images when it
    cannot sample yet), its latent space, its likelihood."""
    cls = type(model)
    name = _importable_name(cls)
    imports = ["import torch", "", f"from vaegan import {name}" if name else "from vaegan import AutoModel"]
    loader = name or "AutoModel"
    where = json.dumps(target) + (f", subfolder={json.dumps(subfolder)}" if subfolder else "")
    shape = model.image_shape
    if can_sample:
        imports.append("from vaegan.images import make_grid")
        uses, labels = _sampling_lines(model, shape)
    elif model.can_reconstruct or model.has_encoder or model.supports("log_likelihood"):
        uses, labels = _image_lines(model, shape)
    else:
        uses, labels = [f"print(model.image_shape)  # {_shape(*shape)}"], ""
    if model.supports("log_likelihood"):  # both branches above define `images`
        uses.append(f"log_p = model.log_likelihood(images{labels})  # log p(x) of each image, nats")
    lines = _placeholder_note(target) + [f"model = {loader}.from_pretrained({where})"] + uses
    prefix = "" if name else f"# needs the package that provides {cls.__name__} (a vaegan plugin)\n"
    return "```python\n" + prefix + "\n".join(imports) + "\n\n" + "\n".join(lines) + "\n```"


def _config_rows(model: GenerativeModel) -> list[tuple[str, str]]:
    return [(f"`{key}`", _code(value)) for key, value in model.config.items() if not key.startswith("_")]


def _summary_section(summary: Mapping[str, Any]) -> str:
    rows = []
    keys = [k for k in _SUMMARY_LABELS if k in summary] + [k for k in summary if k not in _SUMMARY_LABELS]
    for key in keys:
        value = summary[key]
        if key in _SUMMARY_SKIP or value is None or isinstance(value, Mapping):
            continue
        if key == "dataset_id":
            value = f"[{value}](https://huggingface.co/datasets/{value})"
        elif key == "training_seconds" and isinstance(value, int | float):
            value = _duration(value)
        rows.append((_SUMMARY_LABELS.get(key, key.replace("_", " ").capitalize()), _cell(value)))
    parts = ["## Training", ""]
    if rows:
        parts += [_table(("", ""), rows), ""]
    metrics = summary.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        parts += ["### Final metrics", "", _table(("Metric", "Value"), [(f"`{k}`", _cell(v)) for k, v in
                                                                         metrics.items()]), ""]
    return "\n".join(parts)


def _fine_tuning_section(summary: Mapping[str, Any]) -> str:
    """Where a fine-tuned model came from (``init_from`` / ``base_model``) and which settings changed."""
    base = summary.get("base_model")
    origin = f"[{base}](https://huggingface.co/{base})" if base else _code(str(summary["init_from"]))
    parts = ["## Fine-tuning", "", f"Fine-tuned from {origin}: training started from its weights."]
    changes = summary.get("changes")
    if isinstance(changes, Mapping) and changes:
        parts += ["", "Changed from the base model's training config:", "",
                  _table(("Setting", "Base model → this model"),
                         [(f"`{key}`", f"{_code(old)} → {_code(new)}") for key, (old, new) in changes.items()])]
    elif isinstance(changes, Mapping):
        parts += ["", "The data and training settings were those of the base model's training config."]
    if summary.get("steps") is not None:
        parts += ["", f"This run: {summary['steps']} optimisation steps."]
    return "\n".join(parts) + "\n"


def _tags(model: GenerativeModel, dataset_id: str | None, summary: Mapping[str, Any]) -> list[str]:
    config = model.config
    family = getattr(model, "family", "model")
    tags = [LIBRARY_NAME, _FAMILY_TAGS.get(family, family)]
    architecture = config.get("architecture")
    if isinstance(architecture, str):
        tags.append(_ARCHITECTURE_TAGS.get(architecture, architecture))
    loss = config.get("loss")
    if isinstance(loss, str) and loss in _LOSS_TAGS:
        tags.append(_LOSS_TAGS[loss])
    tags.append(PIPELINE_TAG)
    if model.num_classes is not None:
        tags.append("class-conditional")
    tags.append(dataset_tag(dataset_id) or dataset_tag(summary.get("dataset")))
    tags += [str(t) for t in summary.get("tags") or ()]
    return list(dict.fromkeys(t for t in tags if t))


def model_card(model: GenerativeModel, training_summary: Mapping[str, Any] | None = None, *,
               repo_id: str | None = None, load_path: str | Path | None = None, subfolder: str | None = None,
               samples: str | None = SAMPLES_FILENAME, no_samples_reason: str | None = None,
               training_config: str | None = None) -> ModelCard:
    """The model card of ``model`` (no files written; see :func:`write_model_card`).

    ``samples`` is the sample grid's file name relative to the card (None: no grid, and
    ``no_samples_reason`` says why). The usage snippet loads ``repo_id`` (or ``training_summary["repo_id"]``)
    when known, else ``load_path`` (with ``subfolder``: the model is a pipeline component). ``training_config``:
    the file name of the saved training config, linked from the card. A summary with ``init_from`` (a fine-tuned
    model) adds the Hub's ``base_model`` metadata (when it is a Hub id) and what changed from the base model.
    """
    from huggingface_hub import ModelCard, ModelCardData

    summary = dict(training_summary or {})
    cls_name = type(model).__name__
    target = _load_target(repo_id, summary, load_path, None)
    dataset_id = _dataset_id(summary)
    data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=str(summary.get("license") or DEFAULT_LICENSE),
        pipeline_tag=PIPELINE_TAG,
        tags=_tags(model, dataset_id, summary),
        datasets=[dataset_id] if dataset_id else None,
        base_model=summary.get("base_model") or None,
    )
    family = getattr(model, "family", "model")
    title = (repo_id or summary.get("repo_id") or cls_name).split("/")[-1]
    trained_on = f", trained on {summary['dataset']}" if summary.get("dataset") else ""
    c, h, w = model.image_shape
    article = "An" if cls_name[:1] in "AEIO" else "A"
    latent = f"; the latent space has {model.latent_dim} dimensions" if model.latent_shape else ""
    parts = [
        f"# {title}",
        "",
        f"{article} `{cls_name}` ({_FAMILY_NAMES.get(family, family)}) made with "
        f"{project_link()}{trained_on}. Images are {c} x {h} x {w}{latent}.",
        "",
    ]
    for section in model.card_sections():
        parts += [section, ""]
    if model.num_classes is not None:
        methods = ["sample", "interpolate" if model.has_latent_space else None,
                   "reconstruct" if model.can_reconstruct else None,
                   "log_likelihood" if model.supports("log_likelihood") else None]
        listed = ", ".join(f"`{m}`" for m in methods if m)
        parts += [f"It is **class-conditional** ({model.num_classes} classes): pass `class_labels` (indices or class "
                  f"names) to {listed} and the pipelines. Classes: {_class_list(model)}.", ""]
    if model.config.get("clusters") and model.latent_shape:  # a cluster-conditioned GAN
        parts += [f"It was trained conditioned on {model.config.clusters} k-means clusters of its training images (no "
                  "labels); `sample` draws a cluster with its training frequency, and the last "
                  f"{model.config.clusters} latent dimensions are that cluster, one-hot.", ""]
    if samples:
        parts += [f"![samples]({samples})", "", _samples_caption(model), ""]
    else:
        parts += [f"No samples are shown. {no_samples_reason or 'This model cannot generate samples.'}", ""]
    parts += ["## Usage", "", install_sentence(), "",
              _usage(model, target, can_sample=bool(samples), subfolder=subfolder), ""]
    parameters = sum(p.numel() for p in model.parameters())
    rows = [("Class", f"`{cls_name}` (vaegan {__version__})"), ("Parameters", f"{parameters:,}")]
    if model.latent_shape:
        rows.append(("Latent dimension", str(model.latent_dim)))
    capabilities = ", ".join(f"`{name}`" for name in sorted(type(model).capabilities())) or "none"
    rows += [("Image shape (C, H, W)", f"{(c, h, w)}"), ("Capabilities (besides sampling)", capabilities)]
    parts += [
        "## Model", "", _table(("", ""), rows),
        "", "### Configuration", "", _table(("Key", "Value"), _config_rows(model)), "",
    ]
    if summary.get("init_from"):
        parts.append(_fine_tuning_section(summary))
    if any(k not in _SUMMARY_SKIP for k in summary) or summary.get("metrics"):
        parts.append(_summary_section(summary))
    if training_config:
        if not parts[-1].startswith("## Training"):
            parts += ["## Training", ""]
        parts += [f"The complete training config is [`{training_config}`]({training_config}); "
                  f"`vaegan train {target}` fine-tunes this model with it (add `--set section.key=value` to change "
                  "data or settings).", ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts).rstrip() + "\n")
    if summary.get("evaluation"):  # a result of vaegan.metrics.evaluate: model-index metadata + a table
        from .metrics.card import apply_to_card

        apply_to_card(card, summary["evaluation"], model_name=title)
    return card


def write_model_card(model: GenerativeModel, folder: str | Path, training_summary: Mapping[str, Any] | None = None,
                     *, repo_id: str | None = None, load_path: str | Path | None = None,
                     subfolder: str | None = None) -> ModelCard:
    """Write ``README.md`` (and the sample grid ``samples.png`` when the model can sample) into ``folder``.

    ``repo_id`` (or ``training_summary["repo_id"]``) is the id the usage snippet loads; without one it loads
    ``load_path`` (default: ``folder``), from ``subfolder`` when given. ``training_summary`` is free-form
    (vaegan's trainer writes ``dataset``, ``dataset_id``, ``epochs``, ``steps``, ``batch_size``, ``optimizer``,
    ``hardware``, ``training_seconds``, ``license``, ``metrics``: {...}, ...); its ``evaluation`` (the result of
    :func:`vaegan.metrics.evaluate`) becomes the card's ``model-index`` and "Evaluation" section.
    """
    folder = Path(folder)
    reason = save_card_samples(model, folder)
    stale = folder / SAMPLES_FILENAME
    if reason and stale.exists():
        stale.unlink()
    config_file = TRAINING_CONFIG_NAME if (folder / TRAINING_CONFIG_NAME).is_file() else None
    card = model_card(model, training_summary, repo_id=repo_id, load_path=load_path or folder,
                      subfolder=subfolder, samples=None if reason else SAMPLES_FILENAME, no_samples_reason=reason,
                      training_config=config_file)
    card.save(folder / "README.md")
    if training_summary and training_summary.get("evaluation"):
        from .metrics.card import write_eval_results

        write_eval_results(folder, training_summary["evaluation"])
    return card


# ---------------------------------------------------------------------------------------------------- pipelines
def pipeline_card(pipeline: Any, *, repo_id: str | None = None, load_path: str | Path | None = None,
                  samples: str | None = None) -> ModelCard:
    """The card of a saved vaegan pipeline folder (``model_index.json`` + one model subfolder)."""
    from huggingface_hub import ModelCard, ModelCardData

    name = pipeline.component_name
    model = getattr(pipeline, name)
    target = _load_target(repo_id, {}, load_path, None)
    family = getattr(model, "family", "model")
    data = ModelCardData(
        library_name="diffusers", license=DEFAULT_LICENSE, pipeline_tag=PIPELINE_TAG,
        tags=list(dict.fromkeys([LIBRARY_NAME, _FAMILY_TAGS.get(family, family), PIPELINE_TAG, "diffusers"])),
    )
    title = (repo_id or type(pipeline).__name__).split("/")[-1]
    parts = [
        f"# {title}", "",
        f"A diffusers `{type(pipeline).__name__}` around a vaegan `{type(model).__name__}` (in `{name}/`, with its "
        "own model card). `import vaegan` makes diffusers able to load it; nothing in this repo is executed.", "",
    ]
    if samples:
        parts += [f"![samples]({samples})", ""]
    parts += [
        "## Usage", "", "```python", "import torch", "from diffusers import DiffusionPipeline", "",
        "import vaegan  # noqa: F401 - registers vaegan's models and pipelines with diffusers", "",
        *_placeholder_note(target),
        f"pipe = DiffusionPipeline.from_pretrained({json.dumps(target)})",
        *([f"images = pipe(class_labels={_pipeline_labels(model)}, generator=torch.Generator().manual_seed(0))"
           ".images  # PIL images, one per label"] if model.num_classes is not None else
          ["images = pipe(batch_size=4, generator=torch.Generator().manual_seed(0)).images  # PIL images"]),
        "images[0].save(\"sample.png\")",
        "```", "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts).rstrip() + "\n")


def _pipeline_labels(model: Any) -> str:
    names = model.class_names
    return json.dumps(names[:2] if names else [0, 1])


def write_pipeline_card(pipeline: Any, folder: str | Path, *, repo_id: str | None = None,
                        load_path: str | Path | None = None) -> ModelCard:
    """Write the pipeline's ``README.md`` into ``folder``, showing the model's sample grid when there is one."""
    folder = Path(folder)
    samples = f"{pipeline.component_name}/{SAMPLES_FILENAME}"
    card = pipeline_card(pipeline, repo_id=repo_id, load_path=load_path or folder,
                         samples=samples if (folder / samples).is_file() else None)
    card.save(folder / "README.md")
    return card
