"""vaegan's model families."""

from .ae import AE
from .auto import AutoModel, available_models, get_model_class, register_model
from .base import GenerativeModel
from .gan import GAN
from .vae import VAE

for _cls in (AE, VAE, GAN):
    register_model(_cls)

__all__ = ["AE", "GAN", "VAE", "AutoModel", "GenerativeModel", "available_models", "get_model_class",
           "register_model"]
