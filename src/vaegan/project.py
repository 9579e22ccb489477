"""Where this vaegan came from, as its installed distribution's metadata says: the project's URL and a truthful
install line for model cards (and messages), never a URL or package index the metadata does not name.

The URL comes from ``[project.urls]`` in ``pyproject.toml`` (``Project-URL`` metadata); how vaegan was installed
from PEP 610's ``direct_url.json``, which installers write for anything but a package index.
"""

from __future__ import annotations

import importlib.metadata
import json

DISTRIBUTION = "vaegan"
#: ``[project.urls]`` labels, most wanted first, for the project's home.
_URL_LABELS = ("homepage", "home", "repository", "source", "source code", "code", "documentation")


def _installed() -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree on PYTHONPATH
        return None


def _version(dist: importlib.metadata.Distribution | None) -> str:
    if dist is not None and dist.version:
        return dist.version
    from .version import __version__

    return __version__


def project_url() -> str | None:
    """The project's web address from the installed metadata (``[project.urls]``); None when it names none."""
    dist = _installed()
    if dist is None:
        return None
    urls = {}
    for entry in dist.metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if url.strip().startswith(("https://", "http://")):
            urls.setdefault(label.strip().lower(), url.strip())
    for label in _URL_LABELS:
        if label in urls:
            return urls[label]
    home = dist.metadata.get("Home-page") or ""
    return next(iter(urls.values()), None) or (home if home.startswith(("https://", "http://")) else None)


def install_command() -> str | None:
    """The ``pip install`` command that gets this vaegan elsewhere; None when it came from a local copy of its
    source (or is not installed), which no one else can install from."""
    dist = _installed()
    if dist is None:
        return None
    text = dist.read_text("direct_url.json")
    if text is None:  # installers record a direct_url.json for every source but a package index
        return f"pip install {DISTRIBUTION}"
    try:
        direct = json.loads(text)
    except ValueError:
        return None
    url = direct.get("url", "") if isinstance(direct, dict) else ""
    if not url.startswith(("https://", "http://")):
        return None
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):
        commit = f"@{vcs['commit_id']}" if vcs.get("commit_id") else ""
        subdirectory = f"#subdirectory={direct['subdirectory']}" if direct.get("subdirectory") else ""
        return f"pip install {vcs['vcs']}+{url}{commit}{subdirectory}"
    return f"pip install {url}" if "archive_info" in direct else None


def install_sentence() -> str:
    """The model card's install line (Markdown), ending in "then:" before the usage snippet."""
    command = install_command()
    if command:
        return f"Install vaegan (`{command}`), then:"
    version = _version(_installed())
    url = project_url()
    source = f"its source ({url}): " if url else "its source: "
    return (f"This model was made with vaegan {version} installed from a local copy of its source, not from a "
            f"package index. Install vaegan {version} from {source}`pip install <folder of the vaegan source>`, then:")


def project_link() -> str:
    """``vaegan`` linked to the project's URL (Markdown) when the metadata names one, else plain."""
    url = project_url()
    return f"[vaegan]({url})" if url else "vaegan"
