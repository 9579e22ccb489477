"""vaegan's model families."""

from .ae import AE
from .auto import AutoModel
from .base import CAPABILITIES, GenerativeModel
from .gan import GAN
from .registry import available_models, get_model_class, register_model
from .vae import VAE

for _cls in (AE, VAE, GAN):
    register_model(_cls)

__all__ = ["AE", "CAPABILITIES", "GAN", "VAE", "AutoModel", "GenerativeModel", "available_models",
           "get_model_class", "register_model"]
