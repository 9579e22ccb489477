"""Small helpers shared by the model tests, and the one table of tiny models they build."""

import torch

from vaegan import AE, GAN, VAE

#: Tiny models of vaegan's families (class, constructor arguments): fast to build, save, load and sample. Tests that
#: train use tests/training_utils.py's configs, sized to learn something in a few steps.
TINY_CONFIGS = {
    "ae": (AE, {"architecture": "conv", "block_out_channels": (4, 8, 8, 8), "latent_dim": 3}),
    "ae-mlp": (AE, {"architecture": "mlp", "hidden_dims": (16,), "latent_dim": 3}),
    "vae": (VAE, {"architecture": "conv", "block_out_channels": (4, 8, 8, 8), "latent_dim": 3}),
    "vae-mlp": (VAE, {"architecture": "mlp", "hidden_dims": (16,), "latent_dim": 3}),
    "gan": (GAN, {"architecture": "dcgan", "base_channels": 4, "latent_dim": 8}),
    "gan-mlp": (GAN, {"architecture": "mlp", "generator_hidden_dims": (16,), "discriminator_hidden_dims": (16,),
                      "latent_dim": 8}),
    "gan-acgan": (GAN, {"architecture": "dcgan", "base_channels": 4, "latent_dim": 8, "conditioning": "acgan",
                        "num_classes": 10}),
}


def tiny_kwargs(name: str, **overrides) -> dict:
    """The constructor arguments of ``TINY_CONFIGS[name]`` with ``overrides``."""
    return {**TINY_CONFIGS[name][1], **overrides}


def tiny_model(name: str, seed: int = 0, **overrides):
    """``TINY_CONFIGS[name]`` built with weights from ``seed`` (an AE's prior is not fitted)."""
    cls, kwargs = TINY_CONFIGS[name]
    torch.manual_seed(seed)
    return cls(**{**kwargs, **overrides})


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``: the same seed gives the same samples."""
    return torch.Generator().manual_seed(seed)
