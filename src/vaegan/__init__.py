"""vaegan: autoencoders, VAEs and GANs as first-class citizens of the Hugging Face ecosystem."""

from .errors import CheckpointError, ConfigError, VaeganError, WeightsMismatchError
from .models import AE, GAN, VAE, AutoModel, GenerativeModel, available_models, register_model

__version__ = "0.1.0"

__all__ = ["AE", "GAN", "VAE", "AutoModel", "CheckpointError", "ConfigError", "GenerativeModel",
           "VaeganError", "WeightsMismatchError", "available_models", "register_model"]
