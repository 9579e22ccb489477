"""The other processes wait while the main process works alone (evaluates, saves the model, downloads data).

``accelerator.wait_for_everyone()`` is a barrier of the training process group, and a barrier gives up after the
group's timeout (``torch.distributed``'s default: 30 minutes for gloo, 10 for NCCL, whose watchdog then ends the
process): a waiting process would fail a run whose main process evaluates or uploads for longer, and with it the
main process's save. :class:`MainProcessWait` waits in a barrier of a CPU (gloo) group of its own, created once by
every process, with a timeout no main-process step reaches (:data:`WAIT_TIMEOUT`). A main process that crashes
closes its connections, so the waiting ones stop at once instead of waiting out the timeout.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import Any

#: How long the other processes wait for the main process's evaluation, model save and upload.
WAIT_TIMEOUT = datetime.timedelta(hours=24)


class MainProcessWait:
    """``wait()``: every process of ``accelerator`` waits here until all arrive, for up to :data:`WAIT_TIMEOUT`.

    Create it on every process (creating the group is itself a collective). Without ``torch.distributed`` (one
    process) it does nothing; without gloo (e.g. a TPU run) it is ``accelerator.wait_for_everyone()``.
    """

    def __init__(self, accelerator: Any):
        import torch.distributed as dist

        self.accelerator = accelerator
        self.group = None
        if accelerator.num_processes > 1 and dist.is_available() and dist.is_initialized() \
                and dist.is_gloo_available():
            self.group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)

    def wait(self) -> None:
        if self.accelerator.num_processes == 1:
            return
        if self.group is None:
            self.accelerator.wait_for_everyone()
            return
        import torch.distributed as dist

        dist.barrier(group=self.group)

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Like ``accelerator.main_process_first()`` (e.g. one download, then the others read the cache)."""
        main = self.accelerator.is_main_process
        if not main:
            self.wait()
        yield
        if main:
            self.wait()
