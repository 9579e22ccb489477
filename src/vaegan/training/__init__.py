"""Training with Accelerate from YAML configs."""

from .config import TrainingConfig, load_config
from .trainer import Trainer, TrainingDivergedError, train

__all__ = ["Trainer", "TrainingConfig", "TrainingDivergedError", "load_config", "train"]
