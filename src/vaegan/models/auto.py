"""Model registry and ``AutoModel``: pick the class named by ``config.json``'s ``_class_name``.

Third-party packages add families through the entry-point group ``vaegan.models``::

    [project.entry-points."vaegan.models"]
    MyVAE = "my_package.models:MyVAE"

Entry points name classes to import; nothing from a model repo is ever executed.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from .base import GenerativeModel
from .validation import closest

ENTRY_POINT_GROUP = "vaegan.models"
_REGISTRY: dict[str, type[GenerativeModel]] = {}
_plugins_loaded = False


def register_model(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Register a :class:`GenerativeModel` subclass under its class name (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise TypeError(f"{cls!r} is not a vaegan GenerativeModel subclass.")
    _REGISTRY[cls.__name__] = cls
    return cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        register_model(entry.load())


def available_models() -> list[str]:
    """Names of the registered model classes, plugins included."""
    _load_plugins()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[GenerativeModel]:
    """The registered class called ``name``; a clear error lists the known ones."""
    _load_plugins()
    if name not in _REGISTRY:
        raise ConfigError(
            f"Unknown vaegan model class {name!r}.{closest(str(name), _REGISTRY)} Known classes: "
            f"{', '.join(sorted(_REGISTRY))}. A class from another package must be registered through the "
            f"'{ENTRY_POINT_GROUP}' entry-point group (install that package)."
        )
    return _REGISTRY[name]


class AutoModel:
    """Load any vaegan model; the class comes from ``_class_name`` in the repo's ``config.json``."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> GenerativeModel:
        """Like ``VAE.from_pretrained`` (same arguments), for whichever family the repo holds."""
        download = {k: kwargs[k] for k in ("cache_dir", "force_download", "proxies", "local_files_only",
                                           "token", "revision", "subfolder") if k in kwargs}
        config = GenerativeModel.load_config(pretrained_model_name_or_path, **download)
        name = config.get("_class_name")
        if not name:
            raise ConfigError(f"{pretrained_model_name_or_path}: config.json has no '_class_name'; load it "
                              "with the model class directly, e.g. VAE.from_pretrained(...).")
        return get_model_class(name).from_pretrained(pretrained_model_name_or_path, **kwargs)

    @staticmethod
    def from_config(config: dict[str, Any], **kwargs: Any) -> GenerativeModel:
        """Build an untrained model from a config dict holding ``_class_name``."""
        cls = get_model_class(config.get("_class_name", ""))
        cls.check_config_dict(config)
        return cls.from_config(config, **kwargs)
