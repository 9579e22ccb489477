"""Checks for model configuration values, run in ``__init__`` before anything is allocated."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigError

# Generous ceilings: far above any model of this library, far below a size that would exhaust memory.
MAX_DIM = 65_536
MAX_IMAGE_SIZE = 1_024
MAX_PARAMETERS = 1_000_000_000
#: Highest sampling temperature anywhere (a stored ``sample_temperature``, ``vaegan sample``, the demo).
MAX_SAMPLE_TEMPERATURE = 2.0


def closest(name: str, options: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest option, or an empty string."""
    match = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"{field}={value!r} is not supported; allowed values: {', '.join(map(repr, allowed))}."
            + (closest(value, allowed) if isinstance(value, str) else "")
        )
    return value


def check_int(field: str, value: Any, *, minimum: int = 1, maximum: int = MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(f"{field} must be an integer in [{minimum}, {maximum}], got {value!r}.")
    return value


def check_float(field: str, value: Any, *, minimum: float = 0.0, maximum: float = float("inf"),
                max_inclusive: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and minimum <= value and (value <= maximum if max_inclusive else value < maximum)
    if not ok:
        bound = "]" if max_inclusive else ")"
        raise ConfigError(f"{field} must be a number in [{minimum}, {maximum}{bound}, got {value!r}.")
    return float(value)


def check_int_list(field: str, values: Any, *, minimum: int = 1, maximum: int = MAX_DIM,
                   allow_empty: bool = False) -> list[int]:
    if isinstance(values, str) or not isinstance(values, Sequence) or (not values and not allow_empty):
        raise ConfigError(f"{field} must be a {'' if allow_empty else 'non-empty '}list of integers, "
                          f"got {values!r}.")
    return [check_int(f"{field}[{i}]", v, minimum=minimum, maximum=maximum) for i, v in enumerate(values)]
