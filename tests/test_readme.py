"""README's Python examples run as written (Hub ids are served by the local Hub-compatible server); the files of
its plugin example (blocks that start with ``# name.py``) are a package whose family passes vaegan.testing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
PLUGIN_FIXTURE = Path(__file__).parent / "plugin_pkg" / "vaegan_tiny_plugin" / "__init__.py"
FILE_HEADER = re.compile(r"# ([\w/]+\.py)\n")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def file_blocks() -> dict[str, str]:
    """README blocks that are files of an example package: file name -> contents."""
    return {match.group(1): block for block in python_blocks() if (match := FILE_HEADER.match(block))}


def write_files(folder: Path) -> dict[str, str]:
    files = file_blocks()
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return files


def test_readme_has_examples():
    assert python_blocks()
    assert {"my_pixels.py", "test_my_pixels.py"} <= set(file_blocks())


def test_readme_python_examples_run(tmp_path, hub):
    """Each block runs in a fresh interpreter; a block that loads ``org/mnist-vae`` finds it on the server. File
    blocks are written out and imported."""
    from vaegan import VAE

    VAE().push_to_hub("org/mnist-vae")
    for index, block in enumerate(python_blocks()):
        if FILE_HEADER.match(block):
            continue
        result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=hub.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"README python block {index} failed:\n{block}\n{result.stderr[-3000:]}"
    modules = [name.removesuffix(".py").replace("/", ".") for name in write_files(tmp_path)]
    result = subprocess.run([sys.executable, "-c", "".join(f"import {m}\n" for m in modules)], cwd=tmp_path,
                            env=hub.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_readme_plugin_family_is_the_tested_fixture():
    """The README's PixelBernoulli is tests/plugin_pkg's, so the end-to-end plugin tests cover the README's code."""
    code = file_blocks()["my_pixels.py"]
    assert code[code.index("class PixelBernoulli"):] in PLUGIN_FIXTURE.read_text()


@pytest.mark.slow
def test_readme_plugin_example_passes_the_contract_suite(tmp_path):
    write_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_pixels.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]
