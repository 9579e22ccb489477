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
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from diffusers import ConfigMixin
from diffusers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME
from diffusers.utils.hub_utils import _add_variant
from torch import nn

from ..cards import TRAINING_CONFIG_NAME
from ..errors import CheckpointError, ConfigError, WeightsMismatchError
from .sources import check_model_source, explain_unreachable

logger = logging.getLogger(__name__)

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
        config = cls.load_config(source, **{k: kwargs[k] for k in CONFIG_DOWNLOAD_KWARGS if k in kwargs})
    except OSError as err:
        if isinstance(err.__context__, RepositoryNotFoundError | RevisionNotFoundError):
            raise err.__context__ from None
        if isinstance(err.__context__, ValueError):  # json.JSONDecodeError, UnicodeDecodeError
            raise ConfigError(f"{_config_location(cls, source, kwargs)} is not valid JSON ({err.__context__}); save "
                              "the model again with save_pretrained, or fix the file.") from err
        raise explain_unreachable(err, source) from err
    if not isinstance(config, dict):
        kind = _JSON_KINDS.get(type(config), "value")
        raise ConfigError(f"{_config_location(cls, source, kwargs)} holds a JSON {kind}, not an object of "
                          "settings; save the model again with save_pretrained, or fix the file.")
    return config


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _config_location(cls: type[ConfigMixin], source: str | os.PathLike, kwargs: dict[str, Any]) -> str:
    """The config file, as the user can find it: its local path, or ``repo: path in the repo``."""
    subfolder = kwargs.get("subfolder") or ""
    if os.path.isdir(source):
        return str(Path(source, subfolder, cls.config_name))
    return f"{source}: {PurePosixPath(subfolder, cls.config_name)}"


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


def _locate(source: str, name: str, kwargs: dict[str, Any]) -> Path | None:
    """The model's file ``name`` (a repo path): in the local folder, or downloaded at the load's revision (from the
    cache when diffusers already has it); None where the folder or repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    if os.path.isdir(source):
        path = Path(source, name)
        return path if path.is_file() else None
    download = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision")
                if k in kwargs}
    try:
        return Path(hf_hub_download(source, name, **download))
    except EntryNotFoundError:  # not in the repo (or, offline, not in the cache: diffusers cannot use it either)
        return None


def _used_index(source: str, kwargs: dict[str, Any]) -> tuple[Path, str] | None:
    """The sharded-checkpoint index diffusers loads the weights by, and its name for messages; None: one file.

    As diffusers names it: ``..._index.<variant>.json``, then for a variant the legacy ``...<variant>.index.json``,
    whose name diffusers makes by splitting the whole path at its dots (a dotted folder included).
    """
    subfolder, variant = kwargs.get("subfolder") or "", kwargs.get("variant")
    local = os.path.isdir(source)
    first = PurePosixPath(subfolder, _add_variant(SAFE_WEIGHTS_INDEX_NAME, variant)).as_posix()
    candidates = [Path(source, first).as_posix() if local else first]
    if variant is not None:
        plain = PurePosixPath(subfolder, SAFE_WEIGHTS_INDEX_NAME).as_posix()
        full = Path(source, plain).as_posix() if local else plain
        cut = 3 if local and ".cache" in full else 2
        splits = full.split(".")
        candidates.append(".".join(splits[:cut] + [variant] + splits[cut:]))
    for candidate in candidates:
        if local:
            if os.path.isfile(candidate):
                return Path(candidate), candidate
        elif (path := _locate(source, candidate, kwargs)) is not None:
            return path, f"{source}: {candidate}"
    return None


def _is_plain_safetensors_name(name: Any) -> bool:
    return isinstance(name, str) and name.endswith(".safetensors") and os.path.basename(name) == name \
        and "\\" not in name


def _read_index(path: Path, label: str) -> dict[str, Any]:
    """The weight map of an index that names only safetensors files beside it; CheckpointError otherwise."""
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
    return weight_map


def refuse_unsafe_shards(source: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse a sharded checkpoint whose index maps weights to anything but safetensors files beside it.

    diffusers loads the shards an index names by their suffix (``torch.load`` for ``.bin``, ``.pt``, ...)
    whatever ``use_safetensors`` says, so the index is checked before diffusers sees it: the one diffusers will
    use (in a local folder, the HF cache or a Hub repo, at the revision the load uses: :func:`pin_revision`) and,
    in a local folder, every other index-like JSON file too. Returns the weight map of the index diffusers will
    use (None: the weights are one file).
    """
    used = _used_index(source, kwargs)
    if os.path.isdir(source):
        for path in sorted(Path(source, kwargs.get("subfolder") or "").glob("*index*.json")):
            _read_index(path, str(path))
    return None if used is None else _read_index(*used)


def _weight_files(source: str, kwargs: dict[str, Any], weight_map: dict[str, Any] | None) -> list[Path]:
    subfolder = kwargs.get("subfolder") or ""
    names = (sorted(set(weight_map.values())) if weight_map is not None
             else [_add_variant(SAFETENSORS_WEIGHTS_NAME, kwargs.get("variant"))])
    paths = [_locate(source, PurePosixPath(subfolder, name).as_posix(), kwargs) for name in names]
    return [path for path in paths if path is not None]


#: safetensors' names of the dtypes it stores, as torch names them (the rest: lower-cased).
_STORED_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                  "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
                  "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def check_loaded_weights(model: nn.Module, source: str, kwargs: dict[str, Any],
                         weight_map: dict[str, Any] | None) -> None:
    """Refuse weights that loaded into a model silently wrong; note the float ones converted to its precision.

    diffusers casts every stored tensor to the model's dtype: integer (quantized) or boolean values into a float
    tensor (or floats into an integer buffer) are garbage, so they are refused; float64 / float16 / bfloat16
    weights become float32 by the usual rounding (what ``torch_dtype`` does), so they load, with a note unless
    ``torch_dtype`` asked for the conversion. NaN or infinite values (stored, or float64 beyond float32's range)
    would make every output NaN: refused.
    """
    from safetensors import safe_open

    state = model.state_dict()
    wrong: dict[tuple[str, str], list[str]] = {}
    converted: dict[str, int] = {}
    for path in _weight_files(source, kwargs, weight_map):
        with safe_open(path, framework="pt") as stored:
            for key in stored.keys():
                tensor = state.get(key)
                if tensor is None:
                    continue
                kind = stored.get_slice(key).get_dtype()
                name, wanted = _STORED_DTYPES.get(kind, kind.lower()), str(tensor.dtype).removeprefix("torch.")
                is_float = kind.startswith("F") or kind == "BF16"
                if is_float != tensor.is_floating_point():
                    wrong.setdefault((name, wanted), []).append(key)
                elif is_float and name != wanted:
                    converted[name] = converted.get(name, 0) + 1
    if wrong:
        found = "; ".join(f"{name} values for the model's {wanted} tensors {describe_keys(keys)}"
                          for (name, wanted), keys in sorted(wrong.items()))
        raise CheckpointError(
            f"The weights of {source} store {found}. vaegan does not load integer (quantized) or boolean values "
            "into float tensors, nor the reverse: save the model again with save_pretrained."
        )
    bad = [key for key, tensor in state.items()
           if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(
            f"The weights of {source} hold NaN or infinite values in {describe_keys(bad)}; a model with them "
            "computes NaN. Load an earlier checkpoint, or save the model again from a healthy one."
        )
    if converted and kwargs.get("torch_dtype", kwargs.get("dtype")) is None:
        logger.warning("%s: weights stored as %s were converted to %s, the model's dtype.", source,
                       " and ".join(f"{name} ({count} tensors)" for name, count in sorted(converted.items())),
                       str(model.dtype).removeprefix("torch."))


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


def _is_saved_component(folder: Path, component_classes: Collection[type]) -> bool:
    """Whether ``folder`` is a component vaegan saved: a real folder named as one of ``component_classes``'
    ``component_folders``, holding only a ``config.json`` of one of those classes and that save's files (anything
    else in it, or another library's class, is the user's and is kept)."""
    folders = {name for cls in component_classes for name in getattr(cls, "component_folders", ())}
    if folder.is_symlink() or not folder.is_dir() or folder.name not in folders:
        return False
    files = list(folder.iterdir())
    if not all(f.is_file() and not f.is_symlink() and (f.name in ("config.json", "README.md") or any(
            f.match(pattern) for pattern in SAVE_SPECIFIC_PATTERNS)) for f in files):
        return False
    try:
        name = json.loads((folder / "config.json").read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return False
    return any(cls.__name__ == name for cls in component_classes)


def all_subclasses(cls: type) -> list[type]:
    """``cls`` and every class derived from it (imported so far), depth first."""
    return [cls] + [sub for child in cls.__subclasses__() for sub in all_subclasses(child)]


def publish_folder(staging: Path, target: Path, component_classes: Collection[type] = ()) -> None:
    """Move a complete staged save into ``target``: weights first, config last; a component subfolder (a model
    saved as several components) is published the same way, before the root's files. Component folders that an
    earlier save of one of ``component_classes`` left there and this save lacks are removed."""
    if not target.exists():
        os.rename(staging, target)
        return
    produced = {p.name for p in staging.iterdir()}
    for stale in [path for pattern in SAVE_SPECIFIC_PATTERNS for path in target.glob(pattern)]:
        if stale.name not in produced:
            stale.unlink()
    for stale in [path for path in target.iterdir()
                  if path.name not in produced and _is_saved_component(path, component_classes)]:
        shutil.rmtree(stale)  # a component of the model saved here before (a VQ-VAE's vqvae/, prior/)
    order = sorted(produced, key=lambda name: ((staging / name).is_file(), name.endswith(".json"),
                                               name == "config.json", name))
    for name in order:
        if (staging / name).is_dir() and (target / name).is_dir():
            publish_folder(staging / name, target / name)
        else:
            os.replace(staging / name, target / name)
