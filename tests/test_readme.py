"""README's Python examples run as written (Hub ids are served by the local Hub-compatible server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert python_blocks()


def test_readme_python_examples_run(tmp_path, hub):
    """Each block runs in a fresh interpreter; a block that loads ``org/mnist-vae`` finds it on the server."""
    from vaegan import VAE

    VAE().push_to_hub("org/mnist-vae")
    for index, block in enumerate(python_blocks()):
        result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=hub.env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"README python block {index} failed:\n{block}\n{result.stderr[-3000:]}"
