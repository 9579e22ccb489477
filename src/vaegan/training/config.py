"""Typed training configuration: a YAML file with ``model``, ``data``, ``train`` and ``hub`` sections.

``load_config("configs/mnist-vae.yaml", overrides=["train.epochs=5"])`` returns a :class:`TrainingConfig`.
Unknown keys are errors that name the closest valid key; ``--set section.key=value`` values are parsed as
YAML (``train.betas=[0.5,0.999]``, ``data.limit=null``; nested: ``train.stages.prior.max_steps=2000``).

A family trained in stages (``GenerativeModel.training_stages``, e.g. an autoencoder, then a prior over its
codes) takes each stage's length and optimizer settings from ``train.stages.<stage>`` (:class:`StageConfig`),
falling back to the ``train`` section for every key a stage leaves out::

    train:
      learning_rate: 1.0e-3
      epochs: 10
      stages:
        autoencoder: {epochs: 20}
        prior: {max_steps: 5000, learning_rate: 3.0e-4}
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

from ..data import BINARIZE_MODES
from ..errors import ConfigError
from ..files import write_file
from ..imageprep import BAD_IMAGE_POLICIES, CROPS
from ..models import get_model_class
from ..models.validation import closest
from .schedules import LR_SCHEDULERS

#: Settings about the machine and the person running a training rather than about the model and its data. A
#: fine-tuning run never takes them from a model's recorded training_config.yaml: that file was written on another
#: machine, maybe by someone else, and must not choose this machine's worker processes (data.num_workers: 100000),
#: folders (data.cache_dir, train.output_dir), loggers (train.trackers: accounts, network access), precision and
#: compilation (what that machine's accelerator supports), or where and how this user publishes (hub.repo_id,
#: hub.private). They come from the user's --set or the defaults.
MACHINE_SETTINGS = ("data.num_workers", "data.cache_dir", "train.output_dir", "train.trackers",
                    "train.mixed_precision", "train.compile", "train.channels_last", "hub.repo_id", "hub.private")
#: The folders among them: a model's saved training_config.yaml leaves them out (and names a local data folder by
#: its name only, see :meth:`TrainingConfig.shareable_dict`), so publishing a model publishes no local path.
LOCAL_PATH_SETTINGS = ("data.cache_dir", "train.output_dir")
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
    #: Binarized pixels (each 1 with its grey level as probability): ``none``, ``dynamic`` (a fresh draw each time
    #: an image is read, the usual set-up for binarized MNIST) or ``static`` (one fixed draw per image). Held-out
    #: images are then binarized once with seed 0 (the same bits for every model's likelihood).
    binarize: str = "none"
    #: ``hf:`` sources only: read the data as a stream (vaegan.streaming); needs train.max_steps.
    streaming: bool = False


@dataclass
class StageConfig:
    """``train.stages.<stage>``: the settings one training stage takes for itself; a key left out (null) takes
    the ``train`` section's value. The stage runs for ``max_steps``, or ``epochs`` passes over the data when that
    is fewer, like the whole run of a family trained in one stage."""

    epochs: int | None = None
    max_steps: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    phase_learning_rates: dict[str, float] | None = None
    betas: list[float] | None = None
    weight_decay: float | None = None
    lr_scheduler: str | None = None
    lr_warmup_steps: int | None = None


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
    #: How the learning rate changes over a stage (vaegan.training.schedules): ``constant``, ``linear`` or
    #: ``cosine`` (down to 0 at the stage's end), after a linear warm-up of ``lr_warmup_steps`` steps.
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
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
    #: Families trained in stages: per-stage length and optimizer settings, ``{stage: {max_steps: N, ...}}``
    #: (see :class:`StageConfig`); the stages run in the model's order.
    stages: dict[str, StageConfig] = field(default_factory=dict)


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

    def stage_settings(self, stage: str) -> TrainConfig:
        """The ``train`` section as the training stage ``stage`` sees it: its ``train.stages`` entry over the
        section's values."""
        own = self.train.stages.get(stage)
        if own is None:
            return self.train
        return dataclasses.replace(self.train, **{k: v for k, v in dataclasses.asdict(own).items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        stages = data["train"]["stages"]  # only the keys a stage sets: the rest comes from the train section
        data["train"]["stages"] = {name: {k: v for k, v in s.items() if v is not None} for name, s in stages.items()}
        return data

    def shareable_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` less this machine's folders: what a model's ``training_config.yaml`` records."""
        return shareable_config(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as YAML (what a run actually used)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        write_file(path, lambda staged: staged.write_text(text))


_SECTIONS = {"data": DataConfig, "train": TrainConfig, "hub": HubConfig}


def shareable_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw training config without this machine's folders (:data:`LOCAL_PATH_SETTINGS`) and with a
    local data folder named by its name only: what a saved or pushed ``training_config.yaml`` holds."""
    from ..data import shareable_source

    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    for key in LOCAL_PATH_SETTINGS:
        section, name = key.split(".")
        if isinstance(raw.get(section), dict):
            raw[section].pop(name, None)
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), str):
        data["source"] = shareable_source(data["source"])
    return raw


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
    built = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key '{name}.{key}'.{closest(key, hints)} Valid keys of '{name}': "
                              f"{', '.join(hints)}.")
        item = _section_mapping(hints[key])
        if item is not None:  # a mapping of names to sections of their own (train.stages)
            if value is None:
                value = {}
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ConfigError(f"'{name}.{key}' must be a mapping of names to settings, got {value!r}.")
            value = {k: v if isinstance(v, item) else _build_section(f"{name}.{key}.{k}", item, v)
                     for k, v in value.items()}
        elif not _type_ok(value, hints[key]):
            raise ConfigError(f"'{name}.{key}' must be of type {_type_name(hints[key])}, got {value!r}.")
        built[key] = value
    return cls(**built)


def _section_mapping(annotation: Any) -> type | None:
    """``X`` for a ``dict[str, X]`` field whose values are dataclass sections, else None."""
    if typing.get_origin(annotation) is dict:
        _, item = typing.get_args(annotation)
        if dataclasses.is_dataclass(item):
            return item
    return None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


#: Rules for the keys a stage may set (checked in ``train`` and in every ``train.stages.<stage>``).
_STAGE_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, ">= 1"),
    "max_steps": (lambda v: v >= 1, ">= 1 or null"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "phase_learning_rates": (lambda v: all(x > 0 for x in v.values()), "values > 0"),
    "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "lr_scheduler": (lambda v: v in LR_SCHEDULERS, f"one of {', '.join(LR_SCHEDULERS)}"),
    "lr_warmup_steps": (lambda v: v >= 0, ">= 0"),
}


def _check_stage_keys(section: Any, prefix: str) -> None:
    for key, (ok, allowed) in _STAGE_RULES.items():
        value = getattr(section, key)
        if value is not None and not ok(value):
            raise ConfigError(f"'{prefix}.{key}' must be {allowed}, got {value!r}.")


def _check_phase_learning_rates(rates: dict[str, float], key: str, phases: tuple[str, ...], owner: str) -> None:
    for phase in rates:
        if phase not in phases:
            raise ConfigError(f"{key} has unknown phase {phase!r};{closest(phase, phases)} {owner} trains the phases "
                              f"{', '.join(phases)}.")


def _validate_stages(config: TrainingConfig) -> None:
    """``train.stages`` names stages of the model, and each sets valid values for phases of its own."""
    cls, t = config.model_class, config.train
    stages = cls.stages()
    for name, stage in t.stages.items():
        if name not in stages:
            raise ConfigError(f"train.stages has unknown stage {name!r};{closest(name, stages)} "
                              f"{config.model['class']} trains in the stages {', '.join(stages)}.")
        _check_stage_keys(stage, f"train.stages.{name}")
        if stage.phase_learning_rates is not None:
            _check_phase_learning_rates(stage.phase_learning_rates, f"train.stages.{name}.phase_learning_rates",
                                        stages[name], f"the stage {name!r} of {config.model['class']}")
    if config.data.streaming:
        for name in stages:
            if config.stage_settings(name).max_steps is None:
                key = "train.max_steps" if len(stages) == 1 else f"train.stages.{name}.max_steps (or train.max_steps)"
                raise ConfigError(f"'{key}' must be set with data.streaming (a stream has no length), got None.")


def _validate(config: TrainingConfig) -> None:
    t = config.train
    _check_stage_keys(t, "train")
    checks = [
        (t.mixed_precision in MIXED_PRECISION, "train.mixed_precision", f"one of {', '.join(MIXED_PRECISION)}"),
        (t.batch_size >= 1, "train.batch_size", ">= 1"),
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
        (config.data.binarize in BINARIZE_MODES, "data.binarize", f"one of {', '.join(BINARIZE_MODES)}"),
        (config.data.on_bad_image in BAD_IMAGE_POLICIES, "data.on_bad_image",
         f"one of {', '.join(BAD_IMAGE_POLICIES)}"),
    ]
    if config.data.streaming:
        checks += [
            (config.data.source.strip().lower().startswith("hf:"), "data.source", "an hf: source with data.streaming"),
            (config.data.limit is None, "data.limit", "null with data.streaming (use train.max_steps)"),
            (config.data.binarize == "none", "data.binarize", "none with data.streaming (not supported for streams)"),
        ]
    for ok, key, allowed in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(config, section), name)
            raise ConfigError(f"'{key}' must be {allowed}, got {value!r}.")
    from .evaluation import validate_eval_config

    validate_eval_config(config)
    _check_phase_learning_rates(t.phase_learning_rates, "train.phase_learning_rates",
                                config.model_class.training_phases, config.model["class"])
    _validate_stages(config)


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


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading exponent floats as YAML 1.2 does: ``1e-3`` is a number, not a string.

    (PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent: ``1.0e-3``.)
    """


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)"
                                                                        r"[eE][-+]?[0-9]+$"), list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML as vaegan reads every config (:class:`ConfigLoader`: safe, ``1e-3`` a float)."""
    return yaml.load(text, Loader=ConfigLoader)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to a raw config mapping; nested keys
    (``train.stages.prior.max_steps=2000``) set a value inside a mapping."""
    path, sep, text = override.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set expects section.key=value (e.g. train.epochs=5), got {override!r}.")
    section = parts[0]
    if section not in ("model", *_SECTIONS):
        raise ConfigError(f"unknown section {section!r} in --set {override!r}.{closest(section, ['model', *_SECTIONS])}"
                          " Sections: model, data, train, hub.")
    target = raw
    for depth, name in enumerate(parts[:-1]):
        if target.get(name) is None:
            target[name] = {}
        target = target[name]
        if not isinstance(target, dict):
            raise ConfigError(f"--set {override!r}: {'.'.join(parts[:depth + 1])} is {target!r}, not a mapping.")
    target[parts[-1]] = load_yaml(text)


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
        raw = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw)
