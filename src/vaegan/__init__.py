"""vaegan: autoencoders, VAEs and GANs as first-class citizens of the Hugging Face ecosystem."""

import importlib.util
import sys
from typing import Any

from .errors import CheckpointError, ConfigError, VaeganError, WeightsMismatchError
from .models import AE, GAN, VAE, VQVAE, AutoModel, GenerativeModel, PixelCNN, available_models, register_model
from .models.registry import PluginError, reload_plugins
from .pipeline_registry import BUILT_IN_PIPELINES as _PIPELINES
from .pipeline_registry import register_pipeline
from .version import __version__  # noqa: F401 - vaegan.__version__

# diffusers pipelines (``vaegan.VAEPipeline`` ...; _PIPELINES) load on first use: importing diffusers'
# DiffusionPipeline pulls in transformers when it is installed, a cost ``import vaegan`` should not pay.

__all__ = ["AE", "GAN", "VAE", "AEPipeline", "AutoModel", "CheckpointError", "ConfigError", "GANPipeline",
           "GenerativeModel", "GenerativePipeline", "PixelCNN", "PluginError", "VQVAE", "VAEPipeline", "VQVAEPipeline",
           "VaeganError", "WeightsMismatchError", "available_models", "register_model", "register_pipeline",
           "reload_plugins"]


def __getattr__(name: str) -> Any:
    if name in _PIPELINES:
        from . import pipelines

        return getattr(pipelines, name)
    # A registered model class, plugins included: model_index.json's ["vaegan", ...]. Not a submodule's name:
    # `from . import pipelines` asks for the attribute before importing it, and a plugin discovery started there
    # would import plugin modules that are halfway through their own import (`from vaegan import ...`).
    if not name.startswith("_") and "." not in name and importlib.util.find_spec(f"{__name__}.{name}") is None:
        from .models.registry import get_model_class

        try:
            return get_model_class(name)
        except ConfigError:
            pass
    raise AttributeError(f"module 'vaegan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PIPELINES))


class _LazyDiffusersObjects(dict):
    """``diffusers._objects`` that also resolves vaegan's pipeline names, importing them only when asked for.

    ``DiffusionPipeline.from_pretrained`` looks ``model_index.json``'s ``_class_name`` up in the ``diffusers``
    namespace; this lets it find ``VAEPipeline`` & co. after a plain ``import vaegan``, and the pipelines of plugins
    (:mod:`vaegan.pipeline_registry`).
    """

    def __init__(self, objects: dict, names: tuple[str, ...]):
        super().__init__(objects)
        self.names = names

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name) or name in self.names:
            return True
        if not isinstance(name, str) or name.startswith("_"):
            return False
        import diffusers

        from .pipeline_registry import is_pipeline_name

        if name in getattr(diffusers, "_class_to_module", {}) or name in getattr(diffusers, "_modules", ()):
            return False  # diffusers' own names stay diffusers'
        return is_pipeline_name(name)  # a plugin's pipeline, maybe from an entry point not imported yet

    def __missing__(self, name: str) -> Any:
        if name in self.names:
            from . import pipelines

            return getattr(pipelines, name)
        from .pipeline_registry import get_pipeline_class, is_pipeline_name

        if isinstance(name, str) and is_pipeline_name(name):
            return get_pipeline_class(name)
        raise KeyError(name)


def _expose_to_diffusers() -> None:
    """Let ``DiffusionPipeline.from_pretrained`` load vaegan pipelines (folders and Hub repos) after ``import vaegan``.

    * ``model_index.json`` names each model ``["vaegan", "<Class>"]``; diffusers accepts a library name only if it is
      one of its own or an attribute of ``diffusers.pipelines`` (then it takes ``getattr(library, "<Class>")`` and
      calls its ``from_pretrained``: vaegan's strict, safetensors-only loader). So ``diffusers.pipelines.vaegan``
      is this module (importing the ``diffusers.pipelines`` package itself costs about a millisecond).
    * the pipeline class named by ``_class_name`` is looked up in the ``diffusers`` namespace: resolved lazily.
    """
    import diffusers
    import diffusers.pipelines

    if not hasattr(diffusers.pipelines, __name__):
        setattr(diffusers.pipelines, __name__, sys.modules[__name__])
    objects = getattr(diffusers, "_objects", None)
    # Names diffusers defines itself stay diffusers'. Without its lazy module (``_objects``), vaegan.pipelines
    # still registers its classes with diffusers when it is imported.
    names = tuple(n for n in _PIPELINES if n not in getattr(diffusers, "_class_to_module", {}))
    if type(objects) is dict:
        diffusers._objects = _LazyDiffusersObjects(objects, names)


_expose_to_diffusers()
