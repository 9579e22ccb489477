"""Small helpers shared by the model tests."""

import torch


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``: the same seed gives the same samples."""
    return torch.Generator().manual_seed(seed)
