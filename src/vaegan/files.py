"""Writing outputs the way a user expects: staged (never half-written) and with the user's umask.

Two things create owner-only files behind our back: ``tempfile.mkdtemp`` (folders 0700) and
safetensors' ``save_file`` (files 0600, it writes through a temporary file). Renamed into place, a model
folder or checkpoint would be unreadable to another user (a Space, a shared server, a colleague). So
everything vaegan stages goes through :func:`make_staging_dir` and :func:`apply_umask` before it is
moved into place.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def make_staging_dir(target: str | os.PathLike) -> Path:
    """A new empty folder beside ``target`` (``.NAME.XXXXXXXX.partial``), made with the umask's permissions.

    Write into it, call :func:`apply_umask`, then move it (or its files) into place; remove it on failure.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = target.parent / f".{target.name}.{secrets.token_hex(4)}.partial"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it races with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: str | os.PathLike) -> None:
    """Give ``root`` and everything under it the modes a plain ``mkdir`` / ``open`` would (0755 / 0644 under 022)."""
    mask = current_umask()
    root = Path(root)
    root.chmod(0o777 & ~mask)
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(folder, name), 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
