"""Evaluation results in model cards and model folders.

An evaluation (the dict :func:`~vaegan.metrics.evaluate` returns) is stored three ways:

* ``eval_results.json`` in the model folder (what :func:`read_eval_results` reads first);
* the card's ``model-index`` metadata, the Hub's evaluation-results format (huggingface_hub ``EvalResult``);
* a human table in the card's "Evaluation" section, with metric definitions, sample count and real set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .registry import METRICS

EVAL_RESULTS_FILENAME = "eval_results.json"
TASK_TYPE = "unconditional-image-generation"
SECTION_START, SECTION_END = "<!-- vaegan-evaluation -->", "<!-- /vaegan-evaluation -->"


def _dataset(result: Mapping[str, Any]) -> tuple[str, str]:
    """(Hub dataset id or source string, human description) of the evaluation's data source."""
    from ..data import dataset_id, describe_source

    data = str(result.get("data", "unknown"))
    try:
        return dataset_id(data) or data, describe_source(data)
    except Exception:  # noqa: BLE001 - an unparsable source string: show it as it is
        return data, data


def _heldout(metric: str) -> bool:
    return metric in METRICS and METRICS[metric].heldout


def _config(result: Mapping[str, Any], metric: str) -> str:
    kind = METRICS[metric].kind if metric in METRICS else "generation"
    if not _heldout(metric):
        return (f"features={result.get('features')}, samples={result.get('num_samples')}, "
                f"seed={result.get('seed')}{_temperature_config(result)}, real_images={result.get('real_images')}")
    draws = "iwae_samples" if "iwae_samples" in result else "elbo_samples"
    extra = f", {draws}={result.get(draws)}" if kind == "likelihood" else ""
    return f"heldout_images={result.get('heldout_images')}, seed={result.get('seed')}{extra}"


def _temperature(result: Mapping[str, Any]) -> float:
    return float(result.get("temperature", 1.0))


def _temperature_config(result: Mapping[str, Any]) -> str:
    """``, temperature=T`` for samples drawn at a temperature other than 1 (older results have none: 1)."""
    return "" if _temperature(result) == 1.0 else f", temperature={_temperature(result):g}"


def eval_results(result: Mapping[str, Any]) -> list:
    """The evaluation as huggingface_hub ``EvalResult`` objects (one per metric) for a card's ``model-index``."""
    from huggingface_hub import EvalResult

    dataset_type, dataset_name = _dataset(result)
    out = []
    for metric, value in result.get("metrics", {}).items():
        out.append(EvalResult(
            task_type=TASK_TYPE, dataset_type=dataset_type, dataset_name=dataset_name,
            dataset_config=str(result.get("data")),
            dataset_split="test" if _heldout(metric) else "train",
            metric_type=metric, metric_name=metric, metric_value=float(value),
            metric_config=_config(result, metric),
        ))
    return out


def _format(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"


def evaluation_section(result: Mapping[str, Any]) -> str:
    """The card's "Evaluation" section: a table of the numbers with what they mean and how they were made."""
    _, dataset_name = _dataset(result)
    metrics = result.get("metrics", {})
    rows = ["| Metric | Value | Better | Definition |", "|---|---|---|---|"]
    for metric, value in metrics.items():
        info = METRICS.get(metric)
        better = ("higher" if info.higher_is_better else "lower") if info else ""
        rows.append(f"| `{metric}` | {_format(float(value))} | {better} | {info.definition if info else ''} |")
    notes = []
    if "num_samples" in result:
        temperature = "" if _temperature(result) == 1.0 else (
            f" at temperature {_temperature(result):g} (the model's `sample_temperature`; `temperature=1` samples the "
            "full latent distribution)")
        notes.append(f"Generation metrics: {result['num_samples']:,} samples drawn with "
                     f"`torch.Generator().manual_seed({result.get('seed')})`{temperature}, compared with "
                     f"{result.get('real_images', '?'):,} real images of {dataset_name} (training split), "
                     f"features from the `{result.get('features')}` extractor.")
    if "heldout_images" in result:
        iwae = f", {result['iwae_samples']:,} posterior samples per image for the IWAE bound" \
            if "iwae_samples" in result else (f", {result['elbo_samples']} posterior samples per image for the "
                                              "ELBO" if "elbo_samples" in result else "")
        notes.append(f"Likelihood / reconstruction metrics: {result['heldout_images']:,} held-out images of "
                     f"{dataset_name}{iwae}.")
    if result.get("class_histogram"):
        notes.append(f"Predicted digits of the samples (0-9): {result['class_histogram']}.")
    options = {"--data": result.get("data"), "--metrics": ",".join(metrics), "--seed": result.get("seed", 0),
               "--num-samples": result.get("num_samples"), "--features": result.get("features"),
               "--num-heldout": result.get("heldout_images"), "--iwae-samples": result.get("iwae_samples"),
               "--temperature": None if _temperature(result) == 1.0 else f"{_temperature(result):g}"}
    command = "vaegan evaluate MODEL " + " ".join(f"{k} {v}" for k, v in options.items() if v is not None)
    return "\n".join([
        SECTION_START, "## Evaluation", "", *rows, "", *(f"{n}\n" for n in notes),
        f"Reproduce with `{command}` (vaegan's `metrics` package).", SECTION_END,
    ])


def update_card(folder: str | Path, result: Mapping[str, Any]):
    """Write ``eval_results.json`` and put the evaluation into ``folder/README.md`` (model-index + section).

    The rest of the card is kept; an earlier evaluation is replaced. Returns the updated ``ModelCard``.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    readme = folder / "README.md"
    card = ModelCard(readme.read_text(encoding="utf-8")) if readme.is_file() else ModelCard(
        f"---\n{ModelCardData().to_yaml()}\n---\n")
    apply_to_card(card, result, model_name=folder.name)
    write_eval_results(folder, result)
    card.save(readme)
    return card


def write_eval_results(folder: str | Path, result: Mapping[str, Any]) -> Path:
    """Write ``eval_results.json`` into a model folder (without ``model``: that is where it was loaded from)."""
    path = Path(folder) / EVAL_RESULTS_FILENAME
    path.write_text(json.dumps({k: v for k, v in result.items() if k != "model"}, indent=2) + "\n")
    return path


def apply_to_card(card, result: Mapping[str, Any], model_name: str | None = None) -> None:
    """Set the evaluation of ``card`` (a huggingface_hub ``ModelCard``) in place: metadata and section."""
    card.data.eval_results = eval_results(result)
    card.data.model_name = card.data.model_name or model_name or "model"
    section = evaluation_section(result)
    text = card.text
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    card.text = text


def read_eval_results(model: str | Path, **hub_kwargs: Any) -> dict[str, Any] | None:
    """The evaluation stored with a model folder or Hub repo, or None.

    Reads ``eval_results.json`` (the full result of :func:`~vaegan.metrics.evaluate`) when there is one, else
    rebuilds ``{"data", "metrics": {name: value}}`` from the card's ``model-index``. ``hub_kwargs`` (``token``,
    ``revision``, ...) go to the Hub download for a repo id.
    """
    from huggingface_hub import ModelCard

    folder = Path(model)
    if folder.is_dir():
        stored = folder / EVAL_RESULTS_FILENAME
        if stored.is_file():
            return json.loads(stored.read_text())
        readme = folder / "README.md"
        if not readme.is_file():
            return None
        card = ModelCard(readme.read_text(encoding="utf-8"))
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = hf_hub_download(str(model), EVAL_RESULTS_FILENAME, **hub_kwargs)
            return json.loads(Path(path).read_text())
        except EntryNotFoundError:
            card = ModelCard.load(str(model), **hub_kwargs)
    results = [r for r in (card.data.eval_results or []) if r.task_type == TASK_TYPE]
    if not results:
        return None
    return {"data": results[0].dataset_config or results[0].dataset_type,
            "metrics": {r.metric_type: r.metric_value for r in results}}
