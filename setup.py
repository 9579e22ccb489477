"""Packaging hook; everything else is in pyproject.toml.

The training configs stay in the top-level ``configs/`` folder (where the README's commands use them) and ship
inside the package as ``vaegan.configs``, for wheel and editable installs alike. pyproject.toml cannot combine
discovered packages with one mapped from outside ``src/``, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "vaegan.configs"],
    package_dir={"": "src", "vaegan.configs": "configs"},
)
