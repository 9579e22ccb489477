"""``import vaegan`` stays lean: no diffusers autoencoder/UNet/transformer packages, scipy or optional libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import vaegan

SRC = str(Path(vaegan.__file__).resolve().parents[1])
# Loaded by diffusers.models.autoencoders (every diffusers autoencoder) and what it pulls in, and pytest (for
# vaegan.testing only); none is needed to build, save, load or sample a vaegan model.
HEAVY = ("diffusers.models.autoencoders", "diffusers.models.unets", "diffusers.models.transformers",
         "diffusers.loaders.single_file_utils", "scipy", "transformers", "datasets", "mlxtend", "matplotlib",
         "gradio", "torchvision", "pytest", "vaegan.testing")


def _fresh(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_vaegan_loads_no_heavy_module():
    loaded = _fresh("import json, sys, vaegan\n"
                    f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))")
    assert loaded == []


def test_outputs_are_diffusers_types_on_first_use():
    """The lazily imported types are diffusers' own, and only the first encode/decode imports them."""
    report = _fresh(
        "import json, sys, torch\n"
        "from vaegan import AE, VAE\n"
        "vae = VAE(latent_dim=2, block_out_channels=[8, 8], strides=[2, 2])\n"
        "before = 'diffusers.models.autoencoders.vae' in sys.modules\n"
        "x = torch.rand(2, 1, 28, 28)\n"
        "dist = vae.encode(x).latent_dist\n"
        "from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution, EncoderOutput\n"
        "print(json.dumps({'before': before, 'dist': isinstance(dist, DiagonalGaussianDistribution),\n"
        "  'kl_shape': list(dist.kl().shape), 'decoded': isinstance(vae.decode(dist.mode()), DecoderOutput),\n"
        "  'encoded': isinstance(AE(block_out_channels=[8, 8], strides=[2, 2]).encode(x), EncoderOutput)}))"
    )
    assert report == {"before": False, "dist": True, "kl_shape": [2], "decoded": True, "encoded": True}
