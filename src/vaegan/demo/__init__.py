"""The vaegan demo: a Gradio app to sample, interpolate, explore, reconstruct and complete with vaegan models of
any family.

``vaegan demo MODEL...`` runs it locally; ``spaces/demo/app.py`` runs it on a Hugging Face Space. Needs the
``[space]`` extra (gradio, matplotlib). Modules: :mod:`~vaegan.demo.registry` (models, their cards' evaluation
results), :mod:`~vaegan.demo.inputs` (user input checks and image conversion), :mod:`~vaegan.demo.outputs`
(result pictures, inline or as files; :func:`open_picture` reads one from the API), :mod:`~vaegan.demo.tabs`
(what a tab needs of a model, and why a model cannot serve it), one module per tab (:mod:`~vaegan.demo.sample`,
:mod:`~vaegan.demo.interpolate`, :mod:`~vaegan.demo.explore`, :mod:`~vaegan.demo.reconstruct`,
:mod:`~vaegan.demo.complete`) and :mod:`~vaegan.demo.layout` (the page, whose ``TABS`` lists the tabs).

Importing this package does not import gradio; the names below load on first use.
"""

from __future__ import annotations

from typing import Any

_MODULE_OF = {"DemoApp": "layout", "build_demo": "layout", "main": "layout", "open_picture": "outputs"}
__all__ = list(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        import importlib

        return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
