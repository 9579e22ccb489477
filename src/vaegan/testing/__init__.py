"""Contract tests for vaegan model families: run them against your own :class:`~vaegan.GenerativeModel` subclass.

A family passes when it works everywhere vaegan uses models: construction and config errors, strict
save / load (``from_pretrained`` and ``AutoModel``), sampling (shape, range, dtype, determinism with a
``torch.Generator``, class labels), every training phase's loss, a short run of vaegan's trainer, the diffusers
pipeline and the model card (whose usage snippet is run). Tests of the optional capabilities (latent space,
encoder, reconstruction, exact likelihood, likelihood bounds, completion) are collected only for families whose
``capabilities()`` include them. vaegan's own families and its test plugin run the same suite.

The suite is written for pytest (``pip install pytest``; ``import vaegan`` never imports this module). The training
test reads ``mnist-5k`` (``pip install "vaegan[train]"``). In your package's tests::

    # tests/test_contract.py
    from vaegan.testing import GenerativeModelContract

    from my_package import PixelBernoulli


    class TestPixelBernoulli(GenerativeModelContract):
        model_class = PixelBernoulli
        tiny_config = {"image_size": 8}                          # a tiny, fast model
        invalid_configs = [({"image_size": 1000}, "image_size")]  # (overrides, regex of the ConfigError)

Then ``pytest tests/test_contract.py``. A class not registered yet (through the ``vaegan.models`` entry point or
:func:`vaegan.register_model`) is registered while its tests run. Override ``make_model`` / ``example_images``
for models that need more than their constructor, or real data, and set ``train_config`` / ``data_config`` to
change the short training run (e.g. ``{"batch_size": 8}``).
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401 - the suite's fixtures and assertions need it
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("vaegan.testing is a pytest suite: install pytest (pip install pytest).") from err

from .capabilities import CapabilityContract
from .core import CoreContract
from .support import check_images, check_per_image, gen, registered

__all__ = ["GenerativeModelContract", "check_images", "check_per_image", "gen", "registered"]


class GenerativeModelContract(CoreContract, CapabilityContract):
    """Mix into a ``Test...`` class and set ``model_class`` and ``tiny_config`` (see the module docstring).

    Settings: ``model_class``, ``tiny_config`` (constructor arguments of a tiny model), ``invalid_configs``
    (``(overrides, message regex)`` pairs that must raise :class:`~vaegan.ConfigError`), ``train_config`` /
    ``data_config`` (overrides of the training run's ``train`` / ``data`` sections) and ``batch_size``.
    """
