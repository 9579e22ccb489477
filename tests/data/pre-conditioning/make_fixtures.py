"""How the folders here were made: tiny unconditional models saved by vaegan at commit e6f2dfb, before class
conditioning, plus 3 samples of each from seed 0 (``<family>-samples.safetensors``).

    git worktree add --detach /tmp/vaegan-old e6f2dfb
    PYTHONPATH=/tmp/vaegan-old/src python tests/data/pre-conditioning/make_fixtures.py tests/data/pre-conditioning
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from vaegan import AE, GAN, VAE

out = Path(sys.argv[1])
torch.manual_seed(0)
models = {
    "vae": VAE(architecture="mlp", hidden_dims=(16,), latent_dim=2),
    "ae": AE(block_out_channels=(4, 8, 8, 8), latent_dim=2),
    "gan": GAN(base_channels=4, latent_dim=8),
}
models["ae"].fit_prior(torch.randn(32, 2, generator=torch.Generator().manual_seed(1)))
for name, model in models.items():
    model.save_pretrained(out / name, model_card=False)
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    save_file({"samples": samples.contiguous()}, str(out / f"{name}-samples.safetensors"))
