"""vaegan demo Space: sample, interpolate, explore and reconstruct with AE / VAE / GAN models.

The app is :mod:`vaegan.demo` (published Spaces carry a copy of the vaegan package beside this file). The models
come from the command line, else ``$VAEGAN_MODELS``, else the ``models:`` list of this folder's README.md::

    python spaces/demo/app.py --model outputs/mnist-vae/model --port 7860     # the same as: vaegan demo ...
"""

from pathlib import Path

from vaegan.demo import main

if __name__ == "__main__":
    main(readme=Path(__file__).with_name("README.md"))
