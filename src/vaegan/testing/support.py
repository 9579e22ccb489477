"""What the contract tests share: the test class's settings, tiny models and data, and small checks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import torch

from ..models.base import CAPABILITIES, GenerativeModel
from ..models.registry import register_model, registered_class, unregister_model


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def plain(value: Any) -> Any:
    """``value`` with tuples as lists, recursively: how a config value reads back from ``config.json`` or YAML."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def public_config(model: GenerativeModel) -> dict[str, Any]:
    """The model's config without diffusers' bookkeeping keys (``_class_name``, ``_diffusers_version`` ...)."""
    return {k: plain(v) for k, v in model.config.items() if not k.startswith("_")}


def needs(capability: str) -> Callable[[Callable], Callable]:
    """Mark a contract test as one for families with ``capability``; others do not collect it."""
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}.")

    def mark(test: Callable) -> Callable:
        test.contract_capability = capability
        return test

    return mark


@contextlib.contextmanager
def registered(cls: type[GenerativeModel]) -> Iterator[None]:
    """``cls`` findable by name (``AutoModel``, the trainer, pipelines) while the block runs.

    A class registered already (a built-in family, an installed plugin) stays as it is; one registered here is
    forgotten afterwards. Another class registered under the same name is an error: names must be unique.
    """
    current = registered_class(cls.__name__)
    if current is cls:
        yield
        return
    if current is not None:
        raise AssertionError(f"{current.__module__}.{current.__qualname__} is registered as {cls.__name__!r}; a "
                             "vaegan model class needs a name of its own.")
    register_model(cls)
    try:
        yield
    finally:
        unregister_model(cls)


def check_images(images: Any, shape: tuple[int, ...], dtype: torch.dtype, what: str = "images") -> None:
    """``images`` is a detached float tensor of ``shape`` and ``dtype`` with finite values in [0, 1]."""
    assert isinstance(images, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(images).__name__}"
    assert tuple(images.shape) == tuple(shape), f"{what}: expected shape {tuple(shape)}, got {tuple(images.shape)}"
    assert images.dtype == dtype, f"{what}: expected dtype {dtype}, got {images.dtype}"
    assert torch.isfinite(images).all(), f"{what}: non-finite values"
    low, high = float(images.min()), float(images.max())
    assert 0 <= low and high <= 1, f"{what}: values must lie in [0, 1], got [{low:.4g}, {high:.4g}]"
    assert not images.requires_grad, f"{what}: returned with autograd history; generate under torch.no_grad()"


def check_per_image(values: Any, batch: int, what: str) -> None:
    """``values`` is a finite float tensor with one value per image: ``(batch,)``."""
    assert isinstance(values, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(values).__name__}"
    assert tuple(values.shape) == (batch,), f"{what}: expected shape ({batch},), one value per image, got " \
        f"{tuple(values.shape)}"
    assert values.dtype.is_floating_point, f"{what}: expected floats, got {values.dtype}"
    assert torch.isfinite(values).all(), f"{what}: non-finite values {values.tolist()}"


class ContractBase:
    """Settings of a contract test class, and the tiny models and data its tests use."""

    #: The family under test (a :class:`~vaegan.GenerativeModel` subclass).
    model_class: ClassVar[type[GenerativeModel]]
    #: Constructor arguments of a tiny, fast model of the family.
    tiny_config: ClassVar[dict[str, Any]] = {}
    #: ``(overrides of tiny_config, regex the ConfigError message must match)`` pairs of configs that must fail.
    invalid_configs: ClassVar[list[tuple[dict[str, Any], str]]] = []
    #: Overrides of the ``train`` / ``data`` sections of the short training run's config.
    train_config: ClassVar[dict[str, Any]] = {}
    data_config: ClassVar[dict[str, Any]] = {}
    #: Images per batch in the tests.
    batch_size: ClassVar[int] = 4

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Drop the capability tests of capabilities the family lacks (they are not collected at all)."""
        super().__init_subclass__(**kwargs)
        model_class = getattr(cls, "model_class", None)
        if model_class is None:  # an intermediate class without a family yet
            return
        if not (isinstance(model_class, type) and issubclass(model_class, GenerativeModel)):
            raise TypeError(f"{cls.__name__}.model_class must be a vaegan.GenerativeModel subclass, got "
                            f"{model_class!r}.")
        supported = model_class.capabilities()
        for name in dir(cls):
            needed = getattr(getattr(cls, name, None), "contract_capability", None)
            if name.startswith("test") and needed is not None and needed not in supported:
                setattr(cls, name, None)

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _registered_model_class(cls) -> Iterator[None]:
        with registered(cls.model_class):
            yield

    # ------------------------------------------------------------------ tiny models and data (overridable)
    def make_model(self, seed: int = 0, **overrides: Any) -> GenerativeModel:
        """A tiny model in eval mode, ready to sample: weights from ``seed``, then ``on_train_start`` and (when it
        cannot sample yet, e.g. an AE without a fitted prior) ``on_train_end`` with :meth:`example_batches`."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = self.model_class(**{**self.tiny_config, **overrides})
            model.on_train_start(self.example_batches(model))
            if not model.can_sample:
                model.on_train_end(self.example_batches(model))
        return model.eval()

    def example_images(self, model: GenerativeModel, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """``n`` images ``(n, C, H, W)`` in [0, 1] of the model's shape (uniform noise; override for real data)."""
        n = self.batch_size if n is None else n
        return torch.rand(n, *model.image_shape, generator=gen(seed)).to(model.device, model.dtype)

    def example_labels(self, model: GenerativeModel, n: int | None = None) -> torch.Tensor | None:
        """One label per image for a class-conditional model (0, 1, 2, ...), else None."""
        n = self.batch_size if n is None else n
        if model.num_classes is None:
            return None
        return torch.arange(n, device=model.device) % model.num_classes

    def example_batches(self, model: GenerativeModel, batches: int = 4) -> list[Any]:
        """What the trainer's hooks get: image batches, or ``(images, labels)`` pairs for a class-conditional model."""
        n = max(self.batch_size, 16)
        images = [self.example_images(model, n, seed=100 + i) for i in range(batches)]
        if model.num_classes is None:
            return images
        return [(x, self.example_labels(model, n)) for x in images]
