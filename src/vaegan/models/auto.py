"""``AutoModel``: load any vaegan model; the class comes from ``config.json``'s ``_class_name``.

The registry itself (built-in families and ``vaegan.models`` entry points) is :mod:`vaegan.models.registry`.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from .base import GenerativeModel
from .registry import PluginError, available_models, get_model_class, register_model, reload_plugins
from .serialization import load_config, pin_revision, refuse_pickle_only

__all__ = ["AutoModel", "PluginError", "available_models", "get_model_class", "register_model", "reload_plugins"]


class AutoModel:
    """Load any vaegan model; the class comes from ``_class_name`` in the repo's ``config.json``."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> GenerativeModel:
        """Like ``VAE.from_pretrained`` (same arguments), for whichever family the repo holds."""
        refuse_pickle_only(str(pretrained_model_name_or_path), kwargs.get("subfolder"))
        # one commit for the config read here and everything the model class then reads
        kwargs = pin_revision(str(pretrained_model_name_or_path), kwargs)
        config = load_config(GenerativeModel, pretrained_model_name_or_path, kwargs)
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
