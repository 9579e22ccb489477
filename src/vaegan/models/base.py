"""``GenerativeModel``: the protocol every vaegan family implements, and what it shares.

A family implements two methods; everything else is an optional **capability** that consumers (trainer,
figures, cards, metrics, pipelines, CLI, demo) discover with :meth:`GenerativeModel.supports` without calling
it, never by the family's name:

==================  =========================================================  ==============================
capability          what the family implements                                 what it enables
==================  =========================================================  ==============================
(required)          ``compute_loss(phase, images, step, class_labels=None)``   training
(required)          ``sample(num_samples, generator, temperature,              generation everywhere
                    class_labels=None)`` (or a latent space, below)
``latent_space``    ``decode_latents(latents, class_labels=None)`` and         interpolation, latent maps,
                    ``prior_latents(n, generator, temperature)``               ``generate_all_classes``
``encoder``         ``encode_images(images, class_labels=None)``               reconstruction, image paths
``reconstruction``  ``reconstruct(images, class_labels=None)`` (free with      ``recon_mse``, Reconstruct tab
                    an encoder and a latent space)
``log_likelihood``  ``log_likelihood(images, class_labels=None) -> (B,)``      ``nll`` / ``bpd`` (exact)
                    exact log-density in nats per image
``likelihood_bounds``  ``likelihood_bounds(images, k, generator,               ``elbo_nll`` / ``iwae_nll``
                    class_labels=None)`` -> per-image lower bounds
``completion``      ``complete(images, known_mask, generator,                  "complete the digit"
                    num_completions=1, class_labels=None)``
``codes``           ``encode_codes(images, class_labels=None)`` -> grids of    ``codebook_perplexity`` /
                    codebook indices, and ``codebook_size`` (quantized         ``dead_codes``, code pictures
                    families, e.g. the VQ-VAE)
==================  =========================================================  ==============================

Training is driven by ``training_phases`` (one optimizer each), ``phase_is_active``, ``phase_parameters``, the
hooks ``on_train_start`` / ``after_optimizer_step`` / ``on_train_end`` and, for families trained in several
steps (an autoencoder, then a prior over its codes), ordered ``training_stages``.

``temperature=None`` (the default of ``sample`` and ``prior_latents``) means the model's
:attr:`~GenerativeModel.default_temperature`: 1, or the ``sample_temperature`` a family keeps in its config (a GAN
trained to sample from a truncated latent); consumers resolve it with ``resolve_temperature`` before they call a
family.

Plugins written against the first protocol (``compute_loss(phase, images, step)``, ``decode_latents(latents)``,
``encode_images(images)`` without ``class_labels``) keep working: such methods are adapted once, when the
subclass is created, to take ``class_labels=None`` (and to refuse labels).

Saving and loading (strict, safetensors only, atomic) live in :mod:`vaegan.models.serialization`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from ..cards import TRAINING_CONFIG_NAME, write_model_card
from ..errors import CheckpointError, ConfigError, WeightsMismatchError
from ..files import apply_umask, make_staging_dir
from ..interpolation import interpolate_latents
from . import conditioning, registry
from .conditioning import ClassLabels
from .serialization import (
    SAVE_SPECIFIC_PATTERNS,
    all_subclasses,
    check_loaded_weights,
    describe_keys,
    explain_load_error,
    load_config,
    pin_revision,
    publish_folder,
    quiet_partial_load_warnings,
    realign_tensors,
    refuse_pickle_only,
    refuse_unsafe_shards,
)
from .validation import MAX_PARAMETERS, closest

#: The optional capabilities of a family, and the method that provides each (see the module docstring).
CAPABILITIES: Mapping[str, str] = {
    "latent_space": "decode_latents",
    "encoder": "encode_images",
    "reconstruction": "reconstruct",
    "log_likelihood": "log_likelihood",
    "likelihood_bounds": "likelihood_bounds",
    "completion": "complete",
    "codes": "encode_codes",
}
#: Protocol methods that take ``class_labels=None``; a plugin's older signature without it is adapted.
_LABELLED_METHODS = ("compute_loss", "decode_latents", "encode_images", "sample", "log_likelihood", "likelihood_bounds",
                     "complete", "reconstruct", "encode_codes")


def _takes_class_labels(method: Callable) -> bool:
    parameters = inspect.signature(method).parameters.values()
    return any(p.name == "class_labels" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _accepting_class_labels(method: Callable) -> Callable:
    """``method`` written without ``class_labels``: takes ``class_labels=None`` and refuses actual labels."""
    @functools.wraps(method)
    def adapted(self, *args: Any, class_labels: Any = None, **kwargs: Any) -> Any:
        if class_labels is not None:
            raise ValueError(f"{type(self).__name__}.{method.__name__} takes no class_labels: the model is "
                             "unconditional.")
        return method(self, *args, **kwargs)

    return adapted


class GenerativeModel(ModelMixin, ConfigMixin):
    """Base class of every vaegan family: the AE, VAE and GAN, and plugin families."""

    config_name = "config.json"
    #: Marks vaegan model classes for :mod:`vaegan.models.registry` (which must not import this module).
    is_vaegan_model: ClassVar[bool] = True
    #: Short family name used for model-card tags ("ae", "vae", "gan"); never used to decide behaviour.
    family: ClassVar[str] = "model"
    #: Optimisation phases, each with its own optimizer; a GAN has a discriminator and a generator phase.
    training_phases: ClassVar[tuple[str, ...]] = ("model",)
    #: Ordered training stages, each a name and the phases it trains, e.g. ``(("autoencoder", ("model",)),
    #: ("prior", ("prior",)))``; empty: one stage that trains every phase of ``training_phases``.
    training_stages: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()
    #: Subfolders a model of this family saves its components in (``save_files``); empty for one-folder families.
    component_folders: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _LABELLED_METHODS:
            method = cls.__dict__.get(name)
            if callable(method) and not _takes_class_labels(method):
                setattr(cls, name, _accepting_class_labels(method))

    # ------------------------------------------------------------------ capabilities
    @classmethod
    def supports(cls, capability: str) -> bool:
        """Whether this family has ``capability`` (a key of :data:`CAPABILITIES`), read from the class alone."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}.{closest(capability, CAPABILITIES)} Known: "
                             f"{', '.join(CAPABILITIES)}.")
        if capability == "reconstruction" and cls.supports("encoder") and cls.supports("latent_space"):
            return True
        method = CAPABILITIES[capability]
        return getattr(cls, method) is not getattr(GenerativeModel, method)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        """The capabilities this family has (see :data:`CAPABILITIES`)."""
        return frozenset(name for name in CAPABILITIES if cls.supports(name))

    @property
    def has_encoder(self) -> bool:
        """Whether images can be encoded (``encode_images``): true for AEs and VAEs, false for GANs."""
        return self.supports("encoder")

    @property
    def has_latent_space(self) -> bool:
        """Whether the model generates by decoding latents (``prior_latents`` + ``decode_latents``)."""
        return self.supports("latent_space")

    @property
    def can_reconstruct(self) -> bool:
        return self.supports("reconstruction")

    @property
    def can_sample(self) -> bool:
        """Whether ``sample`` works now (an AE needs its fitted prior first)."""
        return True

    def cannot_sample_reason(self) -> str | None:
        """None when the model can sample now, else why not and what to do (from the model's own error)."""
        if self.can_sample:
            return None
        try:
            self.sample(1, generator=torch.Generator(device=self.device).manual_seed(0))
        except (RuntimeError, NotImplementedError) as err:
            return str(err)
        return f"This {type(self).__name__} cannot sample yet."

    @classmethod
    def stages(cls) -> dict[str, tuple[str, ...]]:
        """Training stages in order -> the phases each trains (one stage, ``"train"``, unless declared)."""
        if not cls.training_stages:
            return {"train": tuple(cls.training_phases)}
        return {name: tuple(phases) for name, phases in cls.training_stages}

    # ------------------------------------------------------------------ construction
    def _build(self, factory: Callable[[], dict[str, nn.Module]]) -> None:
        """Create the networks returned by ``factory`` after checking their size on the meta device."""
        with torch.device("meta"):
            count = sum(p.numel() for net in factory().values() for p in net.parameters())
        if count > MAX_PARAMETERS:
            raise ConfigError(
                f"This {type(self).__name__} configuration would have {count:,} parameters, more than the "
                f"{MAX_PARAMETERS:,} vaegan allows; reduce latent_dim, image_size or the layer widths."
            )
        for name, net in factory().items():
            setattr(self, name, net)

    @property
    def latent_dim(self) -> int | None:
        """Size of a flat latent vector (``config.latent_dim``); None for a family without one."""
        return self.config.get("latent_dim")

    @property
    def latent_shape(self) -> tuple[int, ...] | None:
        """Shape of one latent (``(latent_dim,)`` for a flat latent); None without a latent space."""
        if not self.has_latent_space or self.latent_dim is None:
            return None
        return (self.latent_dim,)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the images this model reads and writes."""
        return (self.config.in_channels, self.config.image_size, self.config.image_size)

    # ------------------------------------------------------------------ class conditioning
    @property
    def num_classes(self) -> int | None:
        """Number of classes of a class-conditional model; None for an unconditional one."""
        return self.config.get("num_classes")

    @property
    def class_names(self) -> list[str] | None:
        """Names of the classes (index ``i`` names label ``i``), when the model has them."""
        names = self.config.get("class_names")
        return list(names) if names is not None else None

    def prepare_class_labels(self, class_labels: ClassLabels | None, num_samples: int | None = None,
                             generator: torch.Generator | list[torch.Generator] | None = None,
                             draw_missing: bool = False) -> torch.Tensor | None:
        """``class_labels`` (indices, names, or an integer tensor) checked and as a ``(num_samples,)`` long tensor.

        None stays None for an unconditional model; for a class-conditional one it raises, or with
        ``draw_missing`` draws labels uniformly with ``generator``. Labels given to an unconditional model, out of
        range, unknown names and floats raise errors that say what to pass instead.
        """
        if class_labels is None:
            if self.num_classes is None:
                return None
            if not draw_missing:
                raise ValueError(f"This {type(self).__name__} is class-conditional ({self.num_classes} classes): "
                                 "pass class_labels (an index, a class name, or one per sample).")
            return conditioning.random_labels(num_samples, self.num_classes, generator, self.device)
        return conditioning.label_tensor(class_labels, num_classes=self.num_classes, class_names=self.class_names,
                                         num_samples=num_samples, model_name=type(self).__name__,
                                         device=self.device)

    def _require(self, capability: str, use: str) -> None:
        if not self.supports(capability):
            raise NotImplementedError(f"{type(self).__name__} has no {capability.replace('_', ' ')} "
                                      f"({CAPABILITIES[capability]}), so it cannot {use}.")

    def generate_all_classes(self, latents: torch.Tensor) -> torch.Tensor:
        """Each latent decoded in every class: ``(N * num_classes, C, H, W)``, latent-major.

        Row ``i`` of ``make_grid(images, nrow=model.num_classes)`` is latent ``i`` (its *style*) drawn as every
        class — the classic CVAE figure. For the style of real images, pass ``model.encode_images(images,
        class_labels=labels)``.
        """
        self._require("latent_space", "draw one latent in every class")
        if self.num_classes is None:
            raise ValueError(f"This {type(self).__name__} is unconditional (num_classes is None); "
                             "generate_all_classes needs a class-conditional model.")
        latents = torch.as_tensor(latents).to(self.device, self.dtype)
        if latents.ndim == 1:
            latents = latents.unsqueeze(0)
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (N, {self.latent_dim}), got {tuple(latents.shape)}.")
        k = self.num_classes
        labels = torch.arange(k, device=self.device).repeat(len(latents))
        with self._eval_mode():
            return self.decode_latents(latents.repeat_interleave(k, dim=0), class_labels=labels)

    # ------------------------------------------------------------------ optional capabilities
    def decode_latents(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents ``(B, *latent_shape)`` -> images ``(B, C, H, W)`` in [0, 1] (capability ``latent_space``)."""
        raise NotImplementedError(f"{type(self).__name__} has no latent space to decode.")

    def encode_images(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, *latent_shape)`` (capability ``encoder``)."""
        hint = (" pass latent vectors instead, e.g. model.prior_latents(2, generator=torch.Generator().manual_seed(0))."
                if self.has_latent_space else "")
        raise NotImplementedError(f"{type(self).__name__} has no encoder;{hint}".rstrip(";") + ("" if hint else "."))

    def prior_latents(self, num_samples: int, generator: torch.Generator | None = None,
                      temperature: float | None = None) -> torch.Tensor:
        """Draw ``num_samples`` latents from the model's prior (a standard normal unless overridden); ``temperature``
        (default: :attr:`default_temperature`) scales their spread."""
        self._require("latent_space", "draw latents")
        noise = randn_tensor((num_samples, *self.latent_shape), generator=generator, device=self.device,
                             dtype=self.dtype)
        return noise * self.resolve_temperature(temperature)

    def log_likelihood(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(x)`` (``log p(x | y)`` with labels) of each image, nats: ``(B,)`` (capability
        ``log_likelihood``; explicit-density families)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact likelihood.")

    def likelihood_bounds(self, images: torch.Tensor, k: int = 1000, generator: torch.Generator | None = None,
                          class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Lower bounds on ``log p(x)`` of each image in nats, e.g. ``{"elbo": (B,), "iwae": (B,)}`` with ``k``
        importance samples (capability ``likelihood_bounds``; latent-variable families such as the VAE)."""
        raise NotImplementedError(f"{type(self).__name__} has no likelihood bounds.")

    def complete(self, images: torch.Tensor, known_mask: torch.Tensor, generator: torch.Generator | None = None,
                 num_completions: int = 1, class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Redraw the pixels where ``known_mask`` is False given the others (capability ``completion``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot complete images.")

    def _known_mask(self, known_mask: Any, batch: int) -> torch.Tensor:
        """``complete``'s ``known_mask`` as ``(batch, 1, H, W)`` booleans, after checking its type, shape and that
        something is left to complete."""
        mask = torch.as_tensor(known_mask, device=self.device)
        _, h, w = self.image_shape
        if mask.dtype != torch.bool:
            raise ValueError(f"known_mask must be a boolean tensor (True: keep the pixel), got {mask.dtype}.")
        if mask.shape == (h, w):
            mask = mask.expand(batch, 1, h, w)
        elif mask.shape == (batch, h, w):
            mask = mask.unsqueeze(1)
        elif mask.shape != (batch, 1, h, w):
            raise ValueError(f"known_mask must have shape ({h}, {w}), ({batch}, {h}, {w}) or ({batch}, 1, {h}, "
                             f"{w}), got {tuple(mask.shape)}.")
        if mask.all():
            raise ValueError("known_mask keeps every pixel, so there is nothing to complete; set the pixels to "
                             "redraw to False.")
        return mask

    def encode_codes(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> grids of codebook indices ``(B, h, w)`` long, each below
        :attr:`codebook_size` (capability ``codes``; quantized families)."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete codes.")

    @property
    def codebook_size(self) -> int | None:
        """Number of codes of a quantized family (capability ``codes``); None for others."""
        return None

    def card_sections(self) -> list[str]:
        """Paragraphs (Markdown) the model card shows after its first lines, e.g. the parts of a model."""
        return []

    def reconstruct(self, images: torch.Tensor, class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Encode then decode ``images`` ``(B, C, H, W)`` in [0, 1] (capability ``reconstruction``)."""
        self._require("reconstruction", "reconstruct images")
        labels = self.prepare_class_labels(class_labels, len(images))
        with self._eval_mode():
            latents = self.encode_images(images.to(self.device, self.dtype), class_labels=labels)
            return self.decode_latents(latents, class_labels=labels)

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Evaluation mode (batch-norm statistics, no dropout) and no autograd, then restore."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ generation
    @property
    def default_temperature(self) -> float:
        """The temperature that :meth:`sample`, :meth:`prior_latents` and every consumer (pipelines, ``vaegan
        sample`` / ``evaluate``, the demo, the card) use when given none: the config's ``sample_temperature`` in a
        family that stores one (a GAN's truncated latent), else 1 (the distribution as trained)."""
        stored = self.config.get("sample_temperature")
        return 1.0 if stored is None else float(stored)

    def resolve_temperature(self, temperature: float | None) -> float:
        """``temperature``, or :attr:`default_temperature` when it is None."""
        return self.default_temperature if temperature is None else temperature

    def sample(self, num_samples: int, generator: torch.Generator | None = None,
               temperature: float | None = None, class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Generate ``num_samples`` images ``(N, C, H, W)`` in [0, 1]; the same generator seed gives the same images.

        ``temperature`` scales the prior's spread (below 1: more typical, less varied images; default:
        :attr:`default_temperature`). ``class_labels``
        (class-conditional models only): one label for every sample or one per sample, as indices or class
        names; without them the labels are drawn uniformly with ``generator`` (after the latents, so the same
        seed gives the same latents with or without labels).

        Families with a latent space get this for free (prior latents, decoded); others implement it.
        """
        if not self.has_latent_space:
            raise NotImplementedError(f"{type(self).__name__} must implement sample() (it has no latent space).")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        labels = None if class_labels is None else self.prepare_class_labels(class_labels, num_samples)
        with self._eval_mode():
            # Resolved here: a plugin's prior_latents may predate temperature=None.
            latents = self.prior_latents(num_samples, generator, self.resolve_temperature(temperature))
            if labels is None:
                labels = self.prepare_class_labels(None, num_samples, generator, draw_missing=True)
            return self.decode_latents(latents, class_labels=labels)

    def _to_latent(self, x: torch.Tensor, class_label: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.as_tensor(x).to(self.device)
        if x.ndim <= 2:  # a latent vector, or a batch of one
            if x.numel() != self.latent_dim:
                raise ValueError(f"expected a latent vector of size {self.latent_dim}, got shape {tuple(x.shape)}.")
            return x.reshape(-1).to(self.dtype)
        images = x.unsqueeze(0) if x.ndim == 3 else x
        if images.shape[0] != 1 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected one image of shape {self.image_shape}, got {tuple(x.shape)}.")
        labels = None if class_label is None else class_label.reshape(1)
        return self.encode_images(images.to(self.dtype), class_labels=labels)[0]

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int = 10,
                    mode: str = "slerp", class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Images along a latent path from ``start`` to ``end`` -> ``(steps, C, H, W)`` in [0, 1].

        ``start`` / ``end`` are images ``(C, H, W)`` (encoded first; models with an encoder) or latent vectors.
        ``mode`` is 'slerp' (spherical, suits Gaussian latents) or 'lerp' (straight line). A class-conditional
        model needs ``class_labels``: one label for the whole path, or one per step (image end points are encoded
        with the first and the last).
        """
        self._require("latent_space", "interpolate")
        # With invalid steps, interpolate_latents below says why.
        labels = self.prepare_class_labels(class_labels, steps if isinstance(steps, int) and steps >= 2 else None)
        first, last = (labels[0], labels[-1]) if labels is not None else (None, None)
        with self._eval_mode():
            path = interpolate_latents(self._to_latent(start, first), self._to_latent(end, last), steps, mode)
            return self.decode_latents(path, class_labels=labels)

    # ------------------------------------------------------------------ training protocol
    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Parameters the optimizer of ``phase`` updates."""
        return list(self.parameters())

    def phase_is_active(self, phase: str, step: int) -> bool:
        """Whether ``phase`` runs at optimisation step ``step`` (e.g. the generator every ``n_critic`` steps)."""
        return True

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Losses of ``phase`` for a batch of images in [0, 1]: ``{"loss": scalar to minimise, **logged terms}``.

        ``class_labels`` is the batch's ``(B,)`` long labels for a class-conditional model, else None.
        """
        raise NotImplementedError

    def after_optimizer_step(self, phase: str) -> None:
        """Called after each optimizer step of ``phase`` (e.g. WGAN weight clipping)."""

    def on_train_start(self, batches: Iterable[torch.Tensor]) -> None:
        """Called once before the first step of a fresh run (not on resume) with the training images, e.g. to
        cluster them (a cluster-conditioned GAN). A class-conditional model gets ``(images, class_labels)`` pairs."""

    def on_stage_start(self, stage: str, batches: Iterable[torch.Tensor]) -> None:
        """Called before the first step of each training stage after the first (also when a run resumes at a
        stage's first step), with the training images, e.g. to freeze the autoencoder before its prior trains."""

    def on_train_end(self, batches: Iterable[torch.Tensor]) -> None:
        """Called once after training with the training images (e.g. the AE fits its latent prior).

        A class-conditional model gets ``(images, class_labels)`` pairs instead of image batches.
        """

    def adapt_pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A pretrained model's ``state_dict`` adapted to this model's options before fine-tuning (``--init-from``).

        Families add or drop state that an option creates and that training rebuilds (an EMA generator, a fitted
        latent prior); weights whose shapes differ are left for the strict load to refuse.
        """
        return state

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike, *, model_card: bool = True,
                        training_summary: dict[str, Any] | None = None, repo_id: str | None = None,
                        training_config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Write ``config.json``, safetensors weights and a model card atomically into ``save_directory``.

        The files are written to a temporary folder beside the target first, so an interrupted save never
        leaves a folder that loads as a model with half its weights. ``training_summary`` (written by
        vaegan's trainer: data, steps, final metrics) goes into the model card, whose usage snippet loads
        ``repo_id`` when given (``push_to_hub`` passes it), else ``save_directory``. ``training_config`` (the
        resolved config of the run that trained the model) is saved as ``training_config.yaml``, which
        ``vaegan train MODEL`` uses to fine-tune the model.
        """
        if kwargs.get("safe_serialization") is False:
            raise CheckpointError("vaegan saves safetensors only; drop safe_serialization=False.")
        if kwargs.pop("push_to_hub", False):
            raise ValueError("use model.push_to_hub(repo_id) to upload; save_pretrained only writes a folder.")
        kwargs["safe_serialization"] = True
        if not kwargs.get("is_main_process", True):
            return
        target = Path(save_directory)
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a directory; choose another save_directory.")
        staging = make_staging_dir(target)
        try:
            self.save_files(staging, **kwargs)
            if training_config is not None:
                import yaml

                (staging / TRAINING_CONFIG_NAME).write_text(yaml.safe_dump(training_config, sort_keys=False))
            if model_card:
                write_model_card(self, staging, training_summary=training_summary, repo_id=repo_id,
                                 load_path=target)
            apply_umask(staging)
            publish_folder(staging, target, component_classes=all_subclasses(GenerativeModel))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def save_files(self, folder: Path, **kwargs: Any) -> None:
        """Write ``config.json`` and the safetensors weights into ``folder`` (diffusers' ``save_pretrained``); a
        model saved as several components (each a subfolder with its own config and weights) overrides this."""
        ModelMixin.save_pretrained(self, folder, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a model from a Hub repo id, a local folder or the HF cache (safetensors only, strictly).

        Accepts diffusers' arguments (``revision``, ``subfolder``, ``local_files_only``, ``torch_dtype``,
        ``cache_dir``, ``token``, ...). Weights that do not match ``config.json`` raise
        :class:`~vaegan.errors.WeightsMismatchError`; pickle checkpoints are never read.
        """
        if kwargs.pop("trust_remote_code", False):
            raise ValueError("vaegan never runs code from a model repo; remove trust_remote_code.")
        if kwargs.get("use_safetensors") is False:
            raise CheckpointError("vaegan loads safetensors weights only; remove use_safetensors=False.")
        if kwargs.pop("ignore_mismatched_sizes", False):
            raise ValueError("vaegan never loads mismatched weights; remove ignore_mismatched_sizes=True.")
        if kwargs.get("use_flashpack"):
            raise CheckpointError("vaegan loads safetensors weights only; remove use_flashpack=True.")
        want_info = kwargs.pop("output_loading_info", False)
        source = str(pretrained_model_name_or_path)
        refuse_pickle_only(source, kwargs.get("subfolder"))
        kwargs = pin_revision(source, kwargs)
        config = load_config(cls, source, kwargs)
        cls.check_config_dict(config, source)
        weight_map = refuse_unsafe_shards(source, kwargs)
        kwargs["use_safetensors"] = True
        try:
            with quiet_partial_load_warnings():
                model, info = super().from_pretrained(source, output_loading_info=True, **kwargs)
        except (OSError, ValueError, RuntimeError) as err:
            raise explain_load_error(err, source) from err
        problems = {name: info.get(name) for name in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(problems.values()):
            details = "; ".join(f"{name.replace('_', ' ')}: {describe_keys(keys)}"
                                for name, keys in problems.items() if keys)
            raise WeightsMismatchError(
                f"The weights of {source} do not match its config.json for {cls.__name__} ({details}). "
                "The folder is inconsistent: save it again with save_pretrained, or fix config.json."
            )
        check_loaded_weights(model, source, kwargs, weight_map)
        realign_tensors(model)
        return (model, info) if want_info else model

    @classmethod
    def check_config_dict(cls, config: dict[str, Any], source: str = "config") -> None:
        """Refuse a config.json written for another class or holding keys this class does not know."""
        class_name = config.get("_class_name")
        if class_name not in (None, cls.__name__):
            other = registry.get_model_class(class_name)
            if not issubclass(other, cls):
                raise ConfigError(
                    f"{source} holds a {class_name} model, not a {cls.__name__}; load it with "
                    f"{class_name}.from_pretrained or vaegan.AutoModel.from_pretrained."
                )
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(k for k in config if not k.startswith("_") and k not in known)
        if unknown:
            raise ConfigError(
                f"{source}: config.json has keys that {cls.__name__} does not accept: {unknown}."
                f"{closest(unknown[0], known)} Allowed keys: {sorted(known)}."
            )

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, revision: str | None = None, create_pr: bool = False,
                    **save_kwargs: Any) -> str:
        """Upload config, safetensors weights, model card and sample grid to ``repo_id`` in one commit.

        Returns the URL of the commit.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(Path(tmp) / "model", repo_id=repo_id, **save_kwargs)
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=Path(tmp) / "model", revision=revision, create_pr=create_pr,
                commit_message=commit_message or f"Upload {type(self).__name__} with vaegan",
                # Same commit: drop the files of an earlier push that this one lacks, also the component folders
                # of another model pushed there before (a VQ-VAE pair's vqvae/ and prior/).
                delete_patterns=list(SAVE_SPECIFIC_PATTERNS) + sorted(
                    f"{folder}/*" for cls in all_subclasses(GenerativeModel) for folder in cls.component_folders),
            )
        return commit.commit_url
