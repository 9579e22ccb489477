"""Shared fixtures: one torch thread, and the local Hub-compatible server (tests/hub_server.py)."""

import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from hub_server import hub, hub_server  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests' tiny models run fastest on one thread and do not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def vulnerable_torch_load(monkeypatch) -> list[str]:
    """``torch.load`` as torch < 2.6 behaves for a crafted file (CVE-2025-32434: ``weights_only`` bypassed): it
    unpickles whatever the file holds, and records the call. vaegan's refusal of pickles must not depend on the
    installed torch being safe."""
    calls: list[str] = []
    real_load = torch.load

    def load(f, *args, **kwargs):
        calls.append(str(f))
        kwargs.pop("weights_only", None)
        return real_load(f, *args, weights_only=False, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    return calls
