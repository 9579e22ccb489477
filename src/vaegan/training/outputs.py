"""What a training run writes into ``train.output_dir``, and how ``--overwrite`` removes it (and nothing else).

Every entry is a name or pattern the trainer itself writes. ``clear_run_outputs`` deletes only those; a folder
(``checkpoints/``, ``samples/``, ``model/``) is removed only when nothing else is left in it, so a file a user put
into the output folder survives ``--overwrite``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .checkpoints import CHECKPOINT_PREFIX, list_checkpoints

#: Files the trainer writes at the top of ``output_dir``.
RUN_FILES = ("config.yaml", "metrics.jsonl", "training_summary.json", "samples.png", "interpolation.png",
             "interpolation.gif", "best.json", "bad_images.txt")
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


def earlier_run_outputs(output_dir: str | Path) -> list[str]:
    """Names of the outputs of an earlier run that a fresh run would clobber (checkpoints, a saved model)."""
    out = Path(output_dir)
    found = []
    if list_checkpoints(out):
        found.append("checkpoints")
    if (out / "model" / "config.json").is_file():
        found.append("a trained model")
    return found


def clear_run_outputs(output_dir: str | Path) -> list[Path]:
    """Delete what an earlier vaegan run wrote into ``output_dir``; returns the removed paths.

    Other files and folders are kept, and so is any folder that still holds something vaegan did not write.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return []
    removed: list[Path] = []

    def remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)

    checkpoints = out / "checkpoints"
    for path in [*list_checkpoints(out), *checkpoints.glob(f".{CHECKPOINT_PREFIX}*.partial")]:
        remove(path)
    for path in (out / "samples").glob(SAMPLE_PATTERN):
        remove(path)
    for folder in ("model", "best_model"):  # the final model and the one train.select_best_by kept
        for pattern in MODEL_FILE_PATTERNS:
            for path in (out / folder).glob(pattern):
                remove(path)
    for path in out.glob(".model.*.partial"):  # staging folders of an interrupted save_pretrained
        remove(path)
    for path in (out / TRACKER_DIR).rglob(TRACKER_PATTERN):
        remove(path)
    for name in RUN_FILES:
        if (out / name).is_file():
            remove(out / name)
    tracker = out / TRACKER_DIR
    if tracker.is_dir():  # TensorBoard nests run folders: drop the ones the removal emptied
        for folder in sorted((p for p in tracker.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
    for folder in (checkpoints, out / "samples", out / "model", out / "best_model", tracker):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
