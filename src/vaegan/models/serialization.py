"""Strict, safetensors-only loading and atomic saving: the file half of :class:`~vaegan.GenerativeModel`.

``GenerativeModel.save_pretrained`` / ``from_pretrained`` and ``AutoModel`` use these; they are public so that
``AutoModel``, fine-tuning and pipelines need no private helpers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from diffusers import ConfigMixin
from diffusers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME
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


def pin_revision(source: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with a Hub repo's ``revision`` resolved to one commit, so that the safety checks and diffusers'
    load read the very same files even if the repo changes meanwhile (diffusers keeps a resolved revision as is).

    Best effort, as in diffusers: where it cannot be resolved (no such repo, offline with nothing cached), the
    download that follows reports why."""
    try:
        from huggingface_hub import resolve_revision
    except ImportError:  # an older huggingface_hub: the check and the load may read different commits of a branch
        return kwargs
    if os.path.isdir(source):
        return kwargs
    try:
        revision = resolve_revision(source, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir"),
                                    local_files_only=bool(kwargs.get("local_files_only")), token=kwargs.get("token"))
    except Exception:  # noqa: BLE001 - the load that follows raises the real, explained error
        return kwargs
    return {**kwargs, "revision": revision}


def _index_names(subfolder: str, variant: str | None) -> list[str]:
    """The repo paths of the sharded-checkpoint indexes diffusers looks for (its current and legacy variant names)."""
    names = [PurePosixPath(subfolder, SAFE_WEIGHTS_INDEX_NAME).as_posix()]
    if variant is not None:
        stem, ext = SAFE_WEIGHTS_INDEX_NAME.rsplit(".", 1)
        names.append(PurePosixPath(subfolder, f"{stem}.{variant}.{ext}").as_posix())
        splits = names[0].split(".")  # diffusers' legacy name splits the whole path, subfolder dots included
        names.append(".".join(splits[:2] + [variant] + splits[2:]))
    return names


def _is_plain_safetensors_name(name: Any) -> bool:
    return isinstance(name, str) and name.endswith(".safetensors") and os.path.basename(name) == name \
        and "\\" not in name


def _check_index(path: str | os.PathLike, label: str) -> None:
    try:
        index = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{label} is not a valid weight index ({err}); save the model again with "
                              "save_pretrained.") from err
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{label} is not a valid weight index (no 'weight_map' object); save the model "
                              "again with save_pretrained.")
    unsafe = sorted({str(name) for name in weight_map.values() if not _is_plain_safetensors_name(name)})
    if unsafe:
        raise CheckpointError(
            f"{label} maps weights to {', '.join(unsafe)}, not to safetensors files in its folder. vaegan loads "
            "safetensors weights only and never unpickles *.bin/*.pt/*.pkl files (a pickle can run arbitrary "
            "code): convert the shards to safetensors with a tool you trust, or save the model again with "
            "save_pretrained."
        )


def refuse_unsafe_shards(source: str, kwargs: dict[str, Any]) -> None:
    """Refuse a sharded checkpoint whose index maps weights to anything but safetensors files beside it.

    diffusers loads the shards an index names by their suffix (``torch.load`` for ``.bin``, ``.pt``, ...)
    whatever ``use_safetensors`` says, so the index is checked before diffusers sees it: in a local folder every
    index-like JSON file (whatever name a variant gives it); in a Hub repo or the HF cache every index name
    diffusers would fetch, downloaded at the revision the load uses (:func:`pin_revision`).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    subfolder = kwargs.get("subfolder") or ""
    if os.path.isdir(source):
        for path in sorted(Path(source, subfolder).glob("*index*.json")):
            _check_index(path, str(path))
        return
    download = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision")
                if k in kwargs}
    for name in _index_names(subfolder, kwargs.get("variant")):
        try:
            path = hf_hub_download(source, name, **download)
        except EntryNotFoundError:  # not in the repo (or, offline, not in the cache: diffusers cannot use it either)
            continue
        _check_index(path, f"{source}: {name}")


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
