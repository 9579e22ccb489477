"""Writing outputs the way a user expects: staged (never half-written) and with the user's umask.

A single file is written the same way (:func:`write_file`): into a hidden sibling, then renamed, so a full disk
leaves no empty or partial file and keeps what was there; :func:`writing` turns a full disk into one
:class:`~vaegan.errors.DiskFullError` naming the file.

Two things create owner-only files behind our back: ``tempfile.mkdtemp`` (folders 0700) and
safetensors' ``save_file`` (files 0600, it writes through a temporary file). Renamed into place, a model
folder or checkpoint would be unreadable to another user (a Space, a shared server, a colleague). So
everything vaegan stages goes through :func:`make_staging_dir` and :func:`apply_umask` before it is
moved into place.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, DiskFullError

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "os error 28")  # safetensors: Rust's io error
#: Less free space than this after a failed write: the disk is full (torch.save then says only "unexpected pos").
_NEARLY_FULL_BYTES = 1 << 20


def check_output_path(path: str | os.PathLike, option: str, *, folder: bool = False,
                      example: str = "output") -> Path:
    """``path`` if vaegan can write a file (``folder``: a folder) there, else a ``ConfigError`` saying in words
    what is in the way: an existing folder where the file goes (or a file where the folder goes), or a file among
    its parents. ``option`` names the path in the message (``-o``, ``train.output_dir``)."""
    path = Path(path)
    for parent in path.parents:  # the nearest existing one decides
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path} cannot be {'created' if folder else 'written'}: {parent} is a "
                                  f"file, not a folder; choose another {option}.")
            break
    if folder and path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder; choose another {option}.")
    if not folder and path.is_dir():
        raise ConfigError(f"{option} {path} is a folder, not a file; name a file, e.g. {path / example}.")
    return path


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


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from, says the disk (or the user's quota) is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(err) for text in _DISK_FULL_TEXTS):
            return True
        err = err.__cause__ or err.__context__
    return False


def _nearly_full(path: Path) -> bool:
    for folder in (path, *path.parents):
        if folder.is_dir():
            try:
                return shutil.disk_usage(folder).free < _NEARLY_FULL_BYTES
            except OSError:
                return False
    return False


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Raise a :class:`~vaegan.errors.DiskFullError` naming ``path`` when what runs inside fails on a full disk."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as err:
        if is_disk_full(err) or _nearly_full(Path(path)):
            raise DiskFullError(f"No space left on device while writing {path}: free space or write to another "
                                "disk.", path) from err
        raise


def write_file(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Create ``path`` with ``write(staged)``: into a hidden sibling with the same suffix, then renamed into place.

    On any failure the staged file is removed and ``path`` keeps its earlier content (if any); a full disk raises
    :class:`~vaegan.errors.DiskFullError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        with writing(path):
            write(staged)
            os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path
