"""vaegan's model families."""

from .ae import AE
from .auto import AutoModel
from .base import CAPABILITIES, GenerativeModel
from .gan import GAN
from .pixelcnn import PixelCNN
from .registry import available_models, get_model_class, register_model
from .vae import VAE
from .vqvae import VQVAE

for _cls in (AE, VAE, GAN, PixelCNN, VQVAE):
    register_model(_cls)

__all__ = ["AE", "CAPABILITIES", "GAN", "VAE", "PixelCNN", "VQVAE", "AutoModel", "GenerativeModel", "available_models",
           "get_model_class", "register_model"]
