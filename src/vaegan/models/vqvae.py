"""VQ-VAE (van den Oord et al., 2017) with a learned prior over its code grids: one model, two components.

The autoencoder is diffusers' ``VQModel`` (its ``Encoder`` / ``Decoder`` blocks) with an
:class:`~vaegan.models.quantize.EMAVectorQuantizer`: an image becomes a grid of discrete codes (7 x 7 for 28 x 28
digits with three blocks) and decodes back. It samples only with its second part, a
:class:`~vaegan.models.codeprior.CodePrior` (a Gated PixelCNN over code grids, class-conditional with
``num_classes``), trained in a second stage on the codes of the training images with the encoder frozen.

Saved, the pair is one folder with two components, like diffusers' ``VQDiffusionPipeline``::

    config.json   the pair's config (this class)      README.md   the card
    vqvae/        config.json (prior: null) + weights: loads alone as an autoencoder (subfolder="vqvae")
    prior/        config.json (CodePrior) + weights
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..errors import ConfigError
from . import conditioning
from .augment import shift
from .base import GenerativeModel
from .clusters import MAX_CLUSTER_SIDE, sampling_conditions
from .codeprior import CodePrior
from .serialization import load_config, pin_revision
from .validation import MAX_IMAGE_SIZE, check_choice, check_float, check_int, check_int_list

if TYPE_CHECKING:
    from diffusers import VQModel

    from .quantize import EMAVectorQuantizer

PRIORS = ("pixelcnn",)
RECONSTRUCTION_LOSSES = ("bce", "mse")
#: The pair's component folders.
AUTOENCODER_FOLDER, PRIOR_FOLDER = "vqvae", "prior"
#: The pair's config keys that are the prior's, and the CodePrior argument each sets.
PRIOR_KEYS = {"prior_embedding_dim": "embedding_dim", "prior_channels": "channels", "prior_layers": "num_layers",
              "prior_kernel_size": "kernel_size", "prior_head_channels": "head_channels",
              "prior_dilations": "dilations", "num_classes": "num_classes", "prior_clusters": "clusters"}


class VQVAE(GenerativeModel):
    r"""VQ-VAE with a PixelCNN prior over its code grids, trained in two stages (``vqvae``, then ``prior``).

    Parameters:
        image_size, in_channels: the images (square).
        block_out_channels: widths of the encoder's blocks (the decoder mirrors them); every block but the last
            halves the size, so three blocks turn 28 x 28 into a 7 x 7 code grid.
        layers_per_block: residual blocks per encoder block (the decoder has one more).
        norm_num_groups: groups of the group norms (must divide every width).
        code_dim: values per code vector; num_codes: codebook size K.
        commitment_cost: weight of ``||z - sg(e)||^2`` (beta of the paper).
        ema_decay: the codebook follows the running mean of its assigned encoder outputs with this decay;
            null learns it by gradients (the paper's codebook loss).
        dead_code_threshold: a code whose running count of assignments per batch falls below this restarts at an
            encoder output of the batch (EMA codebooks only).
        reconstruction_loss: ``bce`` (per-pixel binary cross-entropy, grey digits) or ``mse``.
        prior: ``pixelcnn`` (the learned prior over code grids; the model samples) or null (the autoencoder alone).
        prior_embedding_dim, prior_channels, prior_layers, prior_kernel_size, prior_head_channels, prior_dilations:
            the prior's code embedding and its Gated PixelCNN (see :class:`~vaegan.PixelCNN`).
        prior_max_shift: the prior trains on the codes of training digits shifted by up to this many pixels in each
            direction (a fresh shift per image and step): new code grids of the same digits, against the prior
            memorising the training grids; 0 encodes the digits as they are.
        prior_clusters: an unconditional pair whose prior is conditioned on one of this many k-means clusters of the
            training digits (fitted when the prior stage starts), drawn with their training shares when sampling: a
            global choice (which kind of digit) before the codes, like a cluster-conditioned GAN's; null: none.
        num_classes, class_names: a class-conditional prior (the autoencoder itself reads no labels).
    """

    family = "vqvae"
    training_phases = ("vqvae", "prior")
    training_stages = (("vqvae", ("vqvae",)), ("prior", ("prior",)))
    component_folders = (AUTOENCODER_FOLDER, PRIOR_FOLDER)

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        block_out_channels: Sequence[int] = (16, 32, 32),
        layers_per_block: int = 1,
        norm_num_groups: int = 8,
        code_dim: int = 32,
        num_codes: int = 128,
        commitment_cost: float = 0.25,
        ema_decay: float | None = 0.99,
        dead_code_threshold: float = 1.0,
        reconstruction_loss: str = "bce",
        prior: str | None = "pixelcnn",
        prior_embedding_dim: int = 32,
        prior_channels: int = 64,
        prior_layers: int = 8,
        prior_kernel_size: int = 3,
        prior_head_channels: int = 128,
        prior_dilations: Sequence[int] | None = None,
        prior_max_shift: int = 0,
        prior_clusters: int | None = None,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
    ):
        super().__init__()
        check_int("image_size", image_size, minimum=2, maximum=MAX_IMAGE_SIZE)
        check_int("in_channels", in_channels, maximum=64)
        widths = check_int_list("block_out_channels", block_out_channels, maximum=4096)
        check_int("layers_per_block", layers_per_block, minimum=0, maximum=16)
        check_int("norm_num_groups", norm_num_groups, maximum=4096)
        if any(width % norm_num_groups for width in widths):
            raise ConfigError(f"norm_num_groups={norm_num_groups} must divide every width of block_out_channels="
                              f"{widths}; e.g. norm_num_groups: 8 with widths that are multiples of 8.")
        factor = 2 ** (len(widths) - 1)
        if image_size % factor:
            raise ConfigError(f"block_out_channels has {len(widths)} blocks, which halve the size {len(widths) - 1} "
                              f"times, but image_size={image_size} is not divisible by {factor}; use fewer blocks.")
        check_int("code_dim", code_dim, maximum=4096)
        check_int("num_codes", num_codes, minimum=2, maximum=65_536)
        check_float("commitment_cost", commitment_cost)
        if ema_decay is not None:
            check_float("ema_decay", ema_decay, maximum=1.0, max_inclusive=False)
        check_float("dead_code_threshold", dead_code_threshold)
        check_choice("reconstruction_loss", reconstruction_loss, RECONSTRUCTION_LOSSES)
        if prior is not None:
            check_choice("prior", prior, PRIORS)
        check_int("prior_max_shift", prior_max_shift, minimum=0, maximum=image_size // 2)
        conditioning.check_class_config(num_classes, class_names)
        if prior is None and num_classes is not None:
            raise ConfigError("num_classes makes the prior class-conditional, but prior is null; set prior: pixelcnn "
                              "or drop num_classes.")
        if prior is None and prior_clusters is not None:
            raise ConfigError("prior_clusters conditions the prior on clusters, but prior is null; set prior: pixelcnn "
                              "or drop prior_clusters.")

        def factory() -> dict[str, nn.Module]:
            nets: dict[str, nn.Module] = {"vqvae": self._autoencoder(image_size, in_channels, widths, layers_per_block,
                                                                     norm_num_groups, code_dim, num_codes,
                                                                     commitment_cost, ema_decay, dead_code_threshold)}
            if prior is not None:
                nets["code_prior"] = CodePrior(**self._prior_kwargs(self.config))
            return nets

        self._build(factory)

    @staticmethod
    def _autoencoder(image_size: int, in_channels: int, widths: list[int], layers_per_block: int,
                     norm_num_groups: int, code_dim: int, num_codes: int, commitment_cost: float,
                     ema_decay: float | None, dead_code_threshold: float) -> VQModel:
        # Imported here: diffusers' autoencoder modules are heavy, and `import vaegan` must stay light.
        from diffusers import VQModel

        from .quantize import EMAVectorQuantizer

        vq = VQModel(in_channels=in_channels, out_channels=in_channels,
                     down_block_types=("DownEncoderBlock2D",) * len(widths),
                     up_block_types=("UpDecoderBlock2D",) * len(widths), block_out_channels=tuple(widths),
                     layers_per_block=layers_per_block, latent_channels=code_dim, sample_size=image_size,
                     num_vq_embeddings=num_codes, norm_num_groups=norm_num_groups, vq_embed_dim=code_dim)
        vq.quantize = EMAVectorQuantizer(num_codes, code_dim, commitment_cost, ema_decay, dead_code_threshold)
        return vq

    @staticmethod
    def _prior_kwargs(config: Any) -> dict[str, Any]:
        """The :class:`CodePrior` arguments of a pair's config."""
        grid = config["image_size"] // 2 ** (len(config["block_out_channels"]) - 1)
        kwargs = {"num_codes": config["num_codes"], "grid_size": grid}
        kwargs.update({arg: config.get(key) for key, arg in PRIOR_KEYS.items()})
        if kwargs["clusters"] is not None:
            kwargs["cluster_features"] = config["in_channels"] * min(config["image_size"], MAX_CLUSTER_SIDE) ** 2
        if kwargs["dilations"] is not None:
            kwargs["dilations"] = list(kwargs["dilations"])
        return kwargs

    # ------------------------------------------------------------------ codes
    @property
    def quantizer(self) -> EMAVectorQuantizer:
        return self.vqvae.quantize

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(height, width)`` of a code grid."""
        size = self.config.image_size // 2 ** (len(self.config.block_out_channels) - 1)
        return (size, size)

    @property
    def codebook_size(self) -> int:
        return self.config.num_codes

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), got "
                             f"{tuple(images.shape)}.")
        return images.to(self.device, self.dtype)

    def _labels(self, class_labels: Any, count: int) -> torch.Tensor | None:
        """Labels are optional for the autoencoder (it reads none); given ones are checked."""
        return None if class_labels is None else self.prepare_class_labels(class_labels, count)

    def encode_images(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images -> their quantized latents ``(B, code_dim, h, w)``: the codebook vector of every position."""
        self._labels(class_labels, len(images))
        return self.quantizer.lookup(self.encode_codes(images))

    def encode_codes(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> their code grids ``(B, h, w)`` (indices into the codebook)."""
        self._labels(class_labels, len(images))
        with self._eval_mode():
            return self.quantizer.codes(self.vqvae.encode(self._check_images(images) * 2 - 1).latents)

    def _decode_logits(self, quantized: torch.Tensor) -> torch.Tensor:
        return self.vqvae.decode(quantized, force_not_quantize=True).sample

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code grids ``(B, h, w)`` -> images ``(B, C, H, W)`` in [0, 1]."""
        codes = torch.as_tensor(codes, device=self.device)
        if codes.ndim != 3 or tuple(codes.shape[1:]) != self.grid_shape or codes.dtype != torch.long:
            raise ValueError(f"expected code grids of shape (B, {self.grid_shape[0]}, {self.grid_shape[1]}) and "
                             f"dtype long, got {tuple(codes.shape)} {codes.dtype}.")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must be indices from 0 to {self.codebook_size - 1}.")
        with self._eval_mode():
            return torch.sigmoid(self._decode_logits(self.quantizer.lookup(codes)))

    def reconstruct(self, images: torch.Tensor, class_labels: conditioning.ClassLabels | None = None) -> torch.Tensor:
        """Encode to codes and decode ``images`` ``(B, C, H, W)``; labels are optional (the autoencoder reads none)."""
        return self.decode_codes(self.encode_codes(images, class_labels=class_labels))

    # ------------------------------------------------------------------ the prior
    @property
    def prior(self) -> CodePrior | None:
        """The learned prior over code grids (the module ``code_prior``); None for the autoencoder alone."""
        return self._modules.get("code_prior")

    @property
    def can_sample(self) -> bool:
        return self.prior is not None and (not self.config.prior_clusters or self.prior.cluster_set.fitted)

    def _prior_labels(self, prior: CodePrior, class_labels: conditioning.ClassLabels | None, count: int,
                      generator: torch.Generator | None = None, images: torch.Tensor | None = None,
                      known: torch.Tensor | None = None) -> torch.Tensor | None:
        """What the prior reads: the classes, the clusters (``prior_clusters``) or nothing."""
        clusters = prior.cluster_set if self.config.prior_clusters else None
        return sampling_conditions(self, clusters, class_labels, count, generator, images, known,
                                   owner="VQVAE's prior (train it with `--stage prior`)")

    def _require_prior(self, use: str) -> CodePrior:
        if self.prior is None:
            raise RuntimeError(
                f"This VQVAE is the autoencoder alone (prior: null), so it cannot {use}: it needs a prior over its "
                "code grids. Train one on its codes with `vaegan train configs/mnist-vqvae.yaml --init-from "
                "THIS_FOLDER --stage prior`, or load the whole model (the folder above vqvae/, without "
                "subfolder=\"vqvae\").")
        return self.prior

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float | None = None,
               class_labels: conditioning.ClassLabels | None = None) -> torch.Tensor:
        """Draw code grids from the prior, position by position, and decode them: ``(N, C, H, W)`` in [0, 1].

        ``temperature`` divides the prior's logits; ``class_labels`` (class-conditional prior) are drawn uniformly
        with ``generator`` when left out.
        """
        prior = self._require_prior("sample")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
        labels = self._prior_labels(prior, class_labels, num_samples, generator)
        codes = prior.sample_codes(num_samples, generator, self.resolve_temperature(temperature), labels)
        return self.decode_codes(codes)

    def complete(self, images: torch.Tensor, known_mask: torch.Tensor, generator: torch.Generator | None = None,
                 num_completions: int = 1, class_labels: conditioning.ClassLabels | None = None,
                 temperature: float | None = None) -> torch.Tensor:
        """Complete images from their known pixels with the prior over code grids.

        The images are encoded; a code is kept when every pixel of its patch is known (``known_mask``: ``(H, W)``,
        ``(B, H, W)`` or ``(B, 1, H, W)``, True where a pixel is kept), the others are drawn by the prior in
        raster order given the codes before them, the grids are decoded and the known pixels pasted back. Returns
        ``(B * num_completions, C, H, W)``, the completions of each image together.
        """
        prior = self._require_prior("complete images")
        images = torch.as_tensor(images)
        images = self._check_images(images.unsqueeze(0) if images.ndim == 3 else images)
        known = self._known_mask(known_mask, len(images))
        if not isinstance(num_completions, int) or num_completions < 1:
            raise ValueError(f"num_completions must be an integer >= 1, got {num_completions!r}.")
        labels = self._prior_labels(prior, class_labels, len(images), images=images, known=known)
        factor = self.config.image_size // self.grid_shape[0]
        known_codes = F.avg_pool2d(known.to(self.dtype), factor)[:, 0] == 1
        codes = self.encode_codes(images).repeat_interleave(num_completions, dim=0)
        known_codes = known_codes.repeat_interleave(num_completions, dim=0)
        if labels is not None:
            labels = labels.repeat_interleave(num_completions)
        drawn = prior.sample_codes(len(codes), generator, self.resolve_temperature(temperature), labels, codes=codes,
                                   known=known_codes)
        images, known = images.repeat_interleave(num_completions, 0), known.repeat_interleave(num_completions, 0)
        return torch.where(known, images, self.decode_codes(drawn))

    # ------------------------------------------------------------------ training
    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        if phase == "prior":
            if self.prior is None:
                raise ConfigError("This VQVAE has no prior (prior: null), so its stage 'prior' has nothing to train; "
                                  "set model.prior: pixelcnn in the training config (or train --stage vqvae only).")
            return list(self.prior.parameters())
        codebook = self.quantizer.embedding.weight
        ema = self.config.ema_decay is not None  # the EMA moves the codebook, not the optimizer
        return [p for p in self.vqvae.parameters() if not (ema and p is codebook)]

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if phase == "prior":
            if self.config.prior_max_shift:
                images = shift(images, self.config.prior_max_shift)
            codes = self.encode_codes(images)  # the frozen autoencoder's codes
            prior = self._require_prior("train a prior")
            if self.config.prior_clusters:
                class_labels = prior.cluster_set.assign(images)
            nll = -prior.log_prob(codes, class_labels).mean()
            return {"loss": nll / math.prod(self.grid_shape), "nll": nll.detach()}
        latents = self.vqvae.encode(images * 2 - 1).latents
        quantized, vq_loss, codes = self.quantizer.quantize(latents, update=self.training)
        logits = self._decode_logits(quantized)
        if self.config.reconstruction_loss == "bce":
            recon = F.binary_cross_entropy_with_logits(logits, images)
        else:
            recon = F.mse_loss(torch.sigmoid(logits), images)
        usage = torch.bincount(codes.flatten(), minlength=self.codebook_size).float()
        return {"loss": recon + vq_loss, "reconstruction": recon.detach(), "vq": vq_loss.detach(),
                "perplexity": code_perplexity(usage)}

    def on_stage_start(self, stage: str, batches: Iterable[torch.Tensor]) -> None:
        """A cluster-conditioned prior clusters the training digits first (unless it has its clusters already)."""
        if stage == "prior" and self.config.prior_clusters and not self.prior.cluster_set.fitted:
            self.prior.cluster_set.fit(batches)

    def adapt_pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """An autoencoder alone (``prior: null``) fine-tuned into a pair gets a fresh prior (``--stage prior``)."""
        fresh = {k: v for k, v in self.state_dict().items() if k.startswith("code_prior.") and k not in state}
        return {**state, **fresh}

    # ------------------------------------------------------------------ the card
    def card_sections(self) -> list[str]:
        h, w = self.grid_shape
        config = self.config
        learned = "EMA updates, dead codes restarted" if config.ema_decay is not None else "learned by gradients"
        text = (f"A VQ-VAE encodes an image into a {h} x {w} grid of codes from a codebook of {config.num_codes} "
                f"vectors of {config.code_dim} values ({learned}) and decodes the grid back.")
        if self.prior is None:
            return [text + " This folder holds the autoencoder alone: it reconstructs and encodes images "
                    "(`encode_codes`), and needs a prior over its code grids to sample (`vaegan train CONFIG "
                    "--init-from FOLDER --stage prior`)."]
        conditional = f", conditioned on the class ({config.num_classes} classes)" if config.num_classes else ""
        if config.prior_clusters:
            conditional = (f", conditioned on one of {config.prior_clusters} k-means clusters of the training digits, "
                           "drawn with their training shares")
        return [text + f" The model has two parts: the VQ-VAE (`{AUTOENCODER_FOLDER}/`, loads alone with "
                f"`subfolder=\"{AUTOENCODER_FOLDER}\"`) and its learned prior (`{PRIOR_FOLDER}/`), a Gated PixelCNN "
                f"over code grids ({config.prior_layers} layers, {config.prior_channels} channels{conditional}) that "
                "draws the codes position by position; `sample` decodes them. The evaluation's `codebook_perplexity` "
                "and `dead_codes` tell how much of the codebook held-out digits use."]

    # ------------------------------------------------------------------ save / load: two components
    def autoencoder(self) -> VQVAE:
        """The autoencoder alone (``prior: null``), sharing this model's weights."""
        if self.prior is None:
            return self
        config = {k: v for k, v in self.config.items() if not k.startswith("_")}
        config.update(prior=None, prior_clusters=None, num_classes=None, class_names=None)
        part = type(self).from_config(config)
        part.vqvae = self.vqvae  # shared: the part's own fresh networks are dropped
        return part

    def save_files(self, folder: Path, **kwargs: Any) -> None:
        """The pair: its config at the root, the autoencoder in ``vqvae/`` and the prior in ``prior/``."""
        if self.prior is None:
            return super().save_files(folder, **kwargs)
        self.save_config(folder)
        ModelMixin.save_pretrained(self.autoencoder(), folder / AUTOENCODER_FOLDER, **kwargs)
        ModelMixin.save_pretrained(self.prior, folder / PRIOR_FOLDER, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a pair (its ``vqvae/`` and ``prior/`` components) or an autoencoder alone, strictly (see
        :meth:`GenerativeModel.from_pretrained`); ``subfolder="vqvae"`` loads the autoencoder of a pair alone."""
        source = str(pretrained_model_name_or_path)
        kwargs = pin_revision(source, kwargs)  # one commit for the root and both components
        config = load_config(cls, source, kwargs)
        if config.get("prior") is None:
            return super().from_pretrained(source, **kwargs)
        want_info = kwargs.pop("output_loading_info", False)
        cls.check_config_dict(config, source)
        root = kwargs.get("subfolder")
        part = lambda name: {**kwargs, "subfolder": f"{root}/{name}" if root else name}  # noqa: E731
        autoencoder = super().from_pretrained(source, **part(AUTOENCODER_FOLDER))
        prior = CodePrior.from_pretrained(source, **part(PRIOR_FOLDER))
        model = cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        expected = {k: v for k, v in model.autoencoder().config.items() if not k.startswith("_")}
        found = {k: v for k, v in autoencoder.config.items() if not k.startswith("_")}
        wanted = cls._prior_kwargs(model.config)
        differs = sorted(k for k in expected if expected[k] != found.get(k)) + sorted(
            f"prior/{k}" for k in wanted if wanted[k] != prior.config.get(k))
        if differs:
            raise ConfigError(f"{source}: the components do not match the root config.json ({', '.join(differs)}); "
                              "the folder is inconsistent: save the model again with save_pretrained.")
        model.vqvae, model.code_prior = autoencoder.vqvae, prior
        info = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
        return (model, info) if want_info else model


def code_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(entropy)`` of a code histogram: the number of equally used codes with the same spread."""
    probs = counts / counts.sum().clamp_min(1)
    return torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum())
