"""A JSON-lines metrics log as an Accelerate tracker, so it sits beside TensorBoard, wandb or trackio."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker, on_main_process


class JSONLinesTracker(GeneralTracker):
    """Appends one JSON object per ``log`` call (``{"step": ..., "time": ..., **values}``) to ``path``."""

    name = "jsonl"
    requires_logging_directory = False

    # No @on_main_process here: it would create Accelerate's process state before the Accelerator does
    # (and without ACCELERATE_USE_CPU, turning a 2-process CPU launch into two 1-process runs).
    def __init__(self, path: str | Path):
        super().__init__()
        self.path = Path(path)

    @property
    def tracker(self) -> Path:
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
