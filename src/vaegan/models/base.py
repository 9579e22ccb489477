"""``GenerativeModel``: what every vaegan family shares.

* generation from latents (``sample``, ``interpolate``) with diffusers' ``randn_tensor``;
* the training protocol the trainer drives (phases, parameters, losses, hooks), so a new family
  plugs in without touching the trainer;
* strict, safetensors-only loading and atomic saving on top of diffusers' ``ModelMixin``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from ..cards import TRAINING_CONFIG_NAME, write_model_card
from ..errors import CheckpointError, ConfigError, WeightsMismatchError
from ..files import apply_umask, make_staging_dir
from ..interpolation import interpolate_latents
from . import conditioning
from .conditioning import ClassLabels
from .sources import check_model_source, explain_unreachable
from .validation import MAX_PARAMETERS, closest

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: Files of a saved model that belong to one save only (weight shards, the card's sample grid, the evaluation,
#: the training config): a save or push without them removes an earlier one's instead of keeping it.
SAVE_SPECIFIC_PATTERNS = ("diffusion_pytorch_model*", "samples.png", "eval_results.json", TRAINING_CONFIG_NAME)
_CONFIG_DOWNLOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision",
                           "subfolder")


def _unregistered(name: str) -> type:
    raise ConfigError(f"no model registry to look up {name!r}: import vaegan.models first.")


#: Finds a registered model class by name, plugins included. ``vaegan.models.auto`` installs its registry here with
#: :func:`set_class_lookup`, so this module never imports ``auto`` (which imports this one).
_class_lookup: Callable[[str], type] = _unregistered


def set_class_lookup(lookup: Callable[[str], type]) -> None:
    """Install the function that maps a ``_class_name`` to its model class (done by ``vaegan.models.auto``)."""
    global _class_lookup
    _class_lookup = lookup


class GenerativeModel(ModelMixin, ConfigMixin):
    """Base class of the AE, VAE and GAN families (and of plugin families)."""

    config_name = "config.json"
    #: Short family name used for model-card tags and the CLI ("ae", "vae", "gan").
    family: ClassVar[str] = "model"
    #: Optimisation phases, each with its own optimizer; a GAN has a discriminator and a generator phase.
    training_phases: ClassVar[tuple[str, ...]] = ("model",)

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
    def latent_dim(self) -> int:
        return self.config.latent_dim

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

    def _decode(self, latents: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        # Plugin families without conditioning keep their one-argument decode_latents.
        if class_labels is None:
            return self.decode_latents(latents)
        return self.decode_latents(latents, class_labels=class_labels)

    def generate_all_classes(self, latents: torch.Tensor) -> torch.Tensor:
        """Each latent decoded in every class: ``(N * num_classes, C, H, W)``, latent-major.

        Row ``i`` of ``make_grid(images, nrow=model.num_classes)`` is latent ``i`` (its *style*) drawn as every
        class — the classic CVAE figure. For the style of real images, pass ``model.encode_images(images,
        class_labels=labels)``.
        """
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
            return self._decode(latents.repeat_interleave(k, dim=0), labels)

    # ------------------------------------------------------------------ generation
    @property
    def has_encoder(self) -> bool:
        """Whether images can be encoded (``encode_images``): true for AEs and VAEs, false for GANs."""
        return type(self).encode_images is not GenerativeModel.encode_images

    @property
    def can_sample(self) -> bool:
        """Whether ``sample`` works now (an AE needs its fitted prior first)."""
        return True

    def cannot_sample_reason(self) -> str | None:
        """None when the model can sample now, else why not and what to do: the error ``prior_latents`` raises
        (an AE or a mixture-prior VAE before ``fit_prior``, a cluster GAN before its clusters are fitted)."""
        if self.can_sample:
            return None
        try:
            self.prior_latents(1)
        except RuntimeError as err:
            return str(err)
        return f"This {type(self).__name__} cannot sample yet."

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, latent_dim)`` -> images ``(B, C, H, W)`` in [0, 1].

        Class-conditional families also take ``class_labels`` (a ``(B,)`` long tensor).
        """
        raise NotImplementedError

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, latent_dim)`` (the posterior mode).

        Class-conditional families also take ``class_labels`` (a ``(B,)`` long tensor).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no encoder; pass latent vectors instead, e.g. "
            "model.prior_latents(2, generator=torch.Generator().manual_seed(0))."
        )

    def prior_latents(self, num_samples: int, generator: torch.Generator | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
        """Draw ``num_samples`` latents from the model's prior (a standard normal unless overridden)."""
        noise = randn_tensor((num_samples, self.latent_dim), generator=generator, device=self.device,
                             dtype=self.dtype)
        return noise * temperature

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

    def sample(self, num_samples: int, generator: torch.Generator | None = None,
               temperature: float = 1.0, class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Generate ``num_samples`` images ``(N, C, H, W)`` in [0, 1]; the same generator seed gives the same images.

        ``temperature`` scales the prior's spread (below 1: more typical, less varied images). ``class_labels``
        (class-conditional models only): one label for every sample or one per sample, as indices or class
        names; without them the labels are drawn uniformly with ``generator`` (after the latents, so the same
        seed gives the same latents with or without labels).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        labels = None if class_labels is None else self.prepare_class_labels(class_labels, num_samples)
        with self._eval_mode():
            latents = self.prior_latents(num_samples, generator, temperature)
            if labels is None:
                labels = self.prepare_class_labels(None, num_samples, generator, draw_missing=True)
            return self._decode(latents, labels)

    def _to_latent(self, x: torch.Tensor, class_label: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.as_tensor(x).to(self.device)
        if x.ndim <= 2:  # a latent vector, or a batch of one
            if x.numel() != self.latent_dim:
                raise ValueError(f"expected a latent vector of size {self.latent_dim}, got shape {tuple(x.shape)}.")
            return x.reshape(-1).to(self.dtype)
        images = x.unsqueeze(0) if x.ndim == 3 else x
        if images.shape[0] != 1 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected one image of shape {self.image_shape}, got {tuple(x.shape)}.")
        if class_label is None:
            return self.encode_images(images.to(self.dtype))[0]
        return self.encode_images(images.to(self.dtype), class_labels=class_label.reshape(1))[0]

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int = 10,
                    mode: str = "slerp", class_labels: ClassLabels | None = None) -> torch.Tensor:
        """Images along a latent path from ``start`` to ``end`` -> ``(steps, C, H, W)`` in [0, 1].

        ``start`` / ``end`` are images ``(C, H, W)`` (encoded first; AE/VAE only) or latent vectors.
        ``mode`` is 'slerp' (spherical, suits Gaussian latents) or 'lerp' (straight line). A class-conditional
        model needs ``class_labels``: one label for the whole path, or one per step (image end points are encoded
        with the first and the last).
        """
        # With invalid steps, interpolate_latents below says why.
        labels = self.prepare_class_labels(class_labels, steps if isinstance(steps, int) and steps >= 2 else None)
        first, last = (labels[0], labels[-1]) if labels is not None else (None, None)
        with self._eval_mode():
            path = interpolate_latents(self._to_latent(start, first), self._to_latent(end, last), steps, mode)
            return self._decode(path, labels)

    # ------------------------------------------------------------------ training protocol
    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """Parameters the optimizer of ``phase`` updates."""
        return list(self.parameters())

    def phase_is_active(self, phase: str, step: int) -> bool:
        """Whether ``phase`` runs at optimisation step ``step`` (e.g. the generator every ``n_critic`` steps)."""
        return True

    def compute_loss(self, phase: str, images: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Losses of ``phase`` for a batch of images in [0, 1]: ``{"loss": scalar to minimise, **logged terms}``.

        The trainer passes ``class_labels=`` (the batch's ``(B,)`` long labels) to class-conditional models only.
        """
        raise NotImplementedError

    def after_optimizer_step(self, phase: str) -> None:
        """Called after each optimizer step of ``phase`` (e.g. WGAN weight clipping)."""

    def on_train_start(self, batches: Iterable[torch.Tensor]) -> None:
        """Called once before the first step of a fresh run (not on resume) with the training images, e.g. to
        cluster them (a cluster-conditioned GAN). A class-conditional model gets ``(images, class_labels)`` pairs."""

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
            super().save_pretrained(staging, **kwargs)
            if training_config is not None:
                import yaml

                (staging / TRAINING_CONFIG_NAME).write_text(yaml.safe_dump(training_config, sort_keys=False))
            if model_card:
                write_model_card(self, staging, training_summary=training_summary, repo_id=repo_id,
                                 load_path=target)
            apply_umask(staging)
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

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
        want_info = kwargs.pop("output_loading_info", False)
        source = str(pretrained_model_name_or_path)
        _refuse_pickle_only(source, kwargs.get("subfolder"))
        config = _load_config(cls, source, kwargs)
        cls.check_config_dict(config, source)
        kwargs["use_safetensors"] = True
        try:
            with _without_partial_load_warnings():
                model, info = super().from_pretrained(source, output_loading_info=True, **kwargs)
        except (OSError, ValueError, RuntimeError) as err:
            raise _explain_load_error(err, source) from err
        problems = {name: info.get(name) for name in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(problems.values()):
            details = "; ".join(f"{name.replace('_', ' ')}: {_describe_keys(keys)}"
                                for name, keys in problems.items() if keys)
            raise WeightsMismatchError(
                f"The weights of {source} do not match its config.json for {cls.__name__} ({details}). "
                "The folder is inconsistent: save it again with save_pretrained, or fix config.json."
            )
        _realign(model)
        return (model, info) if want_info else model

    @classmethod
    def check_config_dict(cls, config: dict[str, Any], source: str = "config") -> None:
        """Refuse a config.json written for another class or holding keys this class does not know."""
        class_name = config.get("_class_name")
        if class_name not in (None, cls.__name__):
            other = _class_lookup(class_name)
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
                # Same commit: drop the files of an earlier push that this one lacks.
                delete_patterns=list(SAVE_SPECIFIC_PATTERNS),
            )
        return commit.commit_url


class _PartialLoadFilter(logging.Filter):
    """Drops diffusers' "weights ... newly initialized / not used" warnings: vaegan refuses such a load itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("newly initialized" in message or "were not used when initializing" in message)


@contextlib.contextmanager
def _without_partial_load_warnings() -> Iterator[None]:
    from diffusers.models import modeling_utils

    logger, log_filter = logging.getLogger(modeling_utils.__name__), _PartialLoadFilter()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def _realign(model: nn.Module) -> None:
    """Copy tensors that loading left at unaligned addresses (views into the safetensors buffer) to fresh memory.

    CPU kernels take other code paths for unaligned data, so a loaded model would otherwise differ from the
    saved one in the last bits (e.g. ``sample(1)``), breaking bit-identical round trips.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()


def _describe_keys(keys: list) -> str:
    shown = [f"{k[0]} (file {tuple(k[1])}, model {tuple(k[2])})" if isinstance(k, tuple) else str(k)
             for k in sorted(keys, key=str)[:10]]
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    return ", ".join(shown) + more


def _load_config(cls: type[ConfigMixin], source: str | os.PathLike, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cls.load_config`` letting huggingface_hub's own errors through (repo not found or not accessible: private
    repo without the right token; unknown revision), which diffusers would replace by an OSError that names
    huggingface.co whatever the endpoint. Both are OSErrors."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    check_model_source(source)
    try:
        return cls.load_config(source, **{k: kwargs[k] for k in _CONFIG_DOWNLOAD_KWARGS if k in kwargs})
    except OSError as err:
        if isinstance(err.__context__, RepositoryNotFoundError | RevisionNotFoundError):
            raise err.__context__ from None
        raise explain_unreachable(err, source) from err


def _refuse_pickle_only(source: str, subfolder: str | None) -> None:
    folder = Path(source) / (subfolder or "")
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder} holds only pickle checkpoints ({', '.join(pickles)}) and no safetensors weights. "
            "vaegan never unpickles files (a pickle can run arbitrary code). Convert the weights to "
            "safetensors with a tool you trust, or save the model again with save_pretrained."
        )


def _explain_load_error(err: Exception, source: str) -> Exception:
    message = str(err)
    if isinstance(err, CheckpointError | ConfigError):
        return err
    if SAFETENSORS_WEIGHTS_NAME in message and ("no file named" in message or "does not appear" in message):
        return CheckpointError(
            f"{source} has no {SAFETENSORS_WEIGHTS_NAME}. vaegan loads safetensors weights only and never "
            f"unpickles *.bin/*.pt/*.pkl files. Save the model with save_pretrained (or push_to_hub) first.\n{err}"
        )
    if "Unable to load weights" in message or "Error while deserializing" in message:
        return CheckpointError(
            f"The safetensors weights of {source} are corrupt or truncated ({err}). Save the model again, or "
            "download it again with force_download=True."
        )
    shape = re.search(r"because (\S+) expected shape (.+?), but got (.+?)\.(?:\s|$)", message)
    if shape:
        key, expected, found = shape.groups()
        return WeightsMismatchError(
            f"The weights of {source} do not match its config.json: tensor {key} has shape {found} in the "
            f"file but the model built from config.json expects {expected}. Save the model again with "
            "save_pretrained, or fix config.json."
        )
    return err


def _publish(staging: Path, target: Path) -> None:
    """Move a complete staged save into ``target``: weights first, config last."""
    if not target.exists():
        os.rename(staging, target)
        return
    produced = {p.name for p in staging.iterdir()}
    for stale in [path for pattern in SAVE_SPECIFIC_PATTERNS for path in target.glob(pattern)]:
        if stale.name not in produced:
            stale.unlink()
    order = sorted(produced, key=lambda name: (name.endswith(".json"), name == "config.json", name))
    for name in order:
        os.replace(staging / name, target / name)
