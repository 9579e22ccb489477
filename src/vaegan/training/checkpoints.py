"""Checking a training checkpoint before resuming from it, and that resuming restored it.

Every checkpoint gets a ``manifest.json`` (file names, sizes and SHA-256 digests) when it is written. Before
``--resume`` loads one, :func:`checkpoint_problem` checks that every listed file is there with its size and
digest, that the JSON files parse and that the safetensors headers read. ``--resume latest`` then falls back
from a damaged newest checkpoint (a disk filled up, a copy cut short, files deleted, bytes flipped) to the
previous good one, naming the bad one in one line; ``--resume PATH`` refuses a damaged one with the reason.
Checkpoints written before digests (sizes only) or before manifests are checked as far as they allow.

Accelerate's ``load_state`` only logs (at INFO) when it cannot restore the random number generators and goes
on with fresh ones; :func:`rng_restore_problem` checks afterwards that they hold what the checkpoint saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATE_FILE = "trainer_state.json"


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: str | os.PathLike) -> None:
    """Record the names, sizes and SHA-256 digests of the files of a finished checkpoint (call last, before
    publishing it). Hashing reads the files once more: about a second per GB, small beside writing them."""
    folder = Path(folder)
    files = _files(folder)
    digests = {name: _sha256(folder / name) for name in files}
    (folder / MANIFEST).write_text(json.dumps({"format": 2, "files": files, "sha256": digests}, indent=1))


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with the checkpoint ``folder`` (missing, truncated or unreadable files); None if it is whole."""
    folder = Path(folder)
    if not folder.is_dir():
        return "the folder does not exist"
    present = _files(folder)
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            expected, digests = manifest["files"], manifest.get("sha256", {})  # format 1: sizes only
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            return f"{MANIFEST} is unreadable ({err})"
        missing = sorted(name for name in expected if name not in present)
        if missing:
            return f"files are missing: {', '.join(missing)}"
        wrong = [f"{name} has {present[name]} bytes, expected {size}" for name, size in sorted(expected.items())
                 if present[name] != size]
        if wrong:
            return f"files are truncated or changed: {'; '.join(wrong)}"
        changed = [name for name, digest in sorted(digests.items()) if _sha256(folder / name) != digest]
        if changed:
            return f"files are damaged (their SHA-256 differs from the manifest's): {', '.join(changed)}"
    elif STATE_FILE not in present:
        return f"{STATE_FILE} is missing"
    if not any(name.endswith((".safetensors", ".bin")) for name in present):
        return "it holds no model weights"
    try:
        json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError) as err:
        return f"{STATE_FILE} is unreadable ({err})"
    for name in present:
        if name.endswith(".safetensors"):
            problem = _safetensors_problem(folder / name)
            if problem:
                return f"{name} is unreadable ({problem})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own SafetensorError, OSError or ValueError
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


def pick_resume_checkpoint(checkpoints: list[Path], resume: str, output_dir: str | os.PathLike) -> Path:
    """``latest``: the newest whole checkpoint of ``checkpoints`` (oldest first), warning about each damaged one
    skipped; otherwise the checkpoint folder ``resume``, which must be whole."""
    if resume != "latest":
        path = Path(resume)
        if not path.is_dir():
            raise ConfigError(f"--resume {resume}: no such checkpoint folder; pass a checkpoint under "
                              f"{Path(output_dir) / 'checkpoints'} or --resume latest.")
        problem = checkpoint_problem(path)
        if problem:
            raise CheckpointError(f"--resume {resume}: the checkpoint is damaged: {problem}. Resume from an earlier "
                                  "checkpoint of the run, or --resume latest to take the newest whole one.")
        return path
    skipped = []
    for path in reversed(checkpoints):
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                logger.warning("--resume latest: skipped the damaged checkpoint(s) %s; resuming from %s.",
                               "; ".join(skipped), path)
            return path
        skipped.append(f"{path} ({problem})")
    raise CheckpointError(f"--resume latest: every checkpoint under {Path(output_dir) / 'checkpoints'} is damaged: "
                          f"{'; '.join(skipped)}. Start a new run in another train.output_dir.")


# ---------------------------------------------------------------------------------------------------- listing
CHECKPOINT_PREFIX = "step_"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run (``checkpoints/step_N``), oldest first."""
    folder = Path(output_dir) / "checkpoints"
    found = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*")
             if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def resolve_resume(output_dir: str | os.PathLike, resume: str) -> Path:
    """``latest`` -> the newest whole checkpoint of ``output_dir``; otherwise a checkpoint folder path."""
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise ConfigError(f"--resume latest: no checkpoint in {Path(output_dir) / 'checkpoints'}; start without "
                              "--resume, or pass the path of a checkpoint folder.")
        return pick_resume_checkpoint(checkpoints, resume, output_dir)
    path = Path(resume)
    if path.is_dir() and not (path / STATE_FILE).is_file() and not (path / MANIFEST).is_file():
        raise ConfigError(f"--resume {resume}: not a checkpoint folder (expected {CHECKPOINT_PREFIX}N under "
                          f"{Path(output_dir) / 'checkpoints'}).")
    return pick_resume_checkpoint([], resume, output_dir)


def rng_restore_problem(folder: str | os.PathLike, process_index: int) -> str | None:
    """Why the random number generators of this process do not hold the state saved in checkpoint ``folder``
    (call right after ``accelerator.load_state``), or None when they do."""
    from accelerate.utils import RNG_STATE_NAME, load

    folder = Path(folder)
    path = folder / f"{RNG_STATE_NAME}_{process_index}.pkl"
    if not path.is_file():
        saved = len(list(folder.glob(f"{RNG_STATE_NAME}_*.pkl")))
        return (f"it holds the random states of {saved} process(es) and none for process {process_index}; resume "
                "with as many processes as the run had")
    try:
        states = load(path)
        numpy_state = np.random.get_state()
        restored = (random.getstate() == states["random_state"]
                    and torch.equal(torch.get_rng_state(), states["torch_manual_seed"])
                    and numpy_state[0] == states["numpy_random_seed"][0]
                    and all(np.array_equal(a, b) for a, b in zip(numpy_state[1:], states["numpy_random_seed"][1:],
                                                                 strict=True)))
        restored = restored and _device_rng_restored(states)
    except Exception as err:  # torch.load and the state setters raise many types on a damaged file
        return f"{path.name} cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None if restored else f"the generators do not hold the states saved in {path.name}"


def _device_rng_restored(states: dict) -> bool:
    """The accelerator's generators against the saved ones, read the way accelerate's ``load_accelerator_state``
    wrote them: one state per device for CUDA and the like (``set_rng_state_all``), else one state."""
    from accelerate.utils import get_torch_accelerator_backend

    device_type, _ = get_torch_accelerator_backend()
    saved = states.get(f"torch_{device_type}_manual_seed") if device_type is not None else None
    if saved is None:
        return True  # saved without an accelerator: accelerate restores none
    module = torch.get_device_module(device_type)
    if isinstance(saved, list | tuple):
        current = module.get_rng_state_all()[:len(saved)]  # set_rng_state_all sets the first len(saved) devices
        return len(current) == len(saved) and all(torch.equal(a, b) for a, b in zip(current, saved, strict=True))
    return torch.equal(module.get_rng_state(), saved)


def model_mismatch(folder: str | os.PathLike, state_dict: Mapping[str, Any]) -> str | None:
    """How the model weights in the checkpoint ``folder`` differ in names or shapes from ``state_dict`` (the model
    of the config about to resume: another model, not a damaged file); None when they fit or cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(Path(folder) / "model.safetensors"), framework="pt") as handle:
            saved = {_plain(key): list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception:  # missing or unreadable: checkpoint_problem's business
        return None
    expected = {_plain(key): list(value.shape) for key, value in state_dict.items()}
    differences = [f"{key} is {saved[key]} in the checkpoint, {shape} in the config's model"
                   for key, shape in expected.items() if key in saved and saved[key] != shape]
    differences += [f"the config's model has {key}, the checkpoint not" for key in expected if key not in saved]
    differences += [f"the checkpoint has {key}, the config's model not" for key in saved if key not in expected]
    if not differences:
        return None
    more = len(differences) - 1
    return differences[0] + (f", and {more} more difference{'s' if more > 1 else ''}" if more else "")


def _plain(key: str) -> str:
    return key.removeprefix("module.")  # DDP's wrapper: a question of process count, not of the model
