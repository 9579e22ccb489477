"""Publish the vaegan demo as a Hugging Face Space.

    python spaces/demo/publish.py REPO_ID [--models ID [ID ...]] [--private] [--token TOKEN]

Creates (or reuses) the Space ``REPO_ID`` with the gradio SDK and uploads, in one commit, ``app.py``, ``README.md``
and ``requirements.txt`` from this folder and a copy of the ``vaegan`` package source (``vaegan/`` beside
``app.py``: no vaegan release is on a package index yet, so the Space cannot pip-install it). ``--models`` replaces
the ``models:`` list of the uploaded README front matter, which is the list the app loads (unless the Space sets
``VAEGAN_MODELS``) and the one the Hub uses to link the Space to its models. The Hub address and the token come
from ``HF_ENDPOINT`` and ``HF_TOKEN`` (or ``hf auth login``), as for every huggingface_hub client; ``--token``
overrides the latter.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
PACKAGE = "vaegan"
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)


def set_readme_models(text: str, models: Sequence[str]) -> str:
    """Return the README ``text`` with its front matter's ``models:`` list replaced by ``models``."""
    import yaml

    match = _FRONT_MATTER.match(text)
    if not match:
        raise ValueError("README.md has no YAML front matter (--- ... ---) to hold the models list.")
    data = yaml.safe_load(match.group(1)) or {}
    data["models"] = list(models)
    front = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{front}\n---\n" + text[match.end():]


def package_source() -> Path:
    """The folder of the vaegan package this script runs with (the repository's ``src/vaegan`` when installed
    editable), found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {PACKAGE} package is not installed here; run `pip install -e .` first.")
    source = Path(next(iter(spec.submodule_search_locations)))
    if not (source / "demo" / "layout.py").is_file():
        raise FileNotFoundError(f"{source} has no vaegan.demo package: install a vaegan with the demo.")
    return source


def stage(folder: Path, models: Sequence[str] | None) -> None:
    """Copy the Space's files and the vaegan package into ``folder``; ``models`` rewrites the README's list."""
    for name in SPACE_FILES:
        shutil.copy2(HERE / name, folder / name)
    shutil.copytree(package_source(), folder / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if models:
        readme = folder / "README.md"
        readme.write_text(set_readme_models(readme.read_text(encoding="utf-8"), models), encoding="utf-8")


def publish(repo_id: str, *, models: Sequence[str] | None = None, private: bool = False, token: str | None = None,
            commit_message: str | None = None) -> str:
    """Create the Space (gradio SDK) if needed and upload the demo; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vaegan-space-") as tmp:
        stage(Path(tmp), models)
        commit = api.upload_folder(repo_id=repo_url.repo_id, repo_type="space", folder_path=tmp,
                                   commit_message=commit_message or "Upload the vaegan demo Space")
    return commit.commit_url


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Publish the vaegan demo as a Hugging Face Space.")
    parser.add_argument("repo_id", help="the Space to create or update, e.g. my-name/vaegan-demo")
    parser.add_argument("--models", nargs="+", metavar="ID",
                        help="model repo ids (or comma-separated lists) the Space loads; default: README.md's list")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--token", default=None, help="Hub token (default: $HF_TOKEN or the stored login)")
    parser.add_argument("--message", default=None, help="commit message")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    models = [m.strip() for value in args.models or [] for m in value.split(",") if m.strip()]
    try:
        url = publish(args.repo_id, models=models or None, private=args.private, token=args.token,
                      commit_message=args.message)
    except Exception as err:  # HTTP errors, a missing token, a bad repo id: one readable line, no traceback
        print(f"error: could not publish the Space {args.repo_id}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"Published the Space {args.repo_id}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
