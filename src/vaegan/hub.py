"""Model cards for vaegan models (huggingface_hub's ``ModelCard``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.base import GenerativeModel


def write_model_card(model: GenerativeModel, folder: str | Path, training_summary: dict | None = None) -> None:
    """Write ``README.md`` describing ``model`` into ``folder``."""
    from huggingface_hub import ModelCard, ModelCardData

    name = type(model).__name__
    data = ModelCardData(library_name="vaegan", license="apache-2.0", pipeline_tag="unconditional-image-generation",
                         tags=["vaegan", model.family, "image-generation"])
    body = f"""
# {name}

A `{name}` model made with [vaegan](https://github.com/vaegan/vaegan).

```python
import torch
from vaegan import {name}

model = {name}.from_pretrained("REPO_OR_FOLDER")
images = model.sample(16, generator=torch.Generator().manual_seed(0))  # (16, C, H, W) in [0, 1]
```
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    card.save(Path(folder) / "README.md")
