"""How the folders here were made: tiny models saved by vaegan at commit 0eb9ffb (the release before the model
protocol of capabilities and ``vaegan.priors``), one for each kind of stored latent prior and the cluster GAN,
plus 3 samples of each from seed 0 (``<name>-samples.safetensors``).

    git worktree add --detach /tmp/vaegan-0.1 0eb9ffb
    PYTHONPATH=/tmp/vaegan-0.1/src python tests/data/release-0.1/make_fixtures.py tests/data/release-0.1
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from vaegan import AE, GAN, VAE

out = Path(sys.argv[1])
torch.manual_seed(0)
latents = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.0, 0.5]) + 0.3
models = {
    "ae-gaussian": AE(architecture="mlp", hidden_dims=(16,), latent_dim=2),
    "ae-gmm": AE(architecture="mlp", hidden_dims=(16,), latent_dim=2, prior="gmm", prior_components=3),
    "vae-gmm": VAE(architecture="mlp", hidden_dims=(16,), latent_dim=2, prior="gmm", prior_components=3),
    "cvae": VAE(architecture="mlp", hidden_dims=(16,), latent_dim=2, num_classes=3),
    "cluster-gan": GAN(architecture="mlp", latent_dim=4, generator_hidden_dims=(16,), discriminator_hidden_dims=(16,),
                       clusters=3),
}
for name in ("ae-gaussian", "ae-gmm", "vae-gmm"):
    models[name].fit_prior(latents)
models["cluster-gan"].on_train_start([torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(2))])
for name, model in models.items():
    model.save_pretrained(out / name, model_card=False)
    labels = {"class_labels": [0, 1, 2]} if model.num_classes else {}
    samples = model.sample(3, generator=torch.Generator().manual_seed(0), **labels)
    save_file({"samples": samples.contiguous()}, str(out / f"{name}-samples.safetensors"))
