"""Fine-tuning a trained model in one command: ``vaegan train org/mnist-vae --set data.source=...``.

A Hub id or a model folder stands in for the YAML config. The model section comes from the model's
``config.json`` (what its weights were built with); data and training settings come from the
``training_config.yaml`` the trainer saved next to the weights, or, for a model without one, from the bundled
config closest to the model's family and shape. The user's ``--set`` overrides apply on top.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..cards import TRAINING_CONFIG_NAME
from ..errors import ConfigError
from .bundled import bundled_configs
from .config import MACHINE_SETTINGS, TrainingConfig, apply_override, config_from_dict, load_yaml

#: Settings whose change a fine-tuned model's card reports.
REPORTED_CHANGES = ("data.source", "data.limit", "train.epochs", "train.max_steps", "train.batch_size",
                    "train.learning_rate", "train.phase_learning_rates", "train.optimizer")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_id(reference: str) -> bool:
    """``org/name`` that is not a local path."""
    return bool(_REPO_ID.fullmatch(reference)) and not Path(reference).exists()


def is_model_reference(reference: str) -> bool:
    """Whether ``vaegan train REFERENCE`` means a model to fine-tune (a model folder or a Hub id), not a config."""
    path = Path(reference)
    if path.is_dir():
        return (path / "config.json").is_file()
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return False
    return is_hub_id(reference)


def _model_config(reference: str) -> dict[str, Any]:
    from huggingface_hub.errors import RepositoryNotFoundError

    from ..models.base import GenerativeModel
    from ..models.serialization import load_config

    try:
        config = load_config(GenerativeModel, reference, {})
    except RepositoryNotFoundError as err:
        raise ConfigError(f"{reference} is not a YAML file, a bundled config (vaegan configs lists them), a model "
                          f"folder or an accessible Hub model repo ({type(err).__name__}).") from err
    if not config.get("_class_name"):
        raise ConfigError(f"{reference}: config.json has no '_class_name', so it is not a vaegan model.")
    return config


def recorded_training_config(reference: str) -> dict[str, Any] | None:
    """The ``training_config.yaml`` saved with a model (folder or Hub repo), or None when it has none."""
    path = Path(reference) / TRAINING_CONFIG_NAME
    if not Path(reference).is_dir():
        if not is_hub_id(reference):
            return None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = Path(hf_hub_download(reference, TRAINING_CONFIG_NAME))
        except EntryNotFoundError:
            return None
    if not path.is_file():
        return None
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{reference}: {TRAINING_CONFIG_NAME} is not valid YAML ({err}).") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{reference}: {TRAINING_CONFIG_NAME} is not a mapping of config sections.")
    return raw


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drop_machine_settings(raw: dict[str, Any]) -> list[str]:
    """Remove :data:`~vaegan.training.config.MACHINE_SETTINGS` from a recorded training config (sections already
    copied); returns ``key=value`` for each one it set to something other than the default, for the log."""
    defaults = TrainingConfig(model={}).to_dict()
    ignored = []
    for key in MACHINE_SETTINGS:
        section, name = key.split(".")
        values = raw.get(section)
        if isinstance(values, dict) and name in values:
            value = values.pop(name)
            if value != defaults[section][name]:
                ignored.append(f"{key}={_short(value)}")
    return ignored


def closest_bundled_config(model_config: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The bundled config of the same class that shares the most shape settings with ``model_config``.

    On a tie, a config on the offline ``mnist-5k`` data wins (it runs anywhere), then the first by name.
    """
    best: tuple[float, str, dict[str, Any]] | None = None
    for name, entry in bundled_configs().items():
        raw = load_yaml(entry.read_text()) or {}
        model = raw.get("model") or {}
        if model.get("class") != model_config["_class_name"]:
            continue
        score = sum(model.get(key) == model_config.get(key)
                    for key in ("image_size", "in_channels", "architecture", "latent_dim", "loss"))
        score += 0.5 * ((raw.get("data") or {}).get("source") == "mnist-5k")
        if best is None or score > best[0]:
            best = (score, name, raw)
    return None if best is None else best[1:]


def finetune_config(reference: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[TrainingConfig, list[str]]:
    """The training config to fine-tune ``reference`` (Hub id or model folder) and what was chosen, for the log.

    The output folder defaults to ``outputs/<model name>-finetuned`` and nothing is pushed unless asked for, so the
    base model's own run and repo are never touched.
    """
    from ..data import is_local_source

    model_config = _model_config(reference)
    notes = []
    raw = recorded_training_config(reference)
    recorded = raw is not None
    if recorded:
        notes.append(f"Fine-tuning {reference} with its recorded {TRAINING_CONFIG_NAME}.")
    else:
        found = closest_bundled_config(model_config)
        if found:
            name, raw = found
            notes.append(f"{reference} has no {TRAINING_CONFIG_NAME}; using the data and train settings of the "
                         f"bundled config {name}.")
        else:
            raw = {}
            notes.append(f"{reference} has no {TRAINING_CONFIG_NAME} and no bundled config trains a "
                         f"{model_config['_class_name']}; using the default data and train settings.")
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}  # copies
    local_source = None
    if recorded:  # written on another machine: its machine settings and local data folder are not this run's
        ignored = drop_machine_settings(raw)
        if ignored:
            notes.append(f"Settings of the machine that trained it, not taken from its {TRAINING_CONFIG_NAME} (--set "
                         f"them for this run): {', '.join(ignored)}.")
        data = raw.get("data")
        if isinstance(data, dict) and isinstance(data.get("source"), str) and is_local_source(data["source"]):
            local_source = data.pop("source")
    raw["model"] = {"class": model_config["_class_name"],
                    **{k: v for k, v in model_config.items() if not k.startswith("_")}}
    name = Path(reference.rstrip("/")).name if not is_hub_id(reference) else reference.split("/")[-1]
    if name == "model":  # a trainer's OUTPUT/model folder: name it after the run
        name = Path(reference).resolve().parent.name
    for section in ("train", "hub"):
        raw[section] = {} if raw.get(section) is None else raw[section]
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{reference}: section '{section}' of its training config is not a mapping.")
    raw["train"]["output_dir"] = f"outputs/{name}-finetuned"
    raw["hub"]["repo_id"] = None
    for override in overrides:
        apply_override(raw, override)
    if local_source is not None and "source" not in (raw.get("data") or {}):
        raise ConfigError(f"{reference} was trained on {local_source}, a folder of the machine that trained it; give "
                          "the images to fine-tune on with --set data.source=... (e.g. imagefolder:./my-images or "
                          "mnist-5k).")
    return config_from_dict(raw), notes


def _get(raw: dict[str, Any], key: str) -> Any:
    section, name = key.split(".")
    return (raw.get(section) or {}).get(name)


def base_model_summary(init_from: str, config: TrainingConfig, base: dict[str, Any] | None) -> dict[str, Any]:
    """Training-summary entries of a fine-tuned model: its Hub ``base_model`` and the settings that changed from
    ``base``, the base model's recorded training config (None: not known)."""
    summary: dict[str, Any] = {"base_model": init_from if is_hub_id(init_from) else None}
    if base is not None:
        new = config.shareable_dict()  # the card shows no local folder
        summary["changes"] = {key: [_get(base, key), _get(new, key)] for key in REPORTED_CHANGES
                              if _get(base, key) != _get(new, key)}
    return summary


def shape_check_applies(config: TrainingConfig, init_from: str | None, base: dict[str, Any] | None) -> bool:
    """Whether data of another shape than the model's are refused (rather than resized).

    ``data.resize: false`` always, ``true`` never; unset: when fine-tuning on data other than the base model's own
    (``base`` is its recorded training config; the same source gets the same resizing as the base run had).
    """
    if config.data.resize is not None:
        return not config.data.resize
    return init_from is not None and (base is None or _get(base, "data.source") != config.data.source)


def stored_image_shape(dataset: Any) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` of a dataset's first image as its source stores it; None when unknown."""
    from ..data import _to_pil

    if getattr(dataset, "source", None) == "mnist-5k":
        return (1, 28, 28)
    try:
        image, _ = dataset._raw(dataset.indices[0])
        pil = _to_pil(image)
    except (AttributeError, IndexError, NotImplementedError):
        return None
    if pil.mode in ("1", "L", "LA", "I", "F") or pil.mode.startswith("I;"):
        channels = 1
    else:
        rgb = pil.convert("RGB")
        red, green, blue = rgb.split()
        channels = 1 if red.tobytes() == green.tobytes() == blue.tobytes() else 3
    return (channels, pil.height, pil.width)


def _shape_text(channels: int, height: int, width: int) -> str:
    return f"{height}x{width}x{channels} ({'grayscale' if channels == 1 else 'colour'})"


def check_data_shape(dataset: Any, model: Any, *, source: str, model_name: str) -> None:
    """Refuse data whose images differ in size or channels from what the pretrained model takes."""
    stored = stored_image_shape(dataset)
    wanted = tuple(model.image_shape)
    if stored is None or stored == wanted:
        return
    raise ConfigError(
        f"data.source {source} holds {_shape_text(*stored)} images, but the model {model_name} takes "
        f"{_shape_text(*wanted)} images. Use data of that shape, or add --set data.resize=true to resize and "
        "convert the images to it."
    )
