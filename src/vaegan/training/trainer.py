"""One Accelerate training loop for every model family.

The loop knows nothing about AEs, VAEs or GANs: it asks the model for its ``training_phases`` (one
optimizer each), its ordered training stages (``stages()``: the phases each trains, run one after the other),
which phases run at a step (``phase_is_active``, e.g. the generator every ``n_critic`` steps), their losses
(``compute_loss``) and hooks (``on_train_start``, ``on_stage_start``, ``after_optimizer_step``,
``on_train_end``). Previews and end-of-run figures ask the model's capabilities (``can_sample``,
``can_reconstruct``, ``has_latent_space``). A new family plugs in by implementing those methods.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import (
    HELDOUT_BINARIZE_SEED,
    BinarizedImages,
    dataset_id,
    describe_source,
    load_image_dataset,
)
from ..errors import CheckpointError, ConfigError, DiskFullError, VaeganError
from ..files import apply_umask, check_output_path, is_disk_full, write_file, writing
from ..imageprep import BadImages, auto_num_workers
from ..models import AutoModel, GenerativeModel
from ..streaming import collate_pairs
from .checkpoints import (  # the listing names are also importable from here
    CHECKPOINT_PREFIX,
    checkpoint_problem,
    list_checkpoints,
    model_mismatch,
    resolve_resume,
    rng_restore_problem,
    write_manifest,
)
from .config import TrainConfig, TrainingConfig
from .evaluation import EvalHook
from .finetune import base_model_summary, check_data_shape, recorded_training_config, shape_check_applies
from .outputs import (
    FINISHED_MARKER,
    check_outputs_are_vaegans,
    claim_output_dir,
    clear_run_outputs,
    earlier_run_outputs,
)
from .progress import Progress
from .running import RunningMeans, non_finite, prepare_networks
from .schedules import lr_factor
from .stages import Stage, check_resumed_stage, check_stage_name, epoch_limit, plan_stages, stage_at
from .tracking import JSONLinesTracker
from .waiting import MainProcessWait

logger = logging.getLogger(__name__)

BAD_IMAGES_FILE = "bad_images.txt"  # images skipped with data.on_bad_image: skip


class TrainingDivergedError(VaeganError, RuntimeError):
    """A loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclasses.dataclass
class TrainingState:
    """Where the run is; saved as ``trainer_state.json`` in every checkpoint (JSON: nothing is unpickled)."""

    step: int = 0  # completed optimisation steps
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    stage: str | None = None  # the training stage of the next step (None in checkpoints older than stages)
    stages: list[str] | None = None  # the stages the run trains (one with --stage)

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("step", "epoch", "batches_in_epoch"):
            setattr(self, key, int(state.get(key, 0)))
        self.stage = state.get("stage")
        self.stages = state.get("stages")


class PhaseLoss(nn.Module):
    """Runs ``model.compute_loss`` inside ``forward`` so DDP gradient sync and autocast apply to it."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, phase: str, step: int,
                class_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.model.compute_loss(phase, images, step, class_labels=class_labels)


def _checkpoint_step(path: Path) -> int:
    digits = path.name[len(CHECKPOINT_PREFIX):]
    return int(digits) if path.name.startswith(CHECKPOINT_PREFIX) and digits.isdigit() else -1


def build_model(config: TrainingConfig, init_from: str | None) -> GenerativeModel:
    """A fresh model from ``config.model``, or a pretrained one (``init_from``) with the config's changes.

    Changes that keep the weights' shapes (loss, beta, ...) are applied; any that change them are refused.
    """
    cls = config.model_class
    if init_from is None:
        return cls(**config.model_kwargs)
    pretrained = AutoModel.from_pretrained(init_from)
    if not isinstance(pretrained, cls):
        raise ConfigError(f"--init-from {init_from} holds a {type(pretrained).__name__}, but the config trains a "
                          f"{cls.__name__}; set model.class: {type(pretrained).__name__} or pick another model.")
    base = {k: v for k, v in pretrained.config.items() if not k.startswith("_")}
    changed = {k: v for k, v in config.model_kwargs.items() if base.get(k) != (list(v) if isinstance(v, tuple) else v)}
    model = cls(**{**base, **changed})
    try:
        model.load_state_dict(model.adapt_pretrained_state(pretrained.state_dict()), strict=True)
    except RuntimeError as err:
        raise ConfigError(
            f"model settings {sorted(changed)} differ from the pretrained model {init_from} and change the shapes of "
            f"its weights; remove them from the config to fine-tune, or train from scratch without --init-from. "
            f"({str(err).splitlines()[0]})"
        ) from err
    return model


def make_optimizer(settings: TrainConfig, phase: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer of ``phase`` with the ``train`` settings (``config.stage_settings(stage)`` for a stage)."""
    t = settings
    lr = t.phase_learning_rates.get(phase, t.learning_rate)
    if t.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    elif t.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    elif t.optimizer == "rmsprop":
        optimizer = torch.optim.RMSprop(params, lr=lr, weight_decay=t.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=lr, momentum=t.betas[0], weight_decay=t.weight_decay)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr  # the base rate train.lr_scheduler scales (the key torch's LR schedulers use)
    return optimizer


def apply_lr_schedule(optimizer: torch.optim.Optimizer, settings: TrainConfig, stage: Stage, step: int) -> None:
    """Set the learning rate of the step after ``step`` completed steps: the base rate times the factor of
    ``train.lr_scheduler`` at that point of ``stage``."""
    factor = lr_factor(settings.lr_scheduler, settings.lr_warmup_steps, step - stage.start, stage.end - stage.start)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


class Trainer:
    """Trains ``config.model`` on ``config.data`` with Accelerate; see :func:`train`."""

    def __init__(self, config: TrainingConfig, *, resume: str | None = None, init_from: str | None = None,
                 push_to_hub: str | None = None, overwrite: bool = False, stage: str | None = None):
        from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
        from accelerate.utils import set_seed

        self.config = config
        self.output_dir = check_output_path(config.train.output_dir, "train.output_dir", folder=True)
        self.push_to_hub = push_to_hub or config.hub.repo_id
        self.init_from = init_from
        self.overwrite = overwrite
        if overwrite and resume:
            raise ConfigError("--overwrite starts afresh and --resume continues a run; pass only one of them.")
        if overwrite and init_from and _is_within(Path(init_from), self.output_dir):
            raise ConfigError(f"--overwrite would delete the model being fine-tuned ({init_from} is inside "
                              f"{self.output_dir}); choose another train.output_dir.")
        check_stage_name(config, stage)
        foreign = check_outputs_are_vaegans(self.output_dir)
        if foreign:  # vaegan replaces and deletes only what it wrote itself
            raise ConfigError(foreign)
        t = config.train
        self.streaming = config.data.streaming
        multi_phase = len(config.model_class.training_phases) > 1
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            log_with=[JSONLinesTracker(self.output_dir / "metrics.jsonl"), *self._available_trackers()],
            project_dir=str(self.output_dir),
            # A GAN's discriminator phase leaves the generator's parameters without gradients.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=multi_phase)],
            # A stream is sharded across processes, not read by process 0 and dispatched (see vaegan.streaming).
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=t.seed,
                                                      dispatch_batches=False if self.streaming else None),
        )
        # Each process draws its own noise (GAN latents, VAE eps); DDP copies rank 0's initial weights to all.
        set_seed(t.seed, device_specific=True)
        self.main_wait = MainProcessWait(self.accelerator)
        with self.main_wait.main_process_first():  # one download, then the other processes read the cache
            self.model = build_model(config, init_from)
            self.train_set, self.heldout_set = self._datasets()
            base_config = recorded_training_config(init_from) if init_from else None
            self.base_summary = base_model_summary(init_from, config, base_config) if init_from else {}
        if shape_check_applies(config, init_from, base_config):
            check_data_shape(self.train_set, self.model, source=config.data.source,
                             model_name=init_from or f"({config.model['class']} of the config)")
        self.conditional = self.model.num_classes is not None
        if self.conditional:
            from .labels import check_labelled_dataset

            check_labelled_dataset(self.model, self.train_set, config.data)
        if not self.streaming and len(self.train_set) < t.batch_size * self.accelerator.num_processes:
            raise ConfigError(f"data: {len(self.train_set)} training images are fewer than one batch "
                              f"(train.batch_size={t.batch_size} x {self.accelerator.num_processes} processes); "
                              "lower train.batch_size or use more data.")
        if self.streaming:  # shuffled by the stream itself (shard order + buffer, reseeded by set_epoch)
            loader = DataLoader(self.train_set, batch_size=t.batch_size, drop_last=True, collate_fn=collate_pairs,
                                **self._worker_options())
        else:
            loader = DataLoader(self.train_set, batch_size=t.batch_size, shuffle=True, drop_last=True,
                                generator=torch.Generator().manual_seed(t.seed), **self._worker_options())
        if resume is None:  # a resumed run has what this computes in its checkpoint
            self._start_model()
        prepare_networks(self.model, compile=t.compile, channels_last=t.channels_last)
        # One optimizer for each phase of each stage (a stage starts with fresh optimizer state and its own
        # settings), all prepared once; a one-stage family has one per phase, as its checkpoints always had.
        stages = self.model.stages()
        keys = [(name, phase) for name in ([stage] if stage else stages) for phase in stages[name]]
        optimizers = [make_optimizer(config.stage_settings(name), phase, self.model.phase_parameters(phase))
                      for name, phase in keys]
        prepared = self.accelerator.prepare(PhaseLoss(self.model), *optimizers, loader)
        self.loss_module, self.loader = prepared[0], prepared[-1]
        self.stage_optimizers: dict[str, dict[str, torch.optim.Optimizer]] = {name: {} for name, _ in keys}
        for (name, phase), optimizer in zip(keys, prepared[1:-1], strict=True):
            self.stage_optimizers[name][phase] = optimizer
        # Accelerate also steps on an epoch's last, shorter accumulation window; a stream has no length.
        steps_per_epoch = None if self.streaming else math.ceil(len(self.loader) / t.gradient_accumulation_steps)
        self.plan: list[Stage] = plan_stages(config, steps_per_epoch, stage)
        phases = self.model.training_phases
        self.phase_params = {p: {id(q) for q in self.model.phase_parameters(p)} for p in phases}
        self.state = TrainingState()
        self.resumed = resume is not None
        self.started_stage: str | None = None  # the stage this process has entered (its hooks ran)
        if resume:
            path = resolve_resume(self.output_dir, resume)
            recorded = json.loads((path / "trainer_state.json").read_text())
            check_resumed_stage(self.plan, recorded, str(path))
            self._load_checkpoint(path)
            problem = rng_restore_problem(path, self.accelerator.process_index)  # accelerate only logs this
            if problem:
                raise CheckpointError(f"--resume: the random number generators were not restored from {path}: "
                                      f"{problem}. Resume from an earlier checkpoint of the run (--resume PATH).")
            self.state.load_state_dict(recorded)
            self._apply_optimizer_settings()
            self._print(f"Resumed from {path} at step {self.state.step} (epoch {self.state.epoch}).")
        elif not overwrite:
            earlier = earlier_run_outputs(self.output_dir)
            if "checkpoints" in earlier:
                raise ConfigError(f"{self.output_dir} already holds checkpoints of an earlier run; continue it with "
                                  "--resume latest, start afresh with --overwrite (removes only what vaegan wrote "
                                  "there), or choose another train.output_dir.")
            if earlier:
                raise ConfigError(f"{self.output_dir} already holds a trained model (model/) of an earlier run; "
                                  "retrain with --overwrite (removes only what vaegan wrote there), or choose another "
                                  "train.output_dir.")
        self.last_metrics: dict[str, float] = {}
        self.eval_hook = EvalHook(config, self.output_dir, self.accelerator, resumed=self.resumed,
                                  wait=self.main_wait.wait)

    # ------------------------------------------------------------------ set-up helpers
    def _load_checkpoint(self, path: Path) -> None:
        """``accelerate.load_state``, refusing a checkpoint of another model (every checkpoint of its run holds that
        model: the run's config helps, an earlier checkpoint does not) and naming an earlier whole one on damage."""
        run_dir = path.parent.parent
        mismatch = model_mismatch(path, self.loss_module.state_dict())
        if mismatch:
            run_config = run_dir / "config.yaml"
            which = f" ({run_config})" if run_config.is_file() else ""
            raise CheckpointError(f"--resume: the checkpoint {path} holds another model than the config's "
                                  f"({mismatch}); resume with the config of that run{which}, or start afresh with "
                                  "--overwrite (or another train.output_dir).")
        try:
            self.accelerator.load_state(str(path))
        except Exception as err:  # damage the size checks cannot see: torch/safetensors raise many types
            step = _checkpoint_step(path)
            earlier = [c for c in list_checkpoints(run_dir) if _checkpoint_step(c) < step and not checkpoint_problem(c)]
            advice = (f"Resume from the earlier checkpoint: --resume {earlier[-1]}." if earlier else
                      "No earlier checkpoint of the run is whole: start afresh with --overwrite (or another "
                      "train.output_dir).")
            reason = (str(err).splitlines() or [type(err).__name__])[0].rstrip(".")
            raise CheckpointError(f"--resume: could not load the checkpoint {path}: {reason}. {advice}") from err

    def _apply_optimizer_settings(self) -> None:
        """A resumed run trains with the config's learning rates (betas, weight decay), not the ones saved in the
        checkpoint's optimizer state: lowering train.learning_rate after a divergence must take effect."""
        for stage, optimizers in self.stage_optimizers.items():
            settings = self.config.stage_settings(stage)
            for phase, optimizer in optimizers.items():
                fresh = make_optimizer(settings, phase, self.model.phase_parameters(phase))
                for group, wanted in zip(optimizer.param_groups, fresh.param_groups, strict=True):
                    saved = group.get("initial_lr", group["lr"])  # the base rate, before the schedule's factor
                    if saved != wanted["initial_lr"]:
                        self._print(f"Learning rate of {phase}: {wanted['initial_lr']:g} (the checkpoint's run used "
                                    f"{saved:g}).")
                    group.update({key: value for key, value in wanted.items() if key != "params"})

    def _available_trackers(self) -> list[str]:
        from accelerate.tracking import get_available_trackers

        available = {str(t) for t in get_available_trackers()}
        missing = [name for name in self.config.train.trackers if name not in available]
        if missing:
            logger.warning("train.trackers %s are not installed and will not log (pip install %s).",
                           missing, " ".join(missing))
        return [name for name in self.config.train.trackers if name in available]

    def _worker_options(self) -> dict[str, Any]:
        """DataLoader workers: ``data.num_workers``, or (null) none for in-memory data, else one per free core."""
        workers = self.config.data.num_workers
        if workers is None:
            in_memory = self.config.data.source.strip().lower() == "mnist-5k"
            workers = 0 if in_memory else auto_num_workers(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        return {"num_workers": workers, "persistent_workers": workers > 0}

    def _datasets(self):
        d, size, channels = self.config.data, self.model.config.image_size, self.model.config.in_channels
        self.bad_images = BadImages(d.on_bad_image, self.output_dir / BAD_IMAGES_FILE)
        common = dict(image_size=size, channels=channels, image_column=d.image_column, label_column=d.label_column,
                      holdout_fraction=d.holdout_fraction, seed=self.config.train.seed, cache_dir=d.cache_dir,
                      crop=d.crop, on_bad_image=self.bad_images)
        if self.streaming:
            return self._streaming_datasets()
        train_set = load_image_dataset(d.source, split="train", limit=d.limit, hflip=d.hflip, binarize=d.binarize,
                                       **common)
        try:
            heldout = load_image_dataset(d.source, split="test", limit=min(d.limit or 1000, 1000), **common)
            if d.binarize != "none":  # the same bits for every model (vaegan.data.binarize_heldout)
                heldout = BinarizedImages(heldout, "static", HELDOUT_BINARIZE_SEED)
        except (ValueError, OSError) as err:
            logger.warning("no held-out split for %s (%s); skipping held-out metrics.", d.source, err)
            heldout = None
        return train_set, heldout

    def _streaming_datasets(self):
        from ..streaming import load_streaming_dataset, load_streaming_heldout

        d, size, channels = self.config.data, self.model.config.image_size, self.model.config.in_channels
        columns = dict(image_column=d.image_column, label_column=d.label_column, cache_dir=d.cache_dir, crop=d.crop)
        train_set = load_streaming_dataset(d.source, image_size=size, channels=channels, seed=self.config.train.seed,
                                           hflip=d.hflip, on_bad_image=self.bad_images, **columns)
        try:
            heldout = load_streaming_heldout(d.source, image_size=size, channels=channels, **columns)
        except (ValueError, OSError) as err:
            logger.warning("no held-out split for %s (%s); skipping held-out metrics.", d.source, err)
            heldout = None
        return train_set, heldout

    def _training_batches(self, shuffle: bool = False) -> Iterable[Any]:
        """The training images (a stream: its first 10,240) in batches of 256 for the model's start / end hooks:
        ``(images, labels)`` pairs for a class-conditional model, else image batches."""
        shuffle = shuffle and not self.streaming
        batches = DataLoader(self.train_set, batch_size=256, collate_fn=collate_pairs if self.streaming else None,
                             shuffle=shuffle, generator=torch.Generator().manual_seed(self.config.train.seed))
        batches = itertools.islice(batches, 40 if self.streaming else None)
        device = self.model.device
        if self.conditional:
            return ((images, labels.to(device)) for images, labels in batches)
        return (images for images, _ in batches)

    def _start_model(self) -> None:
        """``model.on_train_start`` (e.g. clustering the training images); rank 0's result on every process."""
        self.model.on_train_start(self._training_batches(shuffle=True))
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast

            device = self.accelerator.device  # before `prepare` the model is still on the CPU
            for buffer in self.model.buffers():
                buffer.copy_(broadcast(buffer.detach().clone().to(device), from_process=0))

    def _train_images(self) -> int | None:
        """Images in the training set; None for a stream (no length)."""
        return None if self.streaming else len(self.train_set)

    def _print(self, message: str) -> None:
        self.accelerator.print(message)

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    # ------------------------------------------------------------------ the loop
    def train(self) -> Path:
        """Run (or continue) training; returns the folder of the saved model (``OUTPUT/model``)."""
        try:
            return self._train()
        except DiskFullError as err:
            raise self._disk_full(err.path) from err
        except Exception as err:  # a tracker's log, a preview grid: anything else that writes
            if is_disk_full(err):
                raise self._disk_full(getattr(err, "filename", None) or self.output_dir) from err
            raise

    def _disk_full(self, path: object) -> DiskFullError:
        """One line: what could not be written, and what is kept (a checkpoint is never deleted for a new one)."""
        checkpoints = list_checkpoints(self.output_dir)
        kept = (f"the previous checkpoint {checkpoints[-1]} is kept: continue from it with --resume latest once "
                "there is space" if checkpoints else "no checkpoint was written yet")
        return DiskFullError(f"No space left on device while writing {path}: free space or choose another "
                             f"train.output_dir; {kept}.", path)

    def _train(self) -> Path:
        t, acc = self.config.train, self.accelerator
        if acc.is_main_process:
            if self.overwrite:
                removed = clear_run_outputs(self.output_dir)
                if removed:
                    self._print(f"--overwrite: removed {len(removed)} outputs of an earlier run from {self.output_dir} "
                                "(other files kept).")
            claim_output_dir(self.output_dir)  # the marker first: what follows is vaegan's
            (self.output_dir / FINISHED_MARKER).unlink(missing_ok=True)  # written again when this run ends
            self.config.save(self.output_dir / "config.yaml")
            if not self.resumed:  # a fresh run starts a fresh metrics log and a fresh best model
                (self.output_dir / "metrics.jsonl").unlink(missing_ok=True)
                self.eval_hook.forget_best()
                (self.output_dir / BAD_IMAGES_FILE).unlink(missing_ok=True)
        acc.wait_for_everyone()
        acc.init_trackers("vaegan", config=_flat(self.config.to_dict()))
        total = self.plan[-1].end
        images = "a stream of images" if self.streaming else f"{len(self.train_set)} images"
        staged = "" if len(self.model.stages()) == 1 else " in the stages " + ", ".join(
            f"{s.name} ({s.end - s.start} steps)" for s in self.plan)
        counts = getattr(self.train_set, "class_counts", None)  # an image folder's classes
        if counts:
            images += f" ({', '.join(f'{name} {n}' for name, n in counts.items())})"
        self._print(f"Training {type(self.model).__name__} on {self.config.data.source}: {images}, "
                    f"{acc.num_processes} process(es), {total} steps{staged} -> {self.output_dir}")
        progress = Progress(total, self.state.step, enabled=acc.is_local_main_process)
        running, self.checked_step = RunningMeans(), self.state.step
        started, done = time.time(), self.state.step >= total
        while not done and self.state.epoch < epoch_limit(self.config, self.plan):
            self.loader.set_epoch(self.state.epoch)
            batches = (acc.skip_first_batches(self.loader, self.state.batches_in_epoch)
                       if self.state.batches_in_epoch else self.loader)
            exhausted = False
            for images, labels in batches:
                if t.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                stage = stage_at(self.plan, self.state.step)
                if stage.name != self.started_stage:
                    self._start_stage(stage)
                running.add(self._train_batch(images, labels if self.conditional else None))
                self.state.batches_in_epoch += 1
                if not acc.sync_gradients:
                    continue
                self.state.step += 1
                progress.update(1)
                if self.state.step % t.log_every == 0 or self.state.step in (total, stage.end):
                    self._log(running, progress, stage)
                if self.state.step % t.checkpoint_every == 0:
                    self._check_finite(running.reduce(acc))  # never checkpoint diverged weights
                    self.save_checkpoint()
                self.eval_hook.step(self.model, self.state.step)
                if self.state.step >= total:
                    done = True
                    break
            else:
                exhausted = True  # the loader ran out: the epoch is over (the only way to know for a stream)
            if exhausted or (not self.streaming and self.state.batches_in_epoch >= len(self.loader)):
                self.state.epoch += 1
                self.state.batches_in_epoch = 0
                if self.state.epoch % t.sample_every_epochs == 0:
                    self._save_preview(f"epoch_{self.state.epoch:03d}")
        progress.close()
        return self._finish(time.time() - started)

    def _start_stage(self, stage: Stage) -> None:
        """Enter ``stage``: a later stage of the model gets ``on_stage_start`` when its first step is next (also
        after resuming at that step), never again in the middle of the stage."""
        self.started_stage = stage.name
        if stage.first or self.state.step != stage.start:
            return
        self._print(f"Stage {stage.name!r} starts at step {stage.start} (phases: {', '.join(stage.phases)}).")
        self.model.on_stage_start(stage.name, self._training_batches())
        if self.accelerator.num_processes > 1:  # the hook may have changed weights: rank 0's on every process
            from accelerate.utils import broadcast

            for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
                tensor.data.copy_(broadcast(tensor.detach().clone(), from_process=0))

    def _train_batch(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One micro-batch through the phases of the current stage that are active at this step."""
        acc, logs = self.accelerator, {}
        stage = stage_at(self.plan, self.state.step)
        multi_phase = len(self.model.training_phases) > 1
        settings = self.config.stage_settings(stage.name)
        with acc.accumulate(self.loss_module):
            for phase, optimizer in self.stage_optimizers[stage.name].items():
                if not self.model.phase_is_active(phase, self.state.step):
                    continue
                apply_lr_schedule(optimizer, settings, stage, self.state.step)
                self._set_trainable(phase)
                losses = self.loss_module(images, phase=phase, step=self.state.step, class_labels=labels)
                acc.backward(losses["loss"])
                if acc.sync_gradients and self.config.train.max_grad_norm:
                    acc.clip_grad_norm_(self.model.phase_parameters(phase), self.config.train.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if acc.sync_gradients:
                    self.model.after_optimizer_step(phase)
                prefix = f"{phase}/" if multi_phase else ""
                logs.update({f"{prefix}{k}": v.detach() for k, v in losses.items()})  # no host sync here
        return logs

    def _set_trainable(self, phase: str) -> None:
        """Only the phase's parameters collect gradients (a GAN's G step must not touch D's gradients)."""
        if len(self.model.training_phases) > 1:
            active = self.phase_params[phase]
            for param in self.model.parameters():
                param.requires_grad_(id(param) in active)

    def _check_finite(self, means: dict[str, float]) -> None:
        """Stop on a NaN or infinite loss since the last check (losses are summed on the device in between)."""
        bad = non_finite(means)
        if not bad:
            self.checked_step = self.state.step
            return
        first, last = self.checked_step + 1, self.state.step
        when = f"at step {last}" if first == last else (
            f"at a step from {first} to {last} (checked every train.log_every steps; train.log_every=1 finds the "
            "exact step)")
        checkpoints = list_checkpoints(self.output_dir)
        good, then = ((f"the last good checkpoint is {checkpoints[-1]}", "then resume with --resume latest")
                      if checkpoints else
                      ("no checkpoint was written yet", "then start the run again with --overwrite"))
        raise TrainingDivergedError(
            f"Training diverged: {', '.join(bad)} became NaN or infinite {when} (epoch {self.state.epoch + 1}); "
            f"training stopped and nothing more was written: {good}. Lower train.learning_rate (or set "
            f"train.max_grad_norm), {then}."
        )

    def _log(self, running: RunningMeans, progress, stage: Stage) -> None:
        acc = self.accelerator
        metrics: dict[str, Any] = running.reduce(acc)  # the one host sync between two logging steps
        running.clear()
        self._check_finite(metrics)
        if len(self.model.stages()) > 1:  # a family trained in stages: every line says which one
            metrics["stage"] = stage.name
        seen = self.state.step * self.config.train.batch_size * acc.num_processes * \
            self.config.train.gradient_accumulation_steps
        self.bad_images.check(self._train_images() or seen)
        metrics["epoch"] = self.state.epoch + (0 if self.streaming else
                                               self.state.batches_in_epoch / max(len(self.loader), 1))
        acc.log(metrics, step=self.state.step)
        self.last_metrics = metrics
        progress.log(metrics)

    # ------------------------------------------------------------------ checkpoints and outputs
    def save_checkpoint(self) -> Path:
        """``accelerate.save_state`` into ``checkpoints/step_N``: staged, then renamed, then old ones pruned."""
        acc = self.accelerator
        final = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.state.step:08d}"
        staging = self.checkpoint_dir / f".{final.name}.partial"
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        acc.wait_for_everyone()
        try:
            with writing(final):
                acc.save_state(str(staging))
                acc.wait_for_everyone()
                if acc.is_main_process:
                    self.state.stage = stage_at(self.plan, self.state.step).name
                    self.state.stages = [stage.name for stage in self.plan]
                    (staging / "trainer_state.json").write_text(json.dumps(self.state.state_dict()))
                    write_manifest(staging)
        except BaseException:
            if acc.is_main_process:  # no half-written checkpoint stays behind; the older ones are untouched
                shutil.rmtree(staging, ignore_errors=True)
            raise
        if acc.is_main_process:
            apply_umask(staging)  # safetensors writes 0600 files
            shutil.rmtree(final, ignore_errors=True)  # a damaged one of the same step (--resume skipped it)
            os.replace(staging, final)
            for old in list_checkpoints(self.output_dir)[: -self.config.train.checkpoints_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _save_preview(self, name: str) -> None:
        """A grid of ``model.sample`` from a fixed seed (the same draw every epoch; a class-conditional model: one
        class a row); a model that cannot sample yet (an AE before its prior is fitted) shows reconstructions of
        held-out images when it can reconstruct, else nothing."""
        if not self.accelerator.is_main_process:
            return
        from ..figures import class_grid_labels, seeded
        from ..images import make_grid

        model, n, nrow = self.model, self.config.train.num_preview_images, None
        with model._eval_mode():
            if model.can_sample:
                labels = None
                if self.conditional:  # rows = classes
                    labels = class_grid_labels(model.num_classes, max(1, n // model.num_classes))
                    n, nrow = len(labels), len(labels) // model.num_classes
                images = model.sample(n, generator=seeded(self.config.train.seed), class_labels=labels)
            elif model.can_reconstruct and self.heldout_set is not None:
                items = [self.heldout_set[i] for i in range(min(n, len(self.heldout_set)))]
                originals = torch.stack([image for image, _ in items]).to(model.device)
                labels = torch.tensor([label for _, label in items], device=model.device) if self.conditional else None
                images = model.reconstruct(originals, class_labels=labels)
            else:
                return
        write_file(self.output_dir / "samples" / f"{name}.png", make_grid(images.float().cpu(), nrow=nrow).save)

    def _heldout_metrics(self) -> dict[str, float]:
        if self.heldout_set is None or len(self.model.training_phases) != 1:
            return {}
        model, total, count = self.model, 0.0, 0
        with model._eval_mode():
            for images, labels in DataLoader(self.heldout_set, batch_size=256):
                labels = labels.to(model.device) if self.conditional else None
                losses = model.compute_loss(model.training_phases[0], images.to(model.device), self.state.step,
                                            class_labels=labels)
                total += float(losses["loss"]) * len(images)
                count += len(images)
        return {"heldout_loss": total / count}

    def _finish(self, seconds: float) -> Path:
        acc = self.accelerator
        acc.wait_for_everyone()
        model = self.model
        if acc.num_processes > 1:
            # Parameters are in sync through DDP, but batch-norm statistics are per process (each saw its own
            # data and noise after DDP's last buffer broadcast): take rank 0's, the ones that get saved.
            from accelerate.utils import broadcast

            for buffer in model.buffers():
                buffer.copy_(broadcast(buffer.detach().clone(), from_process=0))
        best = self.eval_hook.restore_best(model)
        model.on_train_end(self._training_batches())
        model_dir = self.output_dir / "model"
        if acc.is_main_process:
            summary = self._summary(seconds)
            if best:
                summary["selected_by"] = f"{best['metric']} = {best['value']:.6g} at step {best['step']}"
            with writing(model_dir):  # the trained model is safe on disk before anything else can go wrong
                model.save_pretrained(model_dir, training_summary=summary,
                                      training_config=self.config.shareable_dict())
            evaluation = self._final_evaluation(model, model_dir)
            if evaluation:  # the card again, now with the evaluation (model-index)
                summary["evaluation"] = evaluation
                with writing(model_dir):
                    model.save_pretrained(model_dir, training_summary=summary,
                                          training_config=self.config.shareable_dict())
            self._write_figures(model, model_dir)
            text = json.dumps(summary, indent=2)
            for folder in (model_dir, self.output_dir):  # in model/ too, for a later `vaegan push`; the marker last
                write_file(folder / "training_summary.json", lambda staged: staged.write_text(text))
            if self.push_to_hub:
                url = model.push_to_hub(self.push_to_hub, private=self.config.hub.private or None,
                                        training_summary={**summary, "repo_id": self.push_to_hub},
                                        training_config=self.config.shareable_dict())
                self._print(f"Pushed to {url}")
            self._print(f"Model written to {model_dir} ({summary['metrics']})")
        # The main process evaluated, saved and maybe uploaded alone (no collective since on_train_end): the others
        # wait for it in a barrier that does not time out meanwhile (see vaegan.training.waiting).
        self.main_wait.wait()
        acc.end_training()
        return model_dir

    def _final_evaluation(self, model: GenerativeModel, model_dir: Path) -> dict[str, Any] | None:
        """The model card's evaluation (``train.eval_metrics``); a failure is one warning line, the model is saved."""
        try:
            return self.eval_hook.final(model)
        except DiskFullError:
            raise
        except Exception as err:  # noqa: BLE001 - metrics of any family; the saved model must not be lost to them
            reason = (str(err).strip().splitlines() or [""])[0]
            logger.warning("The final evaluation failed (%s: %s); the model is saved in %s without it: `vaegan "
                           "evaluate %s --update-card` adds it.", type(err).__name__, reason, model_dir, model_dir)
            return None

    def _write_figures(self, model: GenerativeModel, model_dir: Path) -> None:
        """``samples.png`` and, for a model with a latent space, ``interpolation.png`` / ``.gif``. The model is
        saved by now: a figure the family's code fails to make is one warning line, never a failed run (a full disk
        still stops the run: nothing more can be written)."""
        for name, write in (("samples.png", self._write_samples), ("interpolation.png", self._write_interpolation)):
            try:
                write(model)
            except DiskFullError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure of a family's sampling code; the model is saved
                reason = (str(err).strip().splitlines() or [""])[0]
                logger.warning("Could not write %s (%s: %s); the trained model is saved in %s.", name,
                               type(err).__name__, reason, model_dir)

    def _write_samples(self, model: GenerativeModel) -> None:
        from ..figures import save_class_grid, save_sample_grid

        if not model.can_sample:
            reason = model.cannot_sample_reason() or f"{type(model).__name__} cannot sample."
            self._print(f"No samples.png: {reason.splitlines()[0]}")
        elif self.conditional:  # rows = classes
            save_class_grid(model, self.output_dir / "samples.png", seed=self.config.train.seed)
        else:
            save_sample_grid(model, self.output_dir / "samples.png", num_samples=64, seed=self.config.train.seed)

    def _write_interpolation(self, model: GenerativeModel) -> None:
        from ..figures import save_interpolation

        if not model.has_latent_space:
            self._print(f"No interpolation: {type(model).__name__} has no latent space.")
            return
        start = end = label = None
        if self.heldout_set is not None and model.has_encoder and len(self.heldout_set) > 1:
            # Conditional: two styles of one class (the label carries the class, the latent the style).
            start, end, label = (self._two_of_one_class() if self.conditional
                                 else (*self._two_different_digits(), None))
        save_interpolation(model, self.output_dir / "interpolation.png", steps=10, seed=self.config.train.seed,
                           start=start, end=end, gif=self.output_dir / "interpolation.gif", class_labels=label)

    def _two_different_digits(self) -> tuple[torch.Tensor, torch.Tensor]:
        first_image, first_label = self.heldout_set[0]
        for i in range(1, len(self.heldout_set)):
            image, label = self.heldout_set[i]
            if label != first_label:
                return first_image, image
        return first_image, self.heldout_set[1][0]

    def _two_of_one_class(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        first_image, first_label = self.heldout_set[0]
        for i in range(1, len(self.heldout_set)):
            image, label = self.heldout_set[i]
            if label == first_label:
                return first_image, image, first_label
        return first_image, self.heldout_set[1][0], first_label

    def _summary(self, seconds: float) -> dict[str, Any]:
        t, acc = self.config.train, self.accelerator
        metrics = {k: round(v, 6) for k, v in self.last_metrics.items() if k not in ("epoch", "stage")}
        metrics.update({k: round(v, 6) for k, v in self._heldout_metrics().items()})
        return {
            "dataset": describe_source(self.config.data.source),
            "dataset_id": dataset_id(self.config.data.source),
            "train_images": self._train_images(),
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "batch_size": t.batch_size * acc.num_processes * t.gradient_accumulation_steps,
            "optimizer": f"{t.optimizer} (lr {t.learning_rate}" + (
                f", per phase {t.phase_learning_rates}" if t.phase_learning_rates else "") + (
                "" if t.lr_scheduler == "constant" and not t.lr_warmup_steps else
                f", {t.lr_scheduler} schedule, {t.lr_warmup_steps} warm-up steps") + ")",
            "mixed_precision": t.mixed_precision,
            "hardware": f"{acc.num_processes} x {acc.device.type}",
            "training_seconds": round(seconds, 1),
            "init_from": self.init_from,
            **self.base_summary,
            "license": self.config.hub.license,
            **({"stages": {s.name: s.end - s.start for s in self.plan}} if len(self.model.stages()) > 1 else {}),
            "metrics": metrics,
        }


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested config sections for trackers that only take scalars."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) or value is None else str(value)
    return flat


def _is_within(path: Path, folder: Path) -> bool:
    return path.exists() and path.resolve().is_relative_to(folder.resolve())


def train(config: TrainingConfig, *, resume: str | None = None, init_from: str | None = None,
          push_to_hub: str | None = None, overwrite: bool = False, stage: str | None = None) -> Path:
    """Train a model from a :class:`~vaegan.training.config.TrainingConfig`; returns ``OUTPUT/model``.

    ``resume``: ``"latest"`` or a checkpoint folder; ``init_from``: a Hub id or folder to fine-tune;
    ``push_to_hub``: a repo id to upload the final model to; ``overwrite``: start afresh in an ``output_dir`` that
    holds an earlier run, removing only what vaegan wrote there; ``stage``: train only this stage of a family
    trained in stages (e.g. ``"prior"`` for the autoencoder of ``init_from``).
    """
    return Trainer(config, resume=resume, init_from=init_from, push_to_hub=push_to_hub, overwrite=overwrite,
                   stage=stage).train()

