"""The Sample tab's evaluation table: a model card's results beside the real-data reference, one metric a row.

An HTML table with its own inline styles (so it reads the same however the page is launched): the dataset and the
sample count once above it, then metric | value (3 significant figures) | real data | what it means; names and
numbers never break across lines.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from ..metrics.reference import reference_result
from ..metrics.registry import METRICS

_NOWRAP = "white-space:nowrap;padding:2px 10px 2px 0;text-align:left;vertical-align:top"
_WRAP = "padding:2px 0;text-align:left;vertical-align:top"
#: Metrics whose value depends on the sample count (compare them at the same count only).
COUNT_DEPENDENT = ("fd_mnist", "fid", "kid", "precision", "recall", "density", "coverage", "pr_f1")


def significant(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, without exponents for large numbers (``21,100``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    rounded = float(f"{value:.{digits}g}")
    if abs(rounded) >= 10 ** (digits - 1):
        return f"{rounded:,.0f}"
    return f"{rounded:#.{digits}g}"  # '#' keeps trailing zeros: 80.0, 1.00


def _config_value(result: Any, key: str, pattern: str = r"\d+") -> str | None:
    """``key``'s value in a result's ``metric_config`` ("samples=10000, seed=0, ..."), None when absent."""
    match = re.search(rf"\b{key}=({pattern})", str(getattr(result, "metric_config", None) or ""))
    return match.group(1) if match else None


def _config_number(result: Any, key: str) -> int | None:
    value = _config_value(result, key)
    return None if value is None else int(value)


def _header(results: Sequence[Any], reference: dict[str, Any] | None) -> str:
    datasets = list(dict.fromkeys(getattr(r, "dataset_name", None) or getattr(r, "dataset_type", "") or "?"
                                  for r in results))
    samples = {n for n in (_config_number(r, "samples") for r in results) if n is not None}
    heldout = {n for n in (_config_number(r, "heldout_images") for r in results) if n is not None}
    parts = [f"on {', '.join(datasets)}"]
    temperatures = {t for t in (_config_value(r, "temperature", r"[\d.]+") for r in results) if t is not None}
    if samples:
        at = f" at temperature {', '.join(sorted(temperatures))}" if temperatures else ""
        parts.append(f"{', '.join(f'{n:,}' for n in sorted(samples))} samples{at}")
    if heldout:
        parts.append(f"{', '.join(f'{n:,}' for n in sorted(heldout))} held-out images")
    line = "Evaluated " + ", ".join(parts) + "."
    if reference is not None:
        count = reference["num_samples"]
        line += f" Real data: {count:,} held-out images of {reference['data']}, measured the same way (the ceiling)."
        shown = [n for n in COUNT_DEPENDENT if any(getattr(r, "metric_type", None) == n for r in results)]
        if shown and samples and samples != {count}:
            line += f" {', '.join(shown)} depend on the sample count: compare with it only at {count:,} samples."
    return line


def results_html(name: str, results: Sequence[Any]) -> str:
    """``name``'s model-card results (huggingface_hub ``EvalResult`` list) as the demo's table ("" when none)."""
    if not results:
        return ""
    configs = {str(getattr(r, "dataset_config", None) or "") for r in results}
    reference = reference_result(configs.pop()) if len(configs) == 1 else None
    real = (reference or {}).get("metrics", {})
    rows = []
    for result in results:
        key = getattr(result, "metric_type", None) or ""
        label = getattr(result, "metric_name", None) or key or "?"
        info = METRICS.get(key)
        meaning = f"{info.brief} ({'higher' if info.higher_is_better else 'lower'} is better)" if info else ""
        cells = [f'<td style="{_NOWRAP}"><code>{html.escape(str(label))}</code></td>',
                 f'<td style="{_NOWRAP}">{html.escape(significant(getattr(result, "metric_value", "")))}</td>',
                 f'<td style="{_NOWRAP}">{html.escape(significant(real[key])) if key in real else "–"}</td>',
                 f'<td style="{_WRAP}">{html.escape(meaning)}</td>']
        rows.append('<tr class="metric-row">' + "".join(cells) + "</tr>")
    head = "".join(f'<th style="{_NOWRAP}">{title}</th>' for title in ("metric", "value", "real data")) + \
        f'<th style="{_WRAP}">what it means</th>'
    return (f'<div class="vaegan-results"><p><strong>Evaluation of {html.escape(name)}</strong> (from its model '
            f"card). {html.escape(_header(results, reference))}</p>"
            f'<table style="border-collapse:collapse;width:100%"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")
