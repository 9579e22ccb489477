"""The training configs that ship with vaegan (``configs/*.yaml`` in the repository, ``vaegan.configs`` installed).

``vaegan train mnist-vae`` finds a bundled config by name; ``vaegan configs`` lists them with the first sentence
of their header comment as a description.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..errors import ConfigError
from ..models.validation import closest
from ..project import install_command

PACKAGE = "vaegan.configs"
SUFFIXES = (".yaml", ".yml")


def bundled_configs() -> dict[str, Traversable]:
    """Name (file name without ``.yaml``) -> the bundled config file, sorted by name."""
    try:
        folder = resources.files(PACKAGE)
    except ModuleNotFoundError as err:
        raise ConfigError("vaegan's bundled configs are not installed (no vaegan.configs package); reinstall vaegan "
                          f"({install_command() or 'pip install -e . in a checkout of its source'}).") from err
    found = {entry.name.rsplit(".", 1)[0]: entry for entry in folder.iterdir()
             if entry.is_file() and entry.name.endswith(SUFFIXES)}
    return dict(sorted(found.items()))


def describe(text: str, width: int = 100) -> str:
    """The first sentence of a config's leading comment block, shortened to about ``width`` characters."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        content = line.lstrip("#").strip()
        if not content or content.startswith(("vaegan ", "accelerate ")):
            break
        lines.append(content)
    header = " ".join(lines)
    match = re.search(r"(?<=[.!?])\s+(?=[A-Z0-9(])", header)
    sentence = header[:match.start()] if match else header
    if len(sentence) > width and ": " in sentence[:width]:
        sentence = sentence[:sentence.index(": ")]
    if len(sentence) > width:
        sentence = sentence[:width - 1].rstrip() + "…"
    return sentence.rstrip(".")


def config_descriptions() -> dict[str, str]:
    """Name -> one-line description of every bundled config."""
    return {name: describe(entry.read_text()) for name, entry in bundled_configs().items()}


def resolve_config_file(name_or_path: str | Path) -> Path | Traversable:
    """A YAML file path as given, else the bundled config of that name (``mnist-vae`` or ``mnist-vae.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if path.is_dir():
        hint = (f" To fine-tune the model this run wrote, give {path / 'model'}." if (path / "model" / "config.json")
                .is_file() else "")
        raise ConfigError(f"{text} is a folder without config.json: neither a model folder nor a YAML training "
                          f"config.{hint}")
    name = text[: -len(path.suffix)] if path.suffix in SUFFIXES else text
    if len(path.parts) == 1:
        bundled = bundled_configs()
        if name in bundled:
            return bundled[name]
        raise ConfigError(f"{text} is neither a YAML file nor a bundled config.{closest(name, bundled)} Bundled "
                          f"configs: {', '.join(bundled)} (vaegan configs lists them).")
    raise ConfigError(f"config file {text} does not exist; give a YAML file or a bundled config name "
                      f"(vaegan configs lists them, e.g. mnist-vae).")
