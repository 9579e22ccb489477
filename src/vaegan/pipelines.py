"""diffusers pipelines around vaegan models: ``VAEPipeline``, ``GANPipeline``, ``AEPipeline``, ``GenerativePipeline``.

They follow ``DDPMPipeline``'s call convention::

    pipe = VAEPipeline(vae)
    images = pipe(batch_size=4, generator=torch.Generator().manual_seed(0)).images  # PIL images
    frames = pipe.interpolate(0, 1, steps=8).images  # from the latent of seed 0 to that of seed 1

and save to / load from pipeline folders (``model_index.json`` + one model subfolder). A class-conditional model
takes ``class_labels`` like diffusers' ``DiTPipeline`` (``pipe(class_labels=[3, 7])``, ``pipe.get_label_ids("three")``,
``pipe.id2label``). ``model_index.json`` names the model as ``["vaegan", "<Class>"]``, so
``DiffusionPipeline.from_pretrained(folder_or_repo)`` works after ``import vaegan``; the model is then loaded by
vaegan's own strict, safetensors-only ``from_pretrained``. Nothing from a repo is ever executed:
``trust_remote_code`` and ``custom_pipeline`` are refused.

``GenerativePipeline`` works with any vaegan model, plugin families included; a plugin may also add its own pipeline
class (:func:`register_pipeline` or the ``vaegan.pipelines`` entry-point group, see :mod:`vaegan.pipeline_registry`).
"""

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import diffusers
import diffusers.pipelines
import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from PIL import Image

from .errors import CheckpointError, ConfigError
from .models.ae import AE
from .models.base import GenerativeModel
from .models.gan import GAN
from .models.registry import get_model_class, register_model, registered_class
from .models.serialization import CONFIG_DOWNLOAD_KWARGS, load_config
from .models.vae import VAE
from .models.vqvae import VQVAE
from .pipeline_registry import available_pipelines, get_pipeline_class, register_pipeline, reload_pipeline_plugins

__all__ = ["AEPipeline", "GANPipeline", "GenerativePipeline", "VAEPipeline", "VQVAEPipeline", "available_pipelines",
           "get_pipeline_class", "register_pipeline", "reload_pipeline_plugins"]

OUTPUT_TYPES = ("pil", "np", "pt")
LIBRARY = "vaegan"


def _library_tuple(model: GenerativeModel) -> tuple[str, str] | None:
    """``("vaegan", "<Class>")`` for ``model_index.json``; diffusers resolves it as ``getattr(vaegan, "<Class>")``."""
    cls = type(model)
    if registered_class(cls.__name__) is None:
        register_model(cls)  # a user subclass: resolvable by name in this process (other processes: register it)
    try:
        registered = get_model_class(cls.__name__)
    except (ConfigError, ImportError):
        registered = None
    if registered is not cls:
        warnings.warn(f"{cls.__module__}.{cls.__qualname__} is not the model class vaegan knows as {cls.__name__!r}; "
                      "a saved pipeline holding it will not load. Give the class another name.", stacklevel=2)
        return None
    return (LIBRARY, cls.__name__)


class GenerativePipeline(DiffusionPipeline):
    """Image generation with any vaegan model (plugin families included).

    Subclasses name the component after the family (``vae``, ``gan``, ``ae``); this base class calls it ``model``.
    A plugin's subclass sets ``component_name`` and ``model_class``, takes the model as an ``__init__`` argument
    of that name, and is registered with :func:`register_pipeline` (or the ``vaegan.pipelines`` entry points).
    """

    #: Marks vaegan pipeline classes for :mod:`vaegan.pipeline_registry` (which must not import this module).
    is_vaegan_pipeline: ClassVar[bool] = True

    #: Name of the pipeline's only component (the ``__init__`` argument and the subfolder of saved pipelines).
    component_name: ClassVar[str] = "model"
    #: Class the component must be an instance of.
    model_class: ClassVar[type[GenerativeModel]] = GenerativeModel
    model_cpu_offload_seq = "model"

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self._register_model(model)

    # ------------------------------------------------------------------ components
    def _register_model(self, model: GenerativeModel) -> None:
        if not isinstance(model, self.model_class):
            hint = " Use GenerativePipeline for any vaegan model." if isinstance(model, GenerativeModel) else ""
            raise TypeError(f"{type(self).__name__} takes a {self.model_class.__name__}, got "
                            f"{type(model).__name__}.{hint}")
        self.register_modules(**{self.component_name: model})

    def __setattr__(self, name: str, value: Any) -> None:
        # register_modules and component replacement both end here; diffusers recorded (module path, class),
        # which it cannot load back: record ("vaegan", class) instead.
        super().__setattr__(name, value)
        if isinstance(value, GenerativeModel) and "_internal_dict" in self.__dict__ and name in self.config:
            entry = _library_tuple(value)
            if entry is not None:
                self.register_to_config(**{name: entry})

    @property
    def generative_model(self) -> GenerativeModel:
        """The pipeline's vaegan model (``pipe.vae``, ``pipe.gan``, ``pipe.ae`` or ``pipe.model``)."""
        return getattr(self, self.component_name)

    # ------------------------------------------------------------------ generation
    @staticmethod
    def _check_output_type(output_type: str) -> None:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported; allowed values: "
                             f"{', '.join(map(repr, OUTPUT_TYPES))}.")

    def _output(self, images: torch.Tensor, output_type: str, return_dict: bool) -> ImagePipelineOutput | tuple:
        """``(N, C, H, W)`` in [0, 1] -> PIL images, a numpy array ``(N, H, W, C)`` or the tensor itself."""
        if output_type == "pt":
            result: Any = images
        else:
            result = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                result = self.numpy_to_pil(result)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=result) if return_dict else (result,)

    @property
    def id2label(self) -> dict[int, str]:
        """Class index -> name for a class-conditional model with class names (as ``DiTPipeline.id2label``)."""
        names = self.generative_model.class_names or []
        return dict(enumerate(names))

    def get_label_ids(self, label: str | list[str]) -> list[int]:
        """Class names -> class indices (as ``DiTPipeline.get_label_ids``); unknown names raise a ValueError."""
        labels = [label] if isinstance(label, str) else list(label)
        return self.generative_model.prepare_class_labels(labels).tolist()

    @torch.no_grad()
    def __call__(self, batch_size: int = 1, generator: torch.Generator | list[torch.Generator] | None = None,
                 temperature: float | None = None, output_type: str = "pil", return_dict: bool = True,
                 class_labels: Any = None) -> ImagePipelineOutput | tuple:
        """Generate ``batch_size`` images from the model's prior.

        Args:
            batch_size: number of images. With a list of ``class_labels`` it may be left at 1: one image per label.
            generator: ``torch.Generator`` (or one per image) making generation deterministic; the same seed gives
                the same images as ``model.sample(batch_size, generator=...)``.
            temperature: scale of the prior's spread (below 1: more typical, less varied images); default: the
                model's ``default_temperature`` (1, or the ``sample_temperature`` its config stores).
            output_type: ``"pil"`` (list of PIL images), ``"np"`` (float array ``(N, H, W, C)`` in [0, 1]) or
                ``"pt"`` (tensor ``(N, C, H, W)`` in [0, 1]).
            return_dict: return an ``ImagePipelineOutput`` (else a tuple ``(images,)``).
            class_labels: class-conditional models: one label (index or class name) for every image, or one per
                image; drawn uniformly with ``generator`` when omitted.
        """
        self._check_output_type(output_type)
        one_per_image = isinstance(class_labels, list | tuple) or (
            isinstance(class_labels, torch.Tensor | np.ndarray) and class_labels.ndim == 1)
        if batch_size == 1 and one_per_image:
            batch_size = len(class_labels)
        model = self.generative_model
        images = model.sample(batch_size, generator=generator, temperature=model.resolve_temperature(temperature),
                              class_labels=class_labels)
        return self._output(images, output_type, return_dict)

    def _as_endpoint(self, value: Any) -> torch.Tensor:
        """A seed (int), a PIL image, or a latent vector / image tensor -> something ``model.interpolate`` takes."""
        model = self.generative_model
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return model.prior_latents(1, generator=torch.Generator().manual_seed(int(value)))[0]
        if isinstance(value, Image.Image):
            channels = model.image_shape[0]
            mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
            if mode is None:
                raise ValueError(f"cannot turn a PIL image into a {channels}-channel image; pass a tensor instead.")
            size = model.image_shape[1:]
            if value.size != (size[1], size[0]):
                raise ValueError(f"expected a {size[1]}x{size[0]} image, got {value.size[0]}x{value.size[1]}.")
            array = np.asarray(value.convert(mode), dtype=np.float32) / 255.0
            return torch.from_numpy(array.reshape(*size, channels)).permute(2, 0, 1)
        return torch.as_tensor(value)

    @torch.no_grad()
    def interpolate(self, start: Any, end: Any, steps: int = 8, mode: str = "slerp", output_type: str = "pil",
                    return_dict: bool = True, class_labels: Any = None) -> ImagePipelineOutput | tuple:
        """Images along the latent path from ``start`` to ``end`` (both included).

        Models with a latent space only. ``start`` / ``end`` are seeds (ints: the latent
        ``pipe(generator=torch.Generator().manual_seed(seed))`` decodes), latent vectors, or images (``(C, H, W)``
        tensors in [0, 1] or PIL images; models with an encoder, e.g. AE/VAE: they are encoded first). ``mode`` is
        ``"slerp"`` (spherical) or ``"lerp"`` (straight line). A class-conditional model needs ``class_labels``: one
        label for the whole path, or one per step.
        """
        self._check_output_type(output_type)
        model = self.generative_model
        if not model.has_latent_space:
            raise NotImplementedError(f"{type(model).__name__} has no latent space, so it cannot interpolate; "
                                      "generate images with pipe(batch_size=..., generator=...) instead.")
        images = model.interpolate(self._as_endpoint(start), self._as_endpoint(end), steps=steps, mode=mode,
                                   class_labels=class_labels)
        return self._output(images, output_type, return_dict)

    # ------------------------------------------------------------------ save / load / share
    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True,
                        variant: str | None = None, max_shard_size: int | str | None = None,
                        push_to_hub: bool = False, *, model_card: bool = True, repo_id: str | None = None,
                        **kwargs: Any) -> None:
        """Write ``model_index.json``, the model's subfolder (config, safetensors weights, card) and a card.

        ``repo_id`` is the Hub id the cards' usage snippets load (``push_to_hub`` passes it), else the folder.
        """
        if not safe_serialization:
            raise CheckpointError("vaegan saves safetensors only; drop safe_serialization=False.")
        if push_to_hub:
            raise ValueError("use pipe.push_to_hub(repo_id) to upload; save_pretrained only writes a folder.")
        from .cards import write_model_card, write_pipeline_card

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        name, model = self.component_name, self.generative_model
        extra = {k: v for k, v in (("variant", variant), ("max_shard_size", max_shard_size)) if v is not None}
        model.save_pretrained(folder / name, model_card=False, **extra)
        if model_card:
            write_model_card(model, folder / name, repo_id=repo_id, load_path=folder, subfolder=name)
        # model_index.json as diffusers writes it, less the local path a loaded pipeline came from.
        index = {k: v for k, v in self.config.items() if k != "_name_or_path"}
        index.update(_class_name=type(self).__name__, _diffusers_version=diffusers.__version__)
        (folder / self.config_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        if model_card:
            write_pipeline_card(self, folder, repo_id=repo_id)

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, revision: str | None = None, create_pr: bool = False,
                    **save_kwargs: Any) -> str:
        """Upload the pipeline folder (``model_index.json``, cards, the model subfolder) in one commit.

        Returns the URL of the commit.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        name = self.component_name
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(Path(tmp) / "pipeline", repo_id=repo_id, **save_kwargs)
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=Path(tmp) / "pipeline", revision=revision, create_pr=create_pr,
                commit_message=commit_message or f"Upload {type(self).__name__} with vaegan",
                delete_patterns=[f"{name}/diffusion_pytorch_model*", f"{name}/samples.png"],
            )
        return commit.commit_url

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "GenerativePipeline":
        """Load a saved vaegan pipeline (folder or Hub repo; diffusers' arguments: ``revision``, ``token``, ...).

        Weights are read from safetensors only, by the model class's strict ``from_pretrained``. On
        ``GenerativePipeline`` this returns whichever vaegan pipeline ``model_index.json`` names.
        """
        if kwargs.pop("trust_remote_code", False):
            raise ValueError("vaegan never runs code from a model repo; remove trust_remote_code.")
        if kwargs.get("custom_pipeline") is not None or kwargs.get("custom_revision") is not None:
            raise ValueError("vaegan pipelines never load pipeline code from a repo; remove custom_pipeline.")
        if kwargs.get("use_safetensors") is False:
            raise CheckpointError("vaegan loads safetensors weights only; remove use_safetensors=False.")
        kwargs["use_safetensors"] = True
        source = str(pretrained_model_name_or_path)
        download = {k: kwargs[k] for k in CONFIG_DOWNLOAD_KWARGS if k in kwargs and k != "subfolder"}
        config = load_config(cls, source, download)  # a JSON object, or one ConfigError naming model_index.json
        name = config.get("_class_name")
        try:  # a list names custom pipeline code: never a vaegan pipeline
            target = get_pipeline_class(name) if isinstance(name, str) else None
        except ConfigError:
            target = None
        if target is None or not issubclass(target, cls):
            raise ConfigError(
                f"{source}: model_index.json describes a {name!r} pipeline, not a "
                f"{cls.__name__}; vaegan pipelines are {', '.join(available_pipelines())}."
                + (f" Load it with {target.__name__}.from_pretrained." if target is not None else "")
            )
        try:
            return super(GenerativePipeline, target).from_pretrained(source, **kwargs)
        except OSError as err:
            if isinstance(err, CheckpointError) or "safetensors" not in str(err):
                raise
            raise CheckpointError(
                f"{source} has no safetensors weights for its model ({err}). vaegan loads safetensors weights only "
                "and never unpickles *.bin/*.pt/*.pkl files. Save the pipeline with save_pretrained (or push_to_hub)."
            ) from err


class VAEPipeline(GenerativePipeline):
    """Sample from a :class:`~vaegan.VAE`'s standard-normal prior; ``interpolate`` also takes images."""

    component_name = "vae"
    model_class = VAE
    model_cpu_offload_seq = "vae"

    def __init__(self, vae: VAE):
        DiffusionPipeline.__init__(self)
        self._register_model(vae)


class GANPipeline(GenerativePipeline):
    """Sample from a :class:`~vaegan.GAN`'s generator; ``interpolate`` takes seeds or latent vectors."""

    component_name = "gan"
    model_class = GAN
    model_cpu_offload_seq = "gan"

    def __init__(self, gan: GAN):
        DiffusionPipeline.__init__(self)
        self._register_model(gan)


class AEPipeline(GenerativePipeline):
    """Sample from an :class:`~vaegan.AE`'s fitted prior (``ae.fit_prior`` first); ``interpolate`` takes images."""

    component_name = "ae"
    model_class = AE
    model_cpu_offload_seq = "ae"

    def __init__(self, ae: AE):
        DiffusionPipeline.__init__(self)
        self._register_model(ae)


class VQVAEPipeline(GenerativePipeline):
    """Sample from a :class:`~vaegan.VQVAE` with its learned prior (the pair: the model's own ``vqvae/`` and
    ``prior/`` components live in the pipeline's ``vqvae/`` folder)."""

    component_name = "vqvae"
    model_class = VQVAE
    model_cpu_offload_seq = "vqvae"

    def __init__(self, vqvae: VQVAE):
        DiffusionPipeline.__init__(self)
        self._register_model(vqvae)


#: vaegan's own pipelines (registered below; plugins add theirs with :func:`register_pipeline`).
_PIPELINE_CLASSES: dict[str, type[GenerativePipeline]] = {
    cls.__name__: cls for cls in (GenerativePipeline, VAEPipeline, GANPipeline, AEPipeline, VQVAEPipeline)
}


def _register_with_diffusers() -> None:
    """Register the built-in pipelines: ``diffusers.<Name>`` then resolves to them (where
    ``DiffusionPipeline.from_pretrained`` looks)."""
    for cls in _PIPELINE_CLASSES.values():
        register_pipeline(cls)
    # ``diffusers.pipelines.vaegan`` (model_index.json's library name) is set by ``import vaegan`` itself.


_register_with_diffusers()
