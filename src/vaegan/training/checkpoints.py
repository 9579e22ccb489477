"""Checking a training checkpoint before resuming from it.

Every checkpoint gets a ``manifest.json`` (file names and sizes) when it is written. Before ``--resume``
loads one, :func:`checkpoint_problem` checks that every listed file is there with its size, that the JSON
files parse and that the safetensors headers read. ``--resume latest`` then falls back from a damaged
newest checkpoint (a disk filled up, a copy cut short, files deleted) to the previous good one, naming the
bad one; ``--resume PATH`` refuses a damaged one with the reason. Checkpoints written before manifests
existed are checked as far as their files allow.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATE_FILE = "trainer_state.json"


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(folder: str | os.PathLike) -> None:
    """Record the names and sizes of the files of a finished checkpoint (call last, before publishing it)."""
    folder = Path(folder)
    (folder / MANIFEST).write_text(json.dumps({"format": 1, "files": _files(folder)}, indent=1))


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with the checkpoint ``folder`` (missing, truncated or unreadable files); None if it is whole."""
    folder = Path(folder)
    if not folder.is_dir():
        return "the folder does not exist"
    present = _files(folder)
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        try:
            expected = json.loads(manifest_path.read_text())["files"]
        except (ValueError, KeyError, TypeError) as err:
            return f"{MANIFEST} is unreadable ({err})"
        missing = sorted(name for name in expected if name not in present)
        if missing:
            return f"files are missing: {', '.join(missing)}"
        wrong = [f"{name} has {present[name]} bytes, expected {size}" for name, size in sorted(expected.items())
                 if present[name] != size]
        if wrong:
            return f"files are truncated or changed: {'; '.join(wrong)}"
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
