"""The model-card and model-registry modules do not import each other in a circle."""

import ast
from pathlib import Path

import vaegan

SRC = Path(vaegan.__file__).parent


def runtime_imports(relative: str) -> set[str]:
    """Modules ``relative`` imports at run time (anywhere in the file, except under ``if TYPE_CHECKING:``)."""
    path = SRC / relative
    package = ["vaegan", *Path(relative).parent.parts]
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_no_import_circle_between_cards_base_and_auto():
    assert not {m for m in runtime_imports("cards.py") if m.startswith("vaegan.models")}
    assert "vaegan.models.auto" not in runtime_imports("models/base.py")
    assert "vaegan.hub" not in runtime_imports("models/base.py")
    assert "vaegan.models.base" in runtime_imports("models/auto.py")  # the one direction that remains


def test_cards_names_are_still_importable_from_hub():
    from vaegan import cards, hub

    assert hub.write_model_card is cards.write_model_card and hub.dataset_tag is cards.dataset_tag
