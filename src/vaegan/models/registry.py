"""The model registry: class names -> model classes, built-in families and ``vaegan.models`` entry points.

A leaf module: it imports nothing of ``vaegan.models``, so every other module (the base class's config checks,
``AutoModel``, pipelines, cards) can look classes up without an import circle. A class is accepted when it
derives from :class:`vaegan.GenerativeModel`, recognised by the ``is_vaegan_model`` marker that class sets.

Third-party packages add families through the entry-point group ``vaegan.models``::

    [project.entry-points."vaegan.models"]
    MyVAE = "my_package.models:MyVAE"

Entry points name classes to import; nothing from a model repo is ever executed. Discovery runs once, on the
first lookup of a name that is not registered yet; :func:`reload_plugins` runs it again (after installing or
removing a plugin package). A plugin that fails to import never breaks ``import vaegan``: it is reported with a
warning, and looking its class up raises :class:`PluginError` naming the entry point.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import EntryPoint, entry_points

from ..errors import ConfigError, VaeganError
from .validation import closest

ENTRY_POINT_GROUP = "vaegan.models"
_REGISTRY: dict[str, type] = {}
_plugins_loaded = False
_PLUGIN_CLASSES: dict[str, type] = {}  # class name -> class registered from an entry point
_PLUGIN_ERRORS: dict[str, PluginError] = {}  # entry-point name and class name -> why it failed to load


class PluginError(VaeganError, ImportError):
    """A model class from the ``vaegan.models`` entry-point group could not be imported."""


def is_model_class(cls: object) -> bool:
    """Whether ``cls`` is a :class:`vaegan.GenerativeModel` subclass (without importing it)."""
    return isinstance(cls, type) and getattr(cls, "is_vaegan_model", False) is True


def register_model(cls: type) -> type:
    """Register a :class:`~vaegan.GenerativeModel` subclass under its class name (usable as a decorator)."""
    if not is_model_class(cls):
        raise TypeError(f"{cls!r} is not a vaegan GenerativeModel subclass.")
    _REGISTRY[cls.__name__] = cls
    return cls


def unregister_model(cls: type) -> None:
    """Forget ``cls`` if it is the class registered under its name (e.g. a test's class, after the test)."""
    if _REGISTRY.get(cls.__name__) is cls:
        del _REGISTRY[cls.__name__]
        _PLUGIN_CLASSES.pop(cls.__name__, None)


def registered_class(name: str) -> type | None:
    """The class registered as ``name`` so far (no plugin discovery), or None."""
    return _REGISTRY.get(name)


def describe_entry_point(entry: EntryPoint) -> str:
    """``entry point 'NAME = module:Class' of package P 1.0 (group 'G')`` for messages."""
    dist = getattr(entry, "dist", None)
    package = f" of package {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{entry.name} = {entry.value}'{package} (group '{entry.group}')"


def record_plugin_error(entry: EntryPoint, what: str, err: Exception, errors: dict[str, PluginError]) -> None:
    """Warn that the plugin ``entry`` (a vaegan ``what``) failed to load, and keep the error under its entry-point
    and class names in ``errors`` (raised when the class is looked up)."""
    error = PluginError(f"The vaegan {what} {describe_entry_point(entry)} could not be loaded: {type(err).__name__}: "
                        f"{err}. Fix or uninstall that package.")
    error.__cause__ = err
    for key in (entry.name, entry.value.rpartition(":")[2].strip()):
        errors[key] = error
    warnings.warn(str(error), RuntimeWarning, stacklevel=5)


def _load_plugin(entry: EntryPoint) -> None:
    try:
        cls = entry.load()
        if not is_model_class(cls):
            raise TypeError(f"it names {cls!r}, which is not a vaegan GenerativeModel subclass")
    except Exception as err:  # noqa: BLE001 - any failure of third-party code is reported, never fatal here
        record_plugin_error(entry, "plugin", err, _PLUGIN_ERRORS)
        return
    current = _REGISTRY.get(cls.__name__)
    if current is not None and current is not cls:  # a plugin never replaces a class registered before it
        warnings.warn(f"Ignoring the vaegan plugin {describe_entry_point(entry)}: the name {cls.__name__!r} is "
                      f"already taken by {current.__module__}.{current.__qualname__}.", RuntimeWarning, stacklevel=4)
        return
    _REGISTRY[cls.__name__] = cls
    _PLUGIN_CLASSES[cls.__name__] = cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _load_plugin(entry)


def reload_plugins() -> list[str]:
    """Discover the ``vaegan.models`` entry points again; returns :func:`available_models`.

    Discovery is cached for the process; call this after installing or removing a plugin package (or changing
    ``sys.path``) in a running process. Classes registered from entry points that are gone are forgotten.
    """
    global _plugins_loaded
    for name, cls in _PLUGIN_CLASSES.items():
        if _REGISTRY.get(name) is cls:
            del _REGISTRY[name]
    _PLUGIN_CLASSES.clear()
    _PLUGIN_ERRORS.clear()
    _plugins_loaded = False
    importlib.invalidate_caches()
    return available_models()


def available_models() -> list[str]:
    """Names of the registered model classes, plugins included (plugins that fail to import are left out)."""
    _load_plugins()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type:
    """The registered class called ``name``; a clear error lists the known ones.

    Raises :class:`PluginError` when ``name`` belongs to a plugin that failed to import, else
    :class:`~vaegan.errors.ConfigError` for an unknown name.
    """
    if not isinstance(name, str):
        raise ConfigError(f"_class_name must be a class name (a string), got {name!r}.")
    if name not in _REGISTRY:
        _load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _PLUGIN_ERRORS:
        raise _PLUGIN_ERRORS[name]
    broken = sorted({str(error) for error in _PLUGIN_ERRORS.values()})
    raise ConfigError(
        f"Unknown vaegan model class {name!r}.{closest(str(name), _REGISTRY)} Known classes: "
        f"{', '.join(sorted(_REGISTRY))}. A class from another package must be registered through the "
        f"'{ENTRY_POINT_GROUP}' entry-point group (install that package)."
        + (f" Plugins that failed to load: {' '.join(broken)}" if broken else "")
    )
