"""Training progress that suits where it goes: a live tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns, which a CI log or ``make ... > log`` records as thousands of updates
on one line. When the bar's stream (stderr) is not a terminal, :class:`Progress` draws no bar and prints one line
per logged step instead (every ``train.log_every`` steps).
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO


def _format(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.4g}"


class Progress:
    """``update()`` after every optimisation step, ``log(metrics)`` at every logged step, ``close()`` at the end."""

    def __init__(self, total: float, initial: int, *, enabled: bool = True, bar: bool | None = None,
                 stream: IO[str] | None = None):
        self.total = None if math.isinf(total) else int(total)
        self.step = initial
        self.enabled = enabled
        self.stream = stream  # None: stderr for the bar, stdout for lines
        self.bar_mode = sys.stderr.isatty() if bar is None else bar
        self._started, self._initial = time.time(), initial
        self._bar = None
        if enabled and self.bar_mode:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=initial, unit="step", dynamic_ncols=True, file=stream)

    def update(self, n: int = 1) -> None:
        self.step += n
        if self._bar is not None:
            self._bar.update(n)

    def log(self, metrics: dict[str, float]) -> None:
        """Show the metrics of a logged step: in the bar's postfix, or as one printed line."""
        if not self.enabled:
            return
        shown = {k: v for k, v in metrics.items() if k != "epoch"}
        if self._bar is not None:
            self._bar.set_postfix({k: _format(v) for k, v in shown.items()}, refresh=False)
            return
        elapsed = time.time() - self._started
        done = self.step - self._initial
        total = f"/{self.total}" if self.total is not None else ""
        epoch = f" epoch {metrics['epoch']:.2f}" if "epoch" in metrics else ""
        values = " ".join(f"{k}={_format(v)}" for k, v in shown.items())
        rate = f", {done / elapsed:.3g} steps/s" if elapsed > 0 and done else ""
        print(f"step {self.step}{total}{epoch} {values} ({elapsed:.0f} s{rate})", file=self.stream or sys.stdout,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
