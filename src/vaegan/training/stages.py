"""The trainer's plan of training stages: which stage (and so which phases) each global step belongs to.

A family declares ordered stages (``GenerativeModel.training_stages``, e.g. an autoencoder, then a prior over its
codes); ``train.stages.<stage>`` sets each one's length and optimizer settings (see
:class:`~vaegan.training.config.StageConfig`). The stages run back to back on one global step count, so a
checkpoint's step alone says where the run is: stage ``i`` runs the steps ``[start, end)``.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ConfigError
from ..models.validation import closest
from .config import TrainingConfig


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a run: its name, the phases it trains and its global steps ``[start, end)``."""

    name: str
    phases: tuple[str, ...]
    start: int
    end: int
    #: Whether it is the model's first stage (``on_train_start`` prepares that one; later ones get ``on_stage_start``).
    first: bool


def check_stage_name(config: TrainingConfig, stage: str | None) -> None:
    """``--stage NAME`` must name a stage of the model."""
    if stage is None:
        return
    stages = config.model_class.stages()
    if stage not in stages:
        raise ConfigError(f"--stage {stage}: {config.model['class']} trains in the stages {', '.join(stages)}."
                          f"{closest(stage, stages)} Pass one of them, or drop --stage to train every stage.")


def plan_stages(config: TrainingConfig, steps_per_epoch: int | None, only: str | None = None) -> list[Stage]:
    """The stages a run trains, in order, with their global step ranges.

    A stage runs ``max_steps`` steps, or ``epochs`` passes over the data when that is fewer (``steps_per_epoch``
    is None for a stream, which has no length: ``max_steps`` alone). ``only`` (``--stage``): that stage alone.
    """
    check_stage_name(config, only)
    declared = config.model_class.stages()
    names = [only] if only is not None else list(declared)
    plan, start = [], 0
    for name in names:
        settings = config.stage_settings(name)
        by_epochs = math.inf if steps_per_epoch is None else steps_per_epoch * settings.epochs
        end = start + int(min(settings.max_steps or math.inf, by_epochs))  # a stream's max_steps is always set
        plan.append(Stage(name, declared[name], start, end, first=name == next(iter(declared))))
        start = end
    return plan


def epoch_limit(config: TrainingConfig, plan: list[Stage]) -> int:
    """Passes over the data the whole run may take: the sum of its stages' ``epochs``."""
    return sum(config.stage_settings(stage.name).epochs for stage in plan)


def stage_at(plan: list[Stage], step: int) -> Stage:
    """The stage that runs the step after ``step`` completed steps (the last stage once the run is done)."""
    for stage in plan:
        if step < stage.end:
            return stage
    return plan[-1]


def check_resumed_stage(plan: list[Stage], recorded: dict, checkpoint: str) -> None:
    """A checkpoint continues only the stages it was written for, in the stage its step belongs to."""
    names = [stage.name for stage in plan]
    stages = recorded.get("stages")
    if stages is not None and list(stages) != names:
        was = f"--stage {stages[0]}" if len(stages) == 1 else "every stage"
        now = f"--stage {names[0]}" if len(names) == 1 else "every stage"
        raise ConfigError(f"--resume {checkpoint}: the checkpoint is of a run that trains {was} ({', '.join(stages)}), "
                          f"but this run trains {now}; resume it with the same --stage option.")
    stage, step = recorded.get("stage"), int(recorded.get("step", 0))
    if stage is not None and stage_at(plan, step).name != stage:
        raise ConfigError(f"--resume {checkpoint}: the checkpoint is in the stage {stage!r} at step {step}, but the "
                          f"config's stage lengths put step {step} in the stage {stage_at(plan, step).name!r}; "
                          "resume with the train.stages (and train.max_steps / train.epochs) of the interrupted run.")
