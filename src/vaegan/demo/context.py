"""What every tab shares: the models, the held-out digits, the result files and the queue settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .heldout import HeldOut
from .limits import DEFAULT_CONCURRENCY
from .outputs import ResultFiles
from .registry import Registry


@dataclass
class DemoContext:
    registry: Registry
    heldout: HeldOut
    files: ResultFiles = field(default_factory=ResultFiles)
    concurrency_limit: int = DEFAULT_CONCURRENCY

    @property
    def compute(self) -> dict[str, Any]:
        """Event options of a model call: all endpoints share one pool of ``concurrency_limit`` workers."""
        return {"concurrency_limit": self.concurrency_limit, "concurrency_id": "model"}

    # Events that only change the page (visibility, slider ranges, a table): no queue, no API endpoint.
    ui_only: dict[str, Any] = field(default_factory=lambda: {"queue": False, "api_visibility": "private",
                                                             "show_progress": "hidden"})
