"""Strict, safetensors-only loading and atomic saving: the file half of :class:`~vaegan.GenerativeModel`.

``GenerativeModel.save_pretrained`` / ``from_pretrained`` and ``AutoModel`` use these; they are public so that
``AutoModel``, fine-tuning and pipelines need no private helpers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from torch import nn

from ..cards import TRAINING_CONFIG_NAME
from ..errors import CheckpointError, ConfigError, WeightsMismatchError
from .sources import check_model_source, explain_unreachable

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: Files of a saved model that belong to one save only (weight shards, the card's sample grid, the evaluation,
#: the training config): a save or push without them removes an earlier one's instead of keeping it.
SAVE_SPECIFIC_PATTERNS = ("diffusion_pytorch_model*", "samples.png", "eval_results.json", TRAINING_CONFIG_NAME)
#: ``from_pretrained`` arguments that say where and how to download ``config.json``.
CONFIG_DOWNLOAD_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision",
                          "subfolder")


class _PartialLoadFilter(logging.Filter):
    """Drops diffusers' "weights ... newly initialized / not used" warnings: vaegan refuses such a load itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("newly initialized" in message or "were not used when initializing" in message)


@contextlib.contextmanager
def quiet_partial_load_warnings() -> Iterator[None]:
    from diffusers.models import modeling_utils

    logger, log_filter = logging.getLogger(modeling_utils.__name__), _PartialLoadFilter()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def realign_tensors(model: nn.Module) -> None:
    """Copy tensors that loading left at unaligned addresses (views into the safetensors buffer) to fresh memory.

    CPU kernels take other code paths for unaligned data, so a loaded model would otherwise differ from the
    saved one in the last bits (e.g. ``sample(1)``), breaking bit-identical round trips.
    """
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()


def describe_keys(keys: list) -> str:
    shown = [f"{k[0]} (file {tuple(k[1])}, model {tuple(k[2])})" if isinstance(k, tuple) else str(k)
             for k in sorted(keys, key=str)[:10]]
    more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
    return ", ".join(shown) + more


def load_config(cls: type[ConfigMixin], source: str | os.PathLike, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cls.load_config`` letting huggingface_hub's own errors through (repo not found or not accessible: private
    repo without the right token; unknown revision), which diffusers would replace by an OSError that names
    huggingface.co whatever the endpoint. Both are OSErrors."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    check_model_source(source)
    try:
        return cls.load_config(source, **{k: kwargs[k] for k in CONFIG_DOWNLOAD_KWARGS if k in kwargs})
    except OSError as err:
        if isinstance(err.__context__, RepositoryNotFoundError | RevisionNotFoundError):
            raise err.__context__ from None
        raise explain_unreachable(err, source) from err


def refuse_pickle_only(source: str, subfolder: str | None) -> None:
    folder = Path(source) / (subfolder or "")
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{folder} holds only pickle checkpoints ({', '.join(pickles)}) and no safetensors weights. "
            "vaegan never unpickles files (a pickle can run arbitrary code). Convert the weights to "
            "safetensors with a tool you trust, or save the model again with save_pretrained."
        )


def explain_load_error(err: Exception, source: str) -> Exception:
    message = str(err)
    if isinstance(err, CheckpointError | ConfigError):
        return err
    if SAFETENSORS_WEIGHTS_NAME in message and ("no file named" in message or "does not appear" in message):
        return CheckpointError(
            f"{source} has no {SAFETENSORS_WEIGHTS_NAME}. vaegan loads safetensors weights only and never "
            f"unpickles *.bin/*.pt/*.pkl files. Save the model with save_pretrained (or push_to_hub) first.\n{err}"
        )
    if "Unable to load weights" in message or "Error while deserializing" in message:
        return CheckpointError(
            f"The safetensors weights of {source} are corrupt or truncated ({err}). Save the model again, or "
            "download it again with force_download=True."
        )
    shape = re.search(r"because (\S+) expected shape (.+?), but got (.+?)\.(?:\s|$)", message)
    if shape:
        key, expected, found = shape.groups()
        return WeightsMismatchError(
            f"The weights of {source} do not match its config.json: tensor {key} has shape {found} in the "
            f"file but the model built from config.json expects {expected}. Save the model again with "
            "save_pretrained, or fix config.json."
        )
    return err


def publish_folder(staging: Path, target: Path) -> None:
    """Move a complete staged save into ``target``: weights first, config last."""
    if not target.exists():
        os.rename(staging, target)
        return
    produced = {p.name for p in staging.iterdir()}
    for stale in [path for pattern in SAVE_SPECIFIC_PATTERNS for path in target.glob(pattern)]:
        if stale.name not in produced:
            stale.unlink()
    order = sorted(produced, key=lambda name: (name.endswith(".json"), name == "config.json", name))
    for name in order:
        os.replace(staging / name, target / name)
