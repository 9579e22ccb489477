"""Generative adversarial networks: the 2014 MLP GAN, DCGAN, and their objectives.

Objectives (``loss``):

* ``minimax`` — Goodfellow et al. (2014): D maximises ``log D(x) + log(1 - D(G(z)))``, G minimises
  ``log(1 - D(G(z)))`` (saturates early in training);
* ``non_saturating`` — the same D, G maximises ``log D(G(z))`` instead;
* ``wgan`` — Arjovsky et al. (2017): critic ``D(fake) - D(real)``, weights clipped to ``clip_value``;
* ``wgan_gp`` — Gulrajani et al. (2017): the critic loss plus ``gp_weight * (||grad D(x_hat)|| - 1)^2``;
* ``hinge`` — Lim & Ye (2017), SNGAN / BigGAN: D minimises ``relu(1 - D(x)) + relu(1 + D(G(z)))``, G
  maximises ``D(G(z))``; usually with ``discriminator_norm="spectral"`` (Miyato et al., 2018).

``instance_noise`` adds Gaussian noise to the discriminator's real and fake inputs (annealed linearly
to zero over ``instance_noise_anneal_steps`` when that is set), a regulariser against overconfident D.
``r1_gamma`` adds ``r1_gamma / 2 * E[||grad_x D(x)||^2]`` on real images to D's loss (Mescheder et al., 2018).
``mode_seeking`` adds ``mode_seeking / (ratio + 1e-5)`` to G's loss, where ``ratio`` is the mean over pairs of fakes
of the same class / cluster of ``mean|G(z1) - G(z2)| / mean|z1 - z2|`` (Mao et al., 2019): a conditional generator
that ignores ``z`` (one image per class) pays for it.
``diff_augment`` (e.g. ``"color,translation,cutout"``) applies DiffAugment to real and fake images before every
discriminator call (:mod:`vaegan.models.augment`). ``ema_decay`` keeps an exponential moving average of the
generator (:mod:`vaegan.models.ema`), which ``sample``, ``interpolate`` and the pipelines use unless
``model.use_ema = False``.

``sample_temperature`` (default 1) is the spread of ``z`` that ``sample``, ``prior_latents`` and every consumer use
when given no temperature. Below 1 it draws ``z`` from a narrower Gaussian (a reduced temperature, as in Glow,
Kingma & Dhariwal 2018; BigGAN's truncation trick makes the same trade): more typical, cleaner images, less variety.
It changes nothing in training.

Class conditioning (``num_classes``): the generator reads a label embedding concatenated with ``z``; the
discriminator is a projection discriminator (``conditioning="projection"``, Miyato & Koyama 2018) or has an
auxiliary classifier (``"acgan"``, Odena et al. 2017) whose cross-entropy on real and generated images joins
both players' losses.

Cluster conditioning (``clusters=K``, :mod:`vaegan.models.clusters`): an unconditional GAN conditioned on the k-means
cluster of each training image instead of a label (projection discriminator); it samples clusters with their
training frequencies and its latent is ``[z, one_hot(cluster)]``. The clusters are fitted by the trainer before the
first step (:meth:`GAN.on_train_start`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.utils.torch_utils import randn_tensor

from ..errors import ConfigError
from . import conditioning as _conditioning
from .augment import diff_augment, parse_policy
from .base import GenerativeModel
from .clusters import MAX_CLUSTER_SIDE, ClusterLatents, ClusterSet
from .ema import EMAWeights
from .nets import MLP, NORMS, DCGANDiscriminator, DCGANGenerator, dcgan_upsamplings
from .outputs import decoder_output
from .regularizers import apply_spectral_norm, r1_penalty
from .validation import MAX_IMAGE_SIZE, MAX_SAMPLE_TEMPERATURE, check_choice, check_float, check_int, check_int_list

if TYPE_CHECKING:
    from diffusers.models.autoencoders.vae import DecoderOutput

ARCHITECTURES = ("mlp", "dcgan")
LOSSES = ("minimax", "non_saturating", "wgan", "wgan_gp", "hinge")


class GAN(GenerativeModel):
    """Generator and discriminator in one model, so one repo holds both networks.

    ``sample`` and ``interpolate`` use the generator only; images are produced in [-1, 1] by a tanh and
    returned in [0, 1] like every vaegan model.
    """

    family = "gan"
    training_phases = ("discriminator", "generator")

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        in_channels: int = 1,
        latent_dim: int = 100,
        architecture: str = "dcgan",
        base_channels: int = 64,
        generator_hidden_dims: Sequence[int] = (256, 512, 1024),
        discriminator_hidden_dims: Sequence[int] = (512, 256),
        discriminator_dropout: float = 0.3,
        discriminator_norm: str | None = None,
        loss: str = "non_saturating",
        n_critic: int | None = None,
        clip_value: float = 0.01,
        gp_weight: float = 10.0,
        instance_noise: float = 0.0,
        instance_noise_anneal_steps: int = 0,
        ema_decay: float = 0.0,
        diff_augment: str | None = None,
        r1_gamma: float = 0.0,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        conditioning: str = "projection",
        clusters: int | None = None,
        mode_seeking: float = 0.0,
        sample_temperature: float = 1.0,
    ):
        super().__init__()
        check_int("image_size", image_size, minimum=4, maximum=MAX_IMAGE_SIZE)
        check_int("in_channels", in_channels, maximum=64)
        check_int("latent_dim", latent_dim)
        check_choice("architecture", architecture, ARCHITECTURES)
        check_choice("loss", loss, LOSSES)
        check_int("base_channels", base_channels, maximum=1024)
        check_float("discriminator_dropout", discriminator_dropout, maximum=1.0, max_inclusive=False)
        # Batch-norm couples the samples of a batch, which breaks the per-sample gradient penalty.
        self.discriminator_norm = discriminator_norm or ("layer" if loss == "wgan_gp" else "batch")
        check_choice("discriminator_norm", self.discriminator_norm, NORMS)
        self.n_critic = n_critic if n_critic is not None else (5 if loss in ("wgan", "wgan_gp") else 1)
        check_int("n_critic", self.n_critic, maximum=100)
        check_float("clip_value", clip_value, minimum=1e-8)
        check_float("gp_weight", gp_weight)
        check_float("instance_noise", instance_noise, maximum=10.0)
        check_int("instance_noise_anneal_steps", instance_noise_anneal_steps, minimum=0, maximum=10**9)
        check_float("ema_decay", ema_decay, maximum=1.0, max_inclusive=False)
        self.augment_policy = parse_policy(diff_augment)
        check_float("r1_gamma", r1_gamma)
        check_float("mode_seeking", mode_seeking, maximum=100.0)
        check_float("sample_temperature", sample_temperature, minimum=0.05, maximum=MAX_SAMPLE_TEMPERATURE)
        _conditioning.check_class_config(num_classes, class_names)
        check_choice("conditioning", conditioning, _conditioning.DISCRIMINATOR_CONDITIONING)
        if conditioning != "projection" and not num_classes:
            raise ConfigError(f"conditioning={conditioning!r} needs a class-conditional GAN; set num_classes, or drop "
                              "conditioning.")
        if clusters is not None:
            check_int("clusters", clusters, minimum=2, maximum=1000)
            if num_classes:
                raise ConfigError("clusters (a cluster-conditioned GAN) and num_classes (a class-conditional GAN) "
                                  "cannot be combined; the labels already split the data. Drop one of them.")
        conditions = num_classes or clusters
        g_inputs = latent_dim + (_conditioning.embedding_dim(conditions) if conditions else 0)
        pixels = in_channels * image_size * image_size
        shape = (in_channels, image_size, image_size)
        if architecture == "dcgan":
            dcgan_upsamplings(image_size)

            def factory() -> dict:
                return {
                    "generator": DCGANGenerator(g_inputs, image_size, in_channels, base_channels),
                    "discriminator": DCGANDiscriminator(image_size, in_channels, base_channels,
                                                        self.discriminator_norm),
                }
        else:
            g_hidden = check_int_list("generator_hidden_dims", generator_hidden_dims)
            d_hidden = check_int_list("discriminator_hidden_dims", discriminator_hidden_dims)

            def factory() -> dict:
                return {
                    "generator": MLP(g_inputs, g_hidden, pixels, "leaky_relu", batch_norm=True,
                                     out_shape=shape),
                    "discriminator": MLP(pixels, d_hidden, 1, "leaky_relu", dropout=discriminator_dropout),
                }

        if num_classes:
            unconditional = factory

            def factory() -> dict:
                nets = unconditional()
                return {"generator": _conditioning.LabelledLatents(nets["generator"], num_classes),
                        "discriminator": _conditioning.ConditionalDiscriminator(nets["discriminator"], num_classes,
                                                                                conditioning)}

        if clusters:
            plain = factory

            def factory() -> dict:
                nets = plain()
                return {"generator": ClusterLatents(nets["generator"], clusters, _conditioning.embedding_dim(clusters)),
                        "discriminator": _conditioning.ConditionalDiscriminator(nets["discriminator"], clusters,
                                                                                "projection")}

        self._build(self._with_spectral_norm(factory) if self.discriminator_norm == "spectral" else factory)
        #: Whether generation uses the EMA generator (when ``ema_decay`` > 0); set False for the raw generator.
        self.use_ema = True
        if ema_decay:
            self.generator_ema = EMAWeights(self.generator, ema_decay)
        if clusters:
            side = min(image_size, MAX_CLUSTER_SIDE)
            self.cluster_set = ClusterSet(clusters, in_channels * side * side)

    @staticmethod
    def _with_spectral_norm(factory):
        def normed() -> dict:
            nets = factory()
            apply_spectral_norm(nets["discriminator"])
            return nets

        return normed

    # ------------------------------------------------------------------ generation
    @property
    def latent_dim(self) -> int:
        """Size of the generator's input: ``z`` (config ``latent_dim``), plus the one-hot cluster when ``clusters``."""
        return self.config.latent_dim + (self.config.get("clusters") or 0)

    @property
    def can_sample(self) -> bool:
        return not self.config.get("clusters") or self.cluster_set.fitted

    def prior_latents(self, num_samples: int, generator: torch.Generator | list[torch.Generator] | None = None,
                      temperature: float | None = None) -> torch.Tensor:
        """``z ~ N(0, temperature^2 I)`` (default: ``sample_temperature``); with ``clusters``, a cluster drawn by its
        training frequency (after ``z``) is appended one-hot."""
        clusters = self.config.get("clusters")
        if not clusters:
            return super().prior_latents(num_samples, generator, temperature)
        if not self.cluster_set.fitted:
            raise RuntimeError("This cluster-conditioned GAN has no fitted clusters yet, so it cannot sample; train it "
                               "with vaegan's trainer (it clusters the training images first) or call "
                               "gan.on_train_start(batches_of_training_images).")
        noise = randn_tensor((num_samples, self.config.latent_dim), generator=generator, device=self.device,
                             dtype=self.dtype) * self.resolve_temperature(temperature)
        drawn = self.cluster_set.draw(num_samples, generator, self.device)
        return torch.cat([noise, F.one_hot(drawn, clusters).to(noise.dtype)], dim=1)

    @property
    def has_ema(self) -> bool:
        """Whether this GAN keeps an EMA generator (``ema_decay`` > 0)."""
        return hasattr(self, "generator_ema")

    def decode_latents(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        generator = self.generator_ema if self.has_ema and self.use_ema else self.generator
        return (torch.tanh(_conditioning.call(generator, latents, class_labels)) + 1) / 2

    def sample(self, num_samples: int, generator: torch.Generator | None = None, temperature: float | None = None,
               class_labels: _conditioning.ClassLabels | None = None, use_ema: bool | None = None) -> torch.Tensor:
        """Like :meth:`GenerativeModel.sample`; ``use_ema=False`` samples the raw (last-step) generator."""
        saved = self.use_ema
        self.use_ema = saved if use_ema is None else use_ema
        try:
            return super().sample(num_samples, generator, temperature, class_labels)
        finally:
            self.use_ema = saved

    def forward(self, latents: torch.Tensor, class_labels: _conditioning.ClassLabels | None = None,
                return_dict: bool = True) -> DecoderOutput | tuple:
        """Generator: latents ``(B, latent_dim)`` -> ``DecoderOutput(sample=images (B, C, H, W) in [0, 1])``.

        A class-conditional GAN needs ``class_labels`` (one label, or one per latent).
        """
        images = self.decode_latents(latents, self.prepare_class_labels(class_labels, len(latents)))
        return decoder_output(images) if return_dict else (images,)

    def discriminate(self, images: torch.Tensor,
                     class_labels: _conditioning.ClassLabels | None = None) -> torch.Tensor:
        """Discriminator logits (critic values for WGANs) ``(B,)`` for images in [0, 1] (and their labels)."""
        acgan = self.num_classes is not None and self.config.conditioning == "acgan"
        labels = None if acgan else self.prepare_class_labels(class_labels, len(images))  # ACGAN's logit: no label
        if self.config.get("clusters"):
            labels = self.cluster_set.assign(images)
        return self._d(images * 2 - 1, labels).squeeze(1)

    def _d(self, images: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator on images in [-1, 1]; an ACGAN's class logits are not part of it."""
        if class_labels is None or self.config.conditioning == "acgan":
            return self.discriminator(images)
        return self.discriminator(images, class_labels)

    # ------------------------------------------------------------------ training
    def phase_parameters(self, phase: str) -> list[torch.nn.Parameter]:
        return list((self.discriminator if phase == "discriminator" else self.generator).parameters())

    def phase_is_active(self, phase: str, step: int) -> bool:
        return phase == "discriminator" or (step + 1) % self.n_critic == 0

    def instance_noise_std(self, step: int) -> float:
        sigma, anneal = self.config.instance_noise, self.config.instance_noise_anneal_steps
        return sigma * max(0.0, 1.0 - step / anneal) if anneal else sigma

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """The ``diff_augment`` policy applied to images in [-1, 1] (the identity when it is off)."""
        return diff_augment(images, self.augment_policy)

    def _critic(self, images: torch.Tensor, noise_std: float,
                class_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator output ``(B,)`` for (already augmented) images in [-1, 1], with instance noise, and the
        ACGAN class loss."""
        if noise_std:
            images = images + noise_std * torch.randn_like(images)
        if class_labels is not None and self.config.conditioning == "acgan":
            logits, class_logits = self.discriminator.forward_with_classes(images)
            return logits.squeeze(1), F.cross_entropy(class_logits, class_labels)
        return self._d(images, class_labels).squeeze(1), images.new_zeros(())

    def compute_loss(self, phase: str, images: torch.Tensor, step: int,
                     class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        real = images * 2 - 1
        latents = torch.randn(len(images), self.config.latent_dim, device=images.device, dtype=images.dtype)
        # Fakes are drawn for the batch's own labels (or clusters), so both players see the data's balance.
        labels, g_labels = class_labels, class_labels
        if self.config.get("clusters"):
            labels, g_labels = self.cluster_set.assign(images), None
            latents = torch.cat([latents, F.one_hot(labels, self.config.clusters).to(latents.dtype)], dim=1)
        noise_std = self.instance_noise_std(step)
        objective = self.config.loss
        wasserstein = objective in ("wgan", "wgan_gp")
        if phase == "generator":
            if self.config.mode_seeking:  # the second half of the batch repeats the first half's classes
                latents, labels, g_labels = self._paired(latents, labels, g_labels)
            fake = torch.tanh(_conditioning.call(self.generator, latents, g_labels))
            d_fake, class_loss = self._critic(self.augment(fake), noise_std, labels)
            if wasserstein or objective == "hinge":
                loss = -d_fake.mean()
            elif objective == "minimax":
                loss = -F.softplus(d_fake).mean()  # log(1 - sigmoid(l)) = -softplus(l)
            else:
                loss = F.softplus(-d_fake).mean()  # -log sigmoid(l)
            logs = {}
            if self.config.mode_seeking:
                ratio = self._diversity_ratio(fake, latents)
                loss = loss + self.config.mode_seeking / (ratio + 1e-5)
                logs["diversity_ratio"] = ratio.detach()
            if self._acgan(labels):
                return {"loss": loss + class_loss, "class_loss": class_loss.detach(), **logs}
            return {"loss": loss, **logs}

        with torch.no_grad():
            fake = self.augment(torch.tanh(_conditioning.call(self.generator, latents, g_labels)))
        if self.config.r1_gamma:  # gradients with respect to the un-augmented real images
            real = real.detach().requires_grad_(True)
        real_seen = self.augment(real)
        (d_real, real_class_loss), (d_fake, fake_class_loss) = (self._critic(real_seen, noise_std, labels),
                                                                self._critic(fake, noise_std, labels))
        logs = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        if wasserstein:
            loss = d_fake.mean() - d_real.mean()
            logs["wasserstein_distance"] = -loss.detach()
            if objective == "wgan_gp":
                penalty = self.gradient_penalty(real_seen, fake, labels)
                loss = loss + self.config.gp_weight * penalty
                logs["gradient_penalty"] = penalty.detach()
        elif objective == "hinge":
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:
            loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        if self.config.r1_gamma:
            penalty = r1_penalty(d_real, real)
            loss = loss + self.config.r1_gamma / 2 * penalty
            logs["r1_penalty"] = penalty.detach()
        if self._acgan(labels):
            loss = loss + real_class_loss + fake_class_loss
            logs["class_loss"] = real_class_loss.detach()
        return {"loss": loss, **logs}

    def _paired(self, latents: torch.Tensor, labels: torch.Tensor | None, g_labels: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Latents and labels whose second half has the first half's classes (clusters), with their own ``z``."""
        h, z_dim = len(latents) // 2, self.config.latent_dim

        def repeat_first_half(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x[:h], x[:h], x[2 * h:]])

        if latents.shape[1] > z_dim:  # a cluster-conditioned GAN's one-hot cluster
            latents = torch.cat([latents[:, :z_dim], repeat_first_half(latents[:, z_dim:])], dim=1)
        labels = None if labels is None else repeat_first_half(labels)
        g_labels = None if g_labels is None else repeat_first_half(g_labels)
        return latents, labels, g_labels

    def _diversity_ratio(self, fake: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Mean over the pairs ``(i, i + B/2)`` of ``mean|fake_i - fake_j| / mean|z_i - z_j|``."""
        h, z_dim = len(fake) // 2, self.config.latent_dim
        images = (fake[:h] - fake[h:2 * h]).abs().flatten(1).mean(1)
        codes = (latents[:h, :z_dim] - latents[h:2 * h, :z_dim]).abs().mean(1)
        return (images / codes).mean()

    def _acgan(self, class_labels: torch.Tensor | None) -> bool:
        return class_labels is not None and self.config.conditioning == "acgan"

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor,
                         class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """``E[(||grad_x D(x)|| - 1)^2]`` on random points between real and fake images."""
        eps = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)
        mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self._d(mixed, class_labels).sum(), mixed, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def adapt_pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Switching ``ema_decay`` on starts the average at the pretrained generator; switching it off drops it."""
        state = {k: v for k, v in state.items() if self.has_ema or not k.startswith("generator_ema.")}
        if self.has_ema and "generator_ema.updates" not in state:
            state.update({f"generator_ema.network.{k[len('generator.'):]}": v.clone() for k, v in state.items()
                          if k.startswith("generator.")})
            state["generator_ema.updates"] = torch.zeros((), dtype=torch.int64)
        return state

    def on_train_start(self, batches: Iterable[torch.Tensor]) -> None:
        """A cluster-conditioned GAN clusters the training images (k-means) unless it has its clusters already."""
        if self.config.get("clusters") and not self.cluster_set.fitted:
            self.cluster_set.fit(batches)

    def after_optimizer_step(self, phase: str) -> None:
        if phase == "generator" and self.has_ema:
            self.generator_ema.update(self.generator)
        if phase == "discriminator" and self.config.loss == "wgan":
            clip = self.config.clip_value
            with torch.no_grad():
                for param in self.discriminator.parameters():
                    param.clamp_(-clip, clip)
