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
