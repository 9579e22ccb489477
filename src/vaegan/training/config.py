"""Typed training configuration: a YAML file with ``model``, ``data``, ``train`` and ``hub`` sections.

``load_config("configs/mnist-vae.yaml", overrides=["train.epochs=5"])`` returns a :class:`TrainingConfig`.
Unknown keys are errors that name the closest valid key; ``--set section.key=value`` values are parsed as
YAML (``train.betas=[0.5,0.999]``, ``data.limit=null``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..imageprep import BAD_IMAGE_POLICIES, CROPS
from ..models import get_model_class
from ..models.validation import closest

MIXED_PRECISION = ("no", "fp16", "bf16")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "aim", "clearml", "dvclive")


@dataclass
class DataConfig:
    """Where the training images come from (see :func:`vaegan.data.load_image_dataset`)."""

    source: str = "mnist-5k"
    image_column: str | None = None
    label_column: str | None = None
    holdout_fraction: float = 0.1
    limit: int | None = None
    #: DataLoader worker processes that decode and resize images; null: one per free CPU core (at most 8), 0 for
    #: in-memory sources (mnist-5k).
    num_workers: int | None = None
    cache_dir: str | None = None
    #: Images of another size or channel count than the model's: resized and converted (true) or refused (false).
    #: Default (null): resized, except when fine-tuning a pretrained model on other data than its own: refused.
    resize: bool | None = None
    #: Non-square images: ``center`` crops the centred square before resizing, ``none`` squashes them.
    crop: str = "center"
    #: Random horizontal flips of training images (faces, objects; not digits).
    hflip: bool = False
    #: An unreadable image: ``error`` stops naming it; ``skip`` logs it and goes on (more than 1% bad still stops).
    on_bad_image: str = "error"
    #: ``hf:`` sources only: read the data as a stream (vaegan.streaming); needs train.max_steps.
    streaming: bool = False


@dataclass
class TrainConfig:
    """How to train: optimisation, precision, logging and checkpoints."""

    output_dir: str = "outputs/run"
    seed: int = 0
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    #: Per-phase learning rates, e.g. ``{discriminator: 2.0e-4, generator: 2.0e-4}`` for a GAN.
    phase_learning_rates: dict[str, float] = field(default_factory=dict)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    log_every: int = 50
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 3
    sample_every_epochs: int = 1
    num_preview_images: int = 64
    trackers: list[str] = field(default_factory=list)
    #: Evaluation (vaegan.metrics): every ``eval_every`` steps on ``eval_num_samples`` samples (0: never), and a
    #: full one for the model card at the end when either ``eval_every`` or ``eval_metrics`` is set.
    eval_every: int = 0
    #: Metric names (null: every one that applies to the model and the data).
    eval_metrics: list[str] | None = None
    eval_num_samples: int = 2000
    #: Samples of the final evaluation, the one in the model card (vaegan.metrics.DEFAULT_NUM_SAMPLES). Fewer are
    #: quicker but make noisier numbers that do not compare with cards evaluated on 10,000.
    final_eval_num_samples: int = 10_000
    #: A metric of the periodic evaluations; the saved model is the one where it was best (lower or higher,
    #: as the metric defines), kept in ``OUTPUT/best_model``.
    select_best_by: str | None = None
    #: ``torch.compile`` each network (first steps are slow while it compiles; pays off on long GPU runs).
    compile: bool = False
    #: channels-last (NHWC) memory format for conv weights and batches: faster on GPUs with tensor cores.
    channels_last: bool = False


@dataclass
class HubConfig:
    """Optional publishing at the end of training."""

    repo_id: str | None = None
    private: bool = False
    license: str = "apache-2.0"


@dataclass
class TrainingConfig:
    """A whole training run. ``model`` holds ``class`` plus the model's constructor arguments."""

    model: dict[str, Any]
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    @property
    def model_class(self) -> type:
        return get_model_class(self.model["class"])

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "class"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as YAML (what a run actually used)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_SECTIONS = {"data": DataConfig, "train": TrainConfig, "hub": HubConfig}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(annotation)
        return isinstance(value, dict) and all(_type_ok(k, key) and _type_ok(v, item) for k, v in value.items())
    return isinstance(value, annotation)


def _build_section(name: str, cls: type, values: Any) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"section '{name}' must be a mapping of keys to values, got {values!r}.")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key '{name}.{key}'.{closest(key, hints)} Valid keys of '{name}': "
                              f"{', '.join(hints)}.")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"'{name}.{key}' must be of type {_type_name(hints[key])}, got {value!r}.")
    return cls(**values)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _validate(config: TrainingConfig) -> None:
    t = config.train
    checks = [
        (t.optimizer in OPTIMIZERS, "train.optimizer", f"one of {', '.join(OPTIMIZERS)}"),
        (t.mixed_precision in MIXED_PRECISION, "train.mixed_precision", f"one of {', '.join(MIXED_PRECISION)}"),
        (t.epochs >= 1, "train.epochs", ">= 1"),
        (t.max_steps is None or t.max_steps >= 1, "train.max_steps", ">= 1 or null"),
        (t.batch_size >= 1, "train.batch_size", ">= 1"),
        (t.learning_rate > 0, "train.learning_rate", "> 0"),
        (all(v > 0 for v in t.phase_learning_rates.values()), "train.phase_learning_rates", "values > 0"),
        (len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), "train.betas", "two numbers in [0, 1)"),
        (t.weight_decay >= 0, "train.weight_decay", ">= 0"),
        (t.max_grad_norm is None or t.max_grad_norm > 0, "train.max_grad_norm", "> 0 or null"),
        (t.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps", ">= 1"),
        (t.log_every >= 1, "train.log_every", ">= 1"),
        (t.checkpoint_every >= 1, "train.checkpoint_every", ">= 1"),
        (t.checkpoints_total_limit >= 1, "train.checkpoints_total_limit", ">= 1"),
        (t.sample_every_epochs >= 1, "train.sample_every_epochs", ">= 1"),
        (1 <= t.num_preview_images <= 1024, "train.num_preview_images", "in [1, 1024]"),
        (all(k in TRACKERS for k in t.trackers), "train.trackers", f"a list of {', '.join(TRACKERS)}"),
        (0 < config.data.holdout_fraction < 1, "data.holdout_fraction", "in (0, 1)"),
        (config.data.limit is None or config.data.limit >= 1, "data.limit", ">= 1 or null"),
        (config.data.num_workers is None or config.data.num_workers >= 0, "data.num_workers", ">= 0 or null"),
        (config.data.crop in CROPS, "data.crop", f"one of {', '.join(CROPS)}"),
        (config.data.on_bad_image in BAD_IMAGE_POLICIES, "data.on_bad_image",
         f"one of {', '.join(BAD_IMAGE_POLICIES)}"),
    ]
    if config.data.streaming:
        checks += [
            (config.data.source.strip().lower().startswith("hf:"), "data.source", "an hf: source with data.streaming"),
            (t.max_steps is not None, "train.max_steps", "set with data.streaming (a stream has no length)"),
            (config.data.limit is None, "data.limit", "null with data.streaming (use train.max_steps)"),
        ]
    for ok, key, allowed in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(config, section), name)
            raise ConfigError(f"'{key}' must be {allowed}, got {value!r}.")
    from .evaluation import validate_eval_config

    validate_eval_config(config)
    phases = config.model_class.training_phases
    for phase in t.phase_learning_rates:
        if phase not in phases:
            raise ConfigError(f"train.phase_learning_rates has unknown phase {phase!r}; "
                              f"{config.model['class']} trains the phases {', '.join(phases)}.")


def _check_model_section(model: Any) -> dict[str, Any]:
    if not isinstance(model, dict) or "class" not in model:
        raise ConfigError("section 'model' must be a mapping with a 'class' key (e.g. class: VAE) and the "
                          "model's arguments.")
    cls = get_model_class(model["class"])
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in model:
        if key != "class" and key not in allowed:
            raise ConfigError(f"unknown key 'model.{key}' for {cls.__name__}.{closest(key, allowed)} "
                              f"Valid keys: {', '.join(allowed)}.")
    return dict(model)


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to a raw config mapping."""
    path, sep, text = override.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set expects section.key=value (e.g. train.epochs=5), got {override!r}.")
    section, key = parts
    if section not in ("model", *_SECTIONS):
        raise ConfigError(f"unknown section {section!r} in --set {override!r}.{closest(section, ['model', *_SECTIONS])}"
                          " Sections: model, data, train, hub.")
    raw.setdefault(section, {})
    if raw[section] is None:
        raw[section] = {}
    value = yaml.safe_load(text)
    if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):  # YAML 1.1 reads 1e-4 as a string
        value = float(value)
    raw[section][key] = value


def config_from_dict(raw: dict[str, Any]) -> TrainingConfig:
    """Build and validate a :class:`TrainingConfig` from a plain mapping."""
    if not isinstance(raw, dict):
        raise ConfigError("a training config must be a YAML mapping with model, data, train and hub sections.")
    sections = ("model", *_SECTIONS)
    for name in raw:
        if name not in sections:
            raise ConfigError(f"unknown section {name!r}.{closest(name, sections)} Sections: {', '.join(sections)}.")
    config = TrainingConfig(
        model=_check_model_section(raw.get("model")),
        **{name: _build_section(name, cls, raw.get(name)) for name, cls in _SECTIONS.items()},
    )
    _validate(config)
    return config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainingConfig:
    """Read a YAML training config (a path, or the name of a bundled config such as ``mnist-vae``), apply
    ``section.key=value`` overrides and validate it."""
    from .bundled import resolve_config_file

    path = resolve_config_file(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw)
