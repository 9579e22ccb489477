"""Learning-rate schedules: the factor the base learning rate is multiplied by at each step of a stage.

The names and shapes are those of diffusers' training scripts (``--lr_scheduler``, ``--lr_warmup_steps``): a linear
warm-up from 0 over the first ``warmup_steps`` steps, then ``constant`` (1), ``linear`` (down to 0 at the stage's
last step) or ``cosine`` (half a cosine down to 0). The factor is a pure function of the step within the stage, so
a resumed run continues the schedule exactly from its checkpoint's step with no scheduler state to save, and a
changed ``train.learning_rate`` still takes effect on resume.
"""

from __future__ import annotations

import math

LR_SCHEDULERS = ("constant", "linear", "cosine")


def lr_factor(schedule: str, warmup_steps: int, step: int, total_steps: int) -> float:
    """The multiplier of the base learning rate for the step after ``step`` completed steps of ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
