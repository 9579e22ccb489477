"""The page: the tabs of :data:`TABS` in one ``gr.Blocks``, its queue, and the entry point of ``vaegan demo`` and
the Space."""

from __future__ import annotations

import argparse
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr
import torch
from PIL import Image

from ..models import GenerativeModel
from ..project import project_link
from .complete import CompleteTab
from .context import DemoContext
from .explore import ExploreTab
from .heldout import HeldOut
from .interpolate import InterpolateTab
from .limits import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_QUEUE,
    MAX_COMPLETIONS,
    MAX_IMAGES,
    MAX_STEPS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    MAX_UPLOAD_SIDE,
)
from .options import HELDOUT_SOURCE, model_specs, parse_args, specs_of
from .reconstruct import ReconstructTab
from .registry import DemoModel, Registry, load_models
from .sample import SampleTab
from .tabs import DemoTab

CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain !important; }
"""
TITLE = "vaegan: AE, VAE and GAN explorer"
#: The tabs of the page, in order; each says which models it serves (:class:`~vaegan.demo.tabs.DemoTab`).
TABS: tuple[type[DemoTab], ...] = (SampleTab, InterpolateTab, ExploreTab, ReconstructTab, CompleteTab)
ANALYTICS_EVERY_ENV, ANALYTICS_EVERY = "GRADIO_ANALYTICS_CACHE_FREQUENCY", 1000


class DemoApp:
    """Everything the endpoints compute, one object per tab, independent of the page (tests call it directly).

    ``tabs`` holds the tab objects by ``tab_id``; each is also an attribute (``app.sample``, ``app.explore`` ...).
    """

    def __init__(self, models: Mapping[str, GenerativeModel | DemoModel], heldout: Any = HELDOUT_SOURCE, *,
                 concurrency_limit: int = DEFAULT_CONCURRENCY, tabs: Sequence[type[DemoTab]] = TABS):
        self.ctx = DemoContext(Registry(models), heldout if isinstance(heldout, HeldOut) else HeldOut(heldout),
                               concurrency_limit=concurrency_limit)
        self.registry = self.ctx.registry
        self.tabs: dict[str, DemoTab] = {tab.tab_id: tab(self.ctx) for tab in tabs}

    def __getattr__(self, name: str) -> Any:
        tabs = self.__dict__.get("tabs", {})
        if name in tabs:
            return tabs[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def prepare(self) -> None:
        """Ready the models for serving (the registry has already made them channels-last, in evaluation mode):
        one small sample of each model that can sample, so the first visitor does not pay for lazy
        initialisation."""
        for entry in self.registry.entries.values():
            net = entry.model
            if net.can_sample:
                with torch.inference_mode():
                    net.sample(1, generator=torch.Generator(device=net.device).manual_seed(0),
                               class_labels=None if net.num_classes is None else 0)


def build_demo(models: Mapping[str, GenerativeModel | DemoModel], heldout: Any = HELDOUT_SOURCE, *,
               concurrency_limit: int = DEFAULT_CONCURRENCY, max_queue: int = DEFAULT_MAX_QUEUE,
               title: str = TITLE) -> gr.Blocks:
    """The demo for ``models`` (``{name: model}``, or :class:`~vaegan.demo.registry.DemoModel` with card results).

    ``heldout`` is a ``vaegan.data`` source string (default ``"mnist-5k"``, test split), a dataset of
    ``(image [0,1] CHW, label)`` items, or None (no held-out digits). Model calls share one pool of
    ``concurrency_limit`` workers; at most ``max_queue`` requests wait. Public API endpoints: ``/sample``,
    ``/interpolate``, ``/latent_map``, ``/decode_point``, ``/reconstruct``, ``/complete`` (a tab that none of the
    models can serve shows why instead, and has no endpoint). Any mix of families works: each tab offers the models
    that can serve it and says why for the others. ``demo.vaegan_app`` is the
    :class:`DemoApp`. The models are put in evaluation mode and channels-last memory format in place.
    """
    app = DemoApp(models, heldout, concurrency_limit=concurrency_limit)
    app.prepare()
    with gr.Blocks(title=title, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"# {title}\nGenerative models made with {project_link()}: "
                    "sample them, walk between two points of their latent space, explore a 2-D latent plane, "
                    "reconstruct your own digits, and complete a digit's missing part.")
        with gr.Tabs():
            for tab in app.tabs.values():
                with gr.Tab(tab.title, id=tab.tab_id):
                    tab.page(demo)
        gr.Markdown(f"Limits per request: {MAX_IMAGES} images, {MAX_STEPS} interpolation steps, {MAX_COMPLETIONS} "
                    f"completions, uploads of {MAX_UPLOAD_BYTES // 2**20} MB and {MAX_UPLOAD_SIDE} pixels a side; "
                    f"{concurrency_limit} model call(s) run at once and up to {max_queue} wait in the queue.")
    # After every event gradio rebuilds a pandas summary of up to 10,000 past events for its monitoring page:
    # ~20 ms of CPU per request on a Space that has served 10,000 requests, more than the model itself. Once every
    # 1,000 events is plenty (read when the queue is made; a value set by the user wins).
    os.environ.setdefault(ANALYTICS_EVERY_ENV, str(ANALYTICS_EVERY))
    # Queue-position estimates every 2 s rather than a broadcast to every waiting client at each job start.
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency_limit, status_update_rate=2)
    demo.vaegan_app = app  # for tests and scripts
    limit_uploads(demo)
    return demo


def limit_uploads(demo: gr.Blocks, max_file_size: int = MAX_UPLOAD_BYTES) -> None:
    """Make ``demo.launch`` refuse uploads over ``max_file_size`` bytes unless told otherwise.

    gradio checks the size while it receives a file and deletes it, unstored, when it is over (HTTP 413). The
    default belongs to this demo, not to whoever launches it (``vaegan demo``, the Space, a test, a user's script),
    so it is set on this instance's ``launch`` (a ``gr.Blocks`` subclass would make gradio rewrite a .pyi stub).
    """
    plain = demo.launch

    @functools.wraps(plain)
    def launch(*args: Any, max_file_size: str | int | None = max_file_size, **kwargs: Any) -> Any:
        return plain(*args, max_file_size=max_file_size, **kwargs)

    demo.launch = launch


def configure_torch(threads: int | None) -> int:
    """Cap torch's CPU threads (``threads``, else ``$VAEGAN_TORCH_THREADS``, else 1).

    One thread per model call: these models are small, so intra-op threads mostly add synchronisation, and the
    ``concurrency`` workers already use the cores.
    """
    threads = threads or int(os.environ.get("VAEGAN_TORCH_THREADS", 0)) or 1
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass
    return threads


def run(args: argparse.Namespace, readme: str | os.PathLike | None = None) -> None:
    """Load the models named by parsed ``args`` (see :mod:`vaegan.demo.options`) and serve the demo."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # This process only serves the demo: PIL refuses to open (warns above, refuses above twice) any picture larger
    # than an upload may be, whichever code path opens it; the upload components refuse them with a message first.
    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
    configure_torch(args.threads)
    models = load_models(model_specs(specs_of(args), readme=readme))
    heldout = None if str(args.heldout).lower() in ("", "none") else args.heldout
    demo = build_demo(models, heldout=heldout, concurrency_limit=args.concurrency, max_queue=args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, css=CSS, theme=gr.themes.Soft(), show_error=False,
                footer_links=["api"])


def main(argv: Sequence[str] | None = None, readme: str | os.PathLike | None = None) -> None:
    """``spaces/demo/app.py``: parse ``argv`` and serve; ``readme`` is the Space README holding the model list."""
    run(parse_args(argv), readme=readme)
