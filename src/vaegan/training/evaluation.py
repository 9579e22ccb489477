"""The trainer's evaluation hook: periodic cheap evaluations, the best model by a metric, the final evaluation.

Configured by ``train.eval_every``, ``train.eval_metrics``, ``train.eval_num_samples`` and ``train.select_best_by``
(see :class:`~vaegan.training.config.TrainConfig`). Evaluations run on the main process alone (the metrics do no
``torch.distributed`` collective) while the other processes wait; the numbers go to the trackers as
``eval/<metric>``; the final one (``train.final_eval_num_samples`` samples, by default
``vaegan.metrics.DEFAULT_NUM_SAMPLES``) goes into the model card and ``eval_results.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger(__name__)

BEST_DIR = "best_model"
BEST_STATE = "best.json"
#: Posterior samples of the IWAE bound in the periodic evaluations (the final one uses the default, 1000).
PERIODIC_IWAE_SAMPLES = 100


def validate_eval_config(config) -> None:
    """Clear errors for evaluation settings that cannot work (raised when the config is loaded)."""
    from ..metrics.evaluate import default_features
    from ..metrics.registry import METRICS, resolve_metrics

    t = config.train
    if t.eval_every < 0:
        raise ConfigError(f"'train.eval_every' must be >= 0 (0: no evaluation during training), got {t.eval_every}.")
    for key in ("eval_num_samples", "final_eval_num_samples"):
        if getattr(t, key) < 2:
            raise ConfigError(f"'train.{key}' must be >= 2, got {getattr(t, key)}.")
    cls = config.model_class
    capabilities = cls.capabilities()
    features = default_features(config.data.source, t.eval_metrics)
    label = f"a {cls.__name__} trained on {config.data.source}"
    digits = config.model.get("num_classes") == 10
    names = resolve_metrics(t.eval_metrics, capabilities, True, features, label, digits)
    enabled = t.eval_every > 0 or t.eval_metrics is not None
    if enabled and features == "inception" and any(METRICS[n].kind == "generation" for n in names):
        import importlib.util

        from ..metrics.features import INCEPTION_INSTALL

        if importlib.util.find_spec("torch_fidelity") is None:
            raise ConfigError(f"{config.data.source} is not MNIST, so the evaluation uses Inception features, and "
                              f"{INCEPTION_INSTALL}; or set train.eval_metrics to metrics without features, e.g. "
                              "[recon_mse].")
    if t.select_best_by is not None:
        samples = _samples_during_training(config)
        valid = resolve_metrics(t.eval_metrics, capabilities, samples, features, label, digits)
        if t.select_best_by not in METRICS or t.select_best_by not in valid:
            article = "an" if cls.__name__[:1] in "AEIOU" else "a"
            note = "" if samples else (f" ({article} {cls.__name__} samples only after training, once its latent "
                                       "prior is fitted)")
            raise ConfigError(f"'train.select_best_by' must be one of the evaluated metrics{note}: "
                              f"{', '.join(valid)}; got {t.select_best_by!r}.")
        if t.eval_every < 1:
            raise ConfigError("'train.select_best_by' needs evaluations during training: set train.eval_every "
                              "(e.g. 500 steps).")


def _samples_during_training(config) -> bool:
    """Whether the model of ``config`` can sample before training ends: not when it samples from a latent prior
    (:class:`vaegan.priors.LatentPrior`) fitted after training (an AE; a VAE with ``prior: gmm`` or ``prior: flow``)."""
    import torch

    with torch.device("meta"):  # no memory, no initialisation cost
        model = config.model_class(**config.model_kwargs)
    prior = getattr(model, "latent_prior", None)
    return not getattr(prior, "needs_fit", False)


class EvalHook:
    """Runs the evaluations of one training run (call :meth:`step` after each optimisation step)."""

    def __init__(self, config, output_dir: Path, accelerator, *, resumed: bool = False,
                 wait: Callable[[], None] | None = None):
        self.config, self.output_dir, self.accelerator = config, Path(output_dir), accelerator
        self.wait = wait or accelerator.wait_for_everyone  # the others wait while the main process evaluates
        t = config.train
        self.enabled = t.eval_every > 0 or t.eval_metrics is not None
        self.best: dict[str, Any] | None = None
        best_file = self.output_dir / BEST_STATE
        if resumed and t.select_best_by and best_file.is_file():  # a resumed run remembers its best so far
            self.best = json.loads(best_file.read_text())

    def forget_best(self) -> None:
        """A fresh run: drop the best model an earlier run in this folder left (main process only)."""
        self.best = None
        (self.output_dir / BEST_STATE).unlink(missing_ok=True)
        model_dir = self.output_dir / BEST_DIR
        if model_dir.is_dir():
            shutil.rmtree(model_dir)

    def _metric_names(self, model) -> list[str]:
        """``train.eval_metrics`` (null: all that apply), less those that do not apply yet (an AE before its prior
        is fitted cannot sample)."""
        from ..metrics.evaluate import default_features, digit_classes
        from ..metrics.registry import resolve_metrics

        requested = self.config.train.eval_metrics
        usable = resolve_metrics(None, model.capabilities(), model.can_sample,
                                 default_features(self.config.data.source, requested),
                                 digit_classes=digit_classes(model))
        return usable if requested is None else [n for n in requested if n in usable]

    def _evaluate(self, model, num_samples: int, iwae_samples: int, names: list[str],
                  progress: bool = False) -> dict[str, Any]:
        from ..metrics import evaluate

        return evaluate(model, data=self.config.data.source, num_samples=num_samples, seed=self.config.train.seed,
                        metrics=names, cache_dir=self.config.data.cache_dir, iwae_samples=iwae_samples,
                        progress=progress, binarize=self.config.data.binarize != "none")

    def step(self, model, step: int) -> None:
        """A cheap evaluation every ``train.eval_every`` steps: log it, keep the best model."""
        t, acc = self.config.train, self.accelerator
        if not t.eval_every or step % t.eval_every:
            return
        if acc.is_main_process:
            result = self._evaluate(model, t.eval_num_samples, PERIODIC_IWAE_SAMPLES, self._metric_names(model))
            acc.log({f"eval/{k}": v for k, v in result["metrics"].items()}, step=step)
            self._keep_if_best(model, step, result["metrics"])
        self.wait()

    def _keep_if_best(self, model, step: int, metrics: dict[str, float]) -> None:
        from ..metrics.registry import METRICS

        name = self.config.train.select_best_by
        if not name or name not in metrics:
            return
        value, higher = metrics[name], METRICS[name].higher_is_better
        if self.best is not None and not (value > self.best["value"] if higher else value < self.best["value"]):
            return
        model.save_pretrained(self.output_dir / BEST_DIR, model_card=False)
        self.best = {"metric": name, "value": value, "step": step}
        (self.output_dir / BEST_STATE).write_text(json.dumps(self.best))
        logger.info("new best %s = %.6g at step %d", name, value, step)

    def restore_best(self, model) -> dict[str, Any] | None:
        """Load the best weights into ``model`` (every process) when ``select_best_by`` picked some."""
        self.accelerator.wait_for_everyone()
        best_file = self.output_dir / BEST_STATE
        if not self.config.train.select_best_by or not best_file.is_file():
            return None
        from safetensors.torch import load_file

        best = json.loads(best_file.read_text())
        state = load_file(self.output_dir / BEST_DIR / "diffusion_pytorch_model.safetensors")
        model.load_state_dict(state, strict=True)
        return best

    def final(self, model) -> dict[str, Any] | None:
        """The full evaluation for the model card (main process), or None when evaluation is not configured."""
        if not self.enabled or not self.accelerator.is_main_process:
            return None
        from ..metrics.evaluate import DEFAULT_IWAE_SAMPLES

        num_samples, names = self.config.train.final_eval_num_samples, self._metric_names(model)
        print(f"Evaluating the final model: {num_samples:,} samples, metrics {', '.join(names)} (the model card's "
              "numbers; this can take minutes)", flush=True)
        started = time.time()
        # A live bar on a terminal, as for training (vaegan.training.progress); nothing more in a log.
        result = self._evaluate(model, num_samples, DEFAULT_IWAE_SAMPLES, names, progress=sys.stderr.isatty())
        print(f"Evaluated in {time.time() - started:.0f} s.", flush=True)
        result.pop("model", None)
        self.accelerator.log({f"final/{k}": v for k, v in result["metrics"].items()})
        return result
