"""Shared fixtures: the local Hub-compatible server (tests/hub_server.py) and small helpers."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from hub_server import hub, hub_server  # noqa: E402, F401
