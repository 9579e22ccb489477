"""What a training run writes into ``train.output_dir``, which of it is vaegan's, and how ``--overwrite`` removes
it (and nothing else).

A run claims the folder before it writes anything: :data:`RUN_MARKER` (``.vaegan-run.json``) lists the top-level
names vaegan writes there (:data:`OUTPUT_NAMES`). Only a listed name is vaegan's: a run refuses to start when the
folder holds any other entry of those names (the user's own ``config.yaml``, ``samples.png``, ``model/``), and
``--overwrite`` removes only listed outputs. Inside a listed folder (``checkpoints/``, ``samples/``, ``model/``)
only the files vaegan writes there go, and a folder is removed only when nothing else is left in it.

vaegan never writes, reads or deletes through a symbolic link in the folder: a link where an output would go is
refused (vaegan never creates one), and a link deeper down is removed as a link, never followed.

A folder written before the marker existed is recognised as vaegan's by what only a run leaves: a finished run's
``training_summary.json`` (a JSON object with ``steps`` and ``metrics``) or a checkpoint
(``checkpoints/step_N/trainer_state.json``). Its vaegan-named entries are then taken as the run's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .checkpoints import CHECKPOINT_PREFIX, list_checkpoints

#: The marker a run writes first; it lists the top-level outputs that are vaegan's.
RUN_MARKER = ".vaegan-run.json"
#: Files the trainer writes at the top of ``output_dir``.
RUN_FILES = ("config.yaml", "metrics.jsonl", "training_summary.json", "samples.png", "interpolation.png",
             "interpolation.gif", "best.json", "bad_images.txt")
#: Folders the trainer writes at the top of ``output_dir`` (``vaegan/``: TensorBoard's, from ``init_trackers``).
RUN_FOLDERS = ("checkpoints", "samples", "model", "best_model", "vaegan")
#: Every top-level name a run may write (the marker of a run lists them).
OUTPUT_NAMES = RUN_FILES + RUN_FOLDERS
#: Written last by a run that finished: its presence means "this run is done".
FINISHED_MARKER = "training_summary.json"
#: Files of the final ``model/`` folder (save_pretrained, model card, trainer extras).
MODEL_FILE_PATTERNS = ("config.json", "diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.json",
                       "README.md", "samples.png", "training_summary.json", "training_config.yaml",
                       "eval_results.json")
#: Per-epoch preview grids in ``samples/``.
SAMPLE_PATTERN = "epoch_*.png"
#: TensorBoard's run folder (``accelerator.init_trackers("vaegan")`` with ``project_dir=output_dir``).
TRACKER_DIR, TRACKER_PATTERN = "vaegan", "events.out.tfevents.*"


def is_finished(output_dir: str | Path) -> bool:
    """Whether ``output_dir`` holds a run that reached its end (the trainer writes the marker last)."""
    return (Path(output_dir) / FINISHED_MARKER).is_file()


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError):
        return None


def is_legacy_run(output_dir: str | Path) -> bool:
    """Whether ``output_dir`` (without a marker) holds the outputs of a vaegan run from before the marker existed:
    a finished run's summary or a checkpoint, found without following links."""
    out = Path(output_dir)
    summary = _read_json(out / FINISHED_MARKER)
    if isinstance(summary, dict) and {"steps", "metrics"} <= summary.keys():
        return True
    checkpoints = out / "checkpoints"
    if checkpoints.is_symlink() or not checkpoints.is_dir():
        return False
    return any(p.name.startswith("step_") and p.name[5:].isdigit() and not p.is_symlink()
               and (p / "trainer_state.json").is_file() and not (p / "trainer_state.json").is_symlink()
               for p in checkpoints.iterdir())


def owned_outputs(output_dir: str | Path) -> set[str]:
    """The top-level names in ``output_dir`` that are vaegan's: those its marker lists, else (a folder from before
    the marker) every output name when :func:`is_legacy_run`, else none."""
    out = Path(output_dir)
    marker = _read_json(out / RUN_MARKER)
    if isinstance(marker, dict) and isinstance(marker.get("outputs"), list):
        return {str(name) for name in marker["outputs"]} & set(OUTPUT_NAMES)
    return set(OUTPUT_NAMES) if is_legacy_run(out) else set()


def foreign_outputs(output_dir: str | Path) -> list[str]:
    """Entries of ``output_dir`` where a run would write but that vaegan did not write (the user's files, links)."""
    out, owned = Path(output_dir), owned_outputs(output_dir)
    found = []
    for name in OUTPUT_NAMES:
        path = out / name
        if path.is_symlink():
            found.append(f"{name} (a symbolic link to {os.readlink(path)})")
        elif path.exists() and name not in owned:
            found.append(f"{name}/" if path.is_dir() else name)
    return found


def check_outputs_are_vaegans(output_dir: str | Path) -> str | None:
    """The one-line reason a run may not write into ``output_dir`` (it holds files vaegan did not write), or None."""
    out = Path(output_dir)
    if (out / RUN_MARKER).is_symlink():
        return f"{out / RUN_MARKER} is a symbolic link; remove it (vaegan never writes through links)."
    foreign = foreign_outputs(out)
    if not foreign:
        return None
    return (f"{out} holds {', '.join(foreign)}, which a vaegan run writes but which vaegan did not write there (no "
            f"{RUN_MARKER} lists them); a run would replace them. Move them out of the folder (a link: remove it, "
            "its target is kept), or choose another train.output_dir.")


def claim_output_dir(output_dir: str | Path) -> None:
    """Create ``output_dir`` if needed and write its marker (call after :func:`check_outputs_are_vaegans`)."""
    from ..version import __version__

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    earlier = _read_json(out / RUN_MARKER)
    listed = earlier.get("outputs") if isinstance(earlier, dict) else None
    names = list(OUTPUT_NAMES) + [str(n) for n in listed or () if str(n) not in OUTPUT_NAMES]  # a newer vaegan's
    staging = out / f".{RUN_MARKER}.partial"
    staging.unlink(missing_ok=True)
    staging.write_text(json.dumps({"format": 1, "written_by": f"vaegan {__version__}", "outputs": names},
                                  indent=1) + "\n")
    os.replace(staging, out / RUN_MARKER)


def earlier_run_outputs(output_dir: str | Path) -> list[str]:
    """Names of the outputs of an earlier run that a fresh run would clobber (checkpoints, a saved model)."""
    out = Path(output_dir)
    found = []
    if list_checkpoints(out):
        found.append("checkpoints")
    if (out / "model" / "config.json").is_file():
        found.append("a trained model")
    return found


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def clear_run_outputs(output_dir: str | Path) -> list[Path]:
    """Delete what an earlier vaegan run wrote into ``output_dir``; returns the removed paths.

    Only the names :func:`owned_outputs` gives are touched; other files and folders are kept, and so is any folder
    that still holds something vaegan did not write. Links are removed as links, never followed.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return []
    owned = {name for name in owned_outputs(out) if not (out / name).is_symlink()}
    removed: list[Path] = []

    def remove(path: Path) -> None:
        if _real_dir(path):
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)

    def inside(folder: str, pattern: str) -> list[Path]:
        return sorted((out / folder).glob(pattern)) if folder in owned and _real_dir(out / folder) else []

    for path in inside("checkpoints", f"{CHECKPOINT_PREFIX}*"):
        if path.name[len(CHECKPOINT_PREFIX):].isdigit():
            remove(path)
    for path in inside("checkpoints", f".{CHECKPOINT_PREFIX}*.partial"):
        remove(path)
    for path in inside("samples", SAMPLE_PATTERN):
        remove(path)
    for folder in ("model", "best_model"):  # the final model and the one train.select_best_by kept
        for pattern in MODEL_FILE_PATTERNS:
            for path in inside(folder, pattern):
                remove(path)
        if folder in owned:
            for path in out.glob(f".{folder}.*.partial"):  # staging folders of an interrupted save_pretrained
                remove(path)
    tracker = out / TRACKER_DIR
    if TRACKER_DIR in owned and _real_dir(tracker):
        for path in sorted(tracker.rglob(TRACKER_PATTERN)):  # rglob does not descend into linked folders
            remove(path)
        # TensorBoard nests run folders: drop the ones the removal emptied
        for folder in sorted((p for p in tracker.rglob("*") if _real_dir(p)), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
    for name in RUN_FILES:
        if name in owned and (out / name).is_file():
            remove(out / name)
    for name in RUN_FOLDERS:
        if name in owned and _real_dir(out / name) and not any((out / name).iterdir()):
            (out / name).rmdir()
    return removed
