"""Telling a missing local model folder apart from a Hub repo id, for errors that say which one went wrong.

diffusers treats any string that is not an existing folder as a Hub id, so a mistyped local path ends in
"couldn't connect to huggingface.co" or "repository not found". vaegan checks first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HUB_HINT = ("A Hub repo is named owner/name (e.g. org/mnist-vae); a cached copy loads offline with "
             "HF_HUB_OFFLINE=1.")


def looks_like_hub_id(name: str) -> bool:
    """``owner/name``, as a Hub repo id is spelled (and a relative two-part path can be)."""
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name


def check_model_source(source: str | os.PathLike) -> None:
    """Raise ``FileNotFoundError`` when ``source`` can only be a local folder and does not exist."""
    text = str(source)
    if os.path.exists(os.path.expanduser(text)) or looks_like_hub_id(text):
        return
    raise FileNotFoundError(f"The model folder {text} does not exist ({Path(text).expanduser().absolute()}); "
                            f"check the path. {_HUB_HINT}")


def explain_unreachable(err: OSError, source: str | os.PathLike) -> OSError:
    """The Hub could not be reached (and nothing is cached) for a source that is not a local folder either: say both.

    diffusers reports that case as "couldn't connect" or as "does not appear to have a file named config.json".
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    text = str(source)
    unreachable = "couldn't connect" in str(err) or isinstance(err.__context__, LocalEntryNotFoundError)
    if not unreachable or os.path.exists(os.path.expanduser(text)):
        return err

    if constants.HF_HUB_OFFLINE:
        return OSError(f"{text} is neither a local folder (no such directory: {Path(text).absolute()}) nor in the HF "
                       "cache, and HF_HUB_OFFLINE is set: check the path, or download the Hub repo once online.")
    return OSError(
        f"{text} is neither a local folder (no such directory: {Path(text).absolute()}) nor reachable as a Hub "
        f"repo: could not connect to {constants.ENDPOINT}. For a local folder, check the path; for the Hub repo "
        f"{text}, check the connection (or HF_ENDPOINT), or load a cached copy offline with HF_HUB_OFFLINE=1."
    )
