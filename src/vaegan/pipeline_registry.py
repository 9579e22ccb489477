"""The pipeline registry: ``model_index.json`` class names -> vaegan pipeline classes, plugins included.

A leaf module (it imports no pipeline code and not diffusers' pipelines), so ``import vaegan`` can tell diffusers
which names are vaegan's before any pipeline is imported. vaegan's own pipelines register themselves when
:mod:`vaegan.pipelines` is imported; a plugin package adds a pipeline (a :class:`vaegan.GenerativePipeline`
subclass for its model family) with :func:`register_pipeline`, or through the entry-point group
``vaegan.pipelines``::

    [project.entry-points."vaegan.pipelines"]
    MyPipeline = "my_package.pipelines:MyPipeline"

so that ``GenerativePipeline.from_pretrained`` and ``DiffusionPipeline.from_pretrained`` (after ``import vaegan``)
load a saved folder whose ``model_index.json`` names it, in a process that never imported the plugin. As with
models, entry points name classes to import; nothing from a repo is ever executed, and a plugin that fails to
import is reported (a warning, then :class:`~vaegan.PluginError` when its pipeline is looked up).
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from .errors import ConfigError
from .models.registry import PluginError, record_plugin_error
from .models.validation import closest

ENTRY_POINT_GROUP = "vaegan.pipelines"
#: vaegan's own pipelines, defined in :mod:`vaegan.pipelines`; no other class may take their names.
BUILT_IN_PIPELINES = ("AEPipeline", "GANPipeline", "GenerativePipeline", "VAEPipeline", "VQVAEPipeline")
_BUILT_IN_MODULE = "vaegan.pipelines"
_REGISTRY: dict[str, type] = {}
_plugins_loaded = False
_entries: list[EntryPoint] | None = None  # the group's entry points, read once (not loaded)
_PLUGIN_ERRORS: dict[str, PluginError] = {}


def is_pipeline_class(cls: object) -> bool:
    """Whether ``cls`` is a :class:`vaegan.GenerativePipeline` subclass (without importing it)."""
    return isinstance(cls, type) and getattr(cls, "is_vaegan_pipeline", False) is True


def register_pipeline(cls: type) -> type:
    """Register a :class:`~vaegan.GenerativePipeline` subclass under its class name (usable as a decorator).

    Saved folders whose ``model_index.json`` names the class then load with ``GenerativePipeline.from_pretrained``
    and ``DiffusionPipeline.from_pretrained``. A name vaegan's own pipelines use cannot be taken.
    """
    if not is_pipeline_class(cls):
        raise TypeError(f"{cls!r} is not a vaegan GenerativePipeline subclass.")
    name = cls.__name__
    if name in BUILT_IN_PIPELINES and cls.__module__ != _BUILT_IN_MODULE:
        raise ValueError(f"the pipeline name {name!r} is vaegan's own ({_BUILT_IN_MODULE}.{name}); give your pipeline "
                         "class another name.")
    _REGISTRY[name] = cls
    _expose_to_diffusers(name, cls)
    return cls


def _expose_to_diffusers(name: str, cls: type) -> None:
    """``diffusers.<name>`` is ``cls`` (``DiffusionPipeline.from_pretrained`` looks pipeline classes up there)."""
    import diffusers

    if name not in getattr(diffusers, "_class_to_module", {}):  # diffusers' own names stay diffusers'
        setattr(diffusers, name, cls)


def _entry_points() -> list[EntryPoint]:
    global _entries
    if _entries is None:
        _entries = list(entry_points(group=ENTRY_POINT_GROUP))
    return _entries


def _load_plugin(entry: EntryPoint) -> None:
    try:
        cls = entry.load()
        if not is_pipeline_class(cls):
            raise TypeError(f"it names {cls!r}, which is not a vaegan GenerativePipeline subclass")
        register_pipeline(cls)
    except Exception as err:  # noqa: BLE001 - any failure of third-party code is reported, never fatal here
        record_plugin_error(entry, "pipeline plugin", err, _PLUGIN_ERRORS)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in _entry_points():
        _load_plugin(entry)


def reload_pipeline_plugins() -> list[str]:
    """Discover the ``vaegan.pipelines`` entry points again (after installing a plugin in a running process)."""
    global _plugins_loaded, _entries
    _PLUGIN_ERRORS.clear()
    _plugins_loaded, _entries = False, None
    importlib.invalidate_caches()
    return available_pipelines()


def is_pipeline_name(name: str) -> bool:
    """Whether ``name`` is a registered pipeline or one an installed plugin declares (nothing is imported)."""
    if name in _REGISTRY:
        return True
    return any(name in (entry.name, entry.value.rpartition(":")[2].strip()) for entry in _entry_points())


def available_pipelines() -> list[str]:
    """Names of the registered pipeline classes, plugins included."""
    _load_plugins()
    return sorted(_REGISTRY)


def get_pipeline_class(name: object) -> type:
    """The pipeline class registered as ``name`` (plugins are discovered on first need); clear errors otherwise."""
    if isinstance(name, str) and name not in _REGISTRY:
        _load_plugins()
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    if isinstance(name, str) and name in _PLUGIN_ERRORS:
        raise _PLUGIN_ERRORS[name]
    hint = closest(name, _REGISTRY) if isinstance(name, str) else ""
    raise ConfigError(f"{name!r} is not a vaegan pipeline.{hint} vaegan pipelines are "
                      f"{', '.join(sorted(_REGISTRY))}; a plugin adds one with vaegan.register_pipeline or the "
                      f"'{ENTRY_POINT_GROUP}' entry-point group.")
