"""Images per second of vaegan's Accelerate trainer next to a bare PyTorch loop: same model, data, batch size.

The bare loop is what one would write by hand: a DataLoader, the model's own ``compute_loss`` for each of its
phases, backward, optimizer step; no Accelerate, no logging, no checks. The trainer's overhead is the ratio
(goal: >= 0.97). Both skip ``--warmup`` steps before the clock starts and run on the same device
(the GPU when there is one).

    python benchmarks/throughput.py                          # configs/mnist-vae.yaml, 200 timed steps
    python benchmarks/throughput.py --config configs/mnist-dcgan.yaml --steps 100 --batch-size 128
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(config, dataset, steps: int, warmup: int, device: torch.device) -> float:
    """img/s of a hand-written loop over the model's phases."""
    from vaegan.training.trainer import make_optimizer

    torch.manual_seed(config.train.seed)
    model = config.model_class(**config.model_kwargs).to(device).train()
    phases = model.training_phases
    optimizers = {p: make_optimizer(config.train, p, model.phase_parameters(p)) for p in phases}
    params = {p: {id(q) for q in model.phase_parameters(p)} for p in phases}
    workers = config.data.num_workers  # null: what the trainer picks (none for mnist-5k, else one per free core)
    if workers is None:
        from vaegan.imageprep import auto_num_workers

        workers = 0 if config.data.source.strip().lower() == "mnist-5k" else auto_num_workers()
    loader = DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0)
    step, started = 0, None
    while step < warmup + steps:
        for images, labels in loader:
            if step == warmup:
                _sync(device)
                started = time.perf_counter()
            images = images.to(device, non_blocking=True)
            extra = {"class_labels": labels.to(device)} if model.num_classes else {}  # class-conditional models
            for phase, optimizer in optimizers.items():
                if not model.phase_is_active(phase, step):
                    continue
                if len(phases) > 1:
                    for param in model.parameters():
                        param.requires_grad_(id(param) in params[phase])
                loss = model.compute_loss(phase, images, step, **extra)["loss"]
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                model.after_optimizer_step(phase)
            step += 1
            if step == warmup + steps:
                break
    _sync(device)
    return steps * config.train.batch_size / (time.perf_counter() - started)


def vaegan_trainer(config, steps: int, warmup: int, device: torch.device) -> float:
    """img/s of vaegan's Trainer (logging every ``train.log_every`` steps), timed between two of its steps."""
    from vaegan.training import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        train = dataclasses.replace(config.train, output_dir=tmp, max_steps=warmup + steps, epochs=10**6,
                                    checkpoint_every=10**9, sample_every_epochs=10**6)
        trainer = Trainer(dataclasses.replace(config, train=train))
        marks: dict[int, float] = {}
        original = trainer._train_batch

        def timed_batch(images, labels=None):
            if trainer.state.step == warmup and warmup not in marks:
                _sync(device)
                marks[warmup] = time.perf_counter()
            return original(images, labels)

        def finish(_seconds):  # the clock stops after the last step; saving the model is not part of a step
            _sync(device)
            marks[-1] = time.perf_counter()
            trainer.accelerator.end_training()

        trainer._train_batch, trainer._finish = timed_batch, finish
        trainer.train()
        return steps * config.train.batch_size / (marks[-1] - marks[warmup])


def _reset_accelerate_state() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "mnist-vae.yaml"))
    parser.add_argument("--steps", type=int, default=200, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two loops this many times")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()

    from vaegan.data import load_image_dataset
    from vaegan.training import load_config

    overrides = list(args.overrides) + ([f"train.batch_size={args.batch_size}"] if args.batch_size else [])
    config = load_config(args.config, overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = config.model_class(**config.model_kwargs)
    d = config.data
    dataset = load_image_dataset(d.source, split="train", image_size=model.config.image_size,
                                 channels=model.config.in_channels, image_column=d.image_column,
                                 label_column=d.label_column, holdout_fraction=d.holdout_fraction,
                                 seed=config.train.seed, limit=d.limit, cache_dir=d.cache_dir)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(config, dataset, args.steps, args.warmup, device))
        ours.append(vaegan_trainer(config, args.steps, args.warmup, device))
        _reset_accelerate_state()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{Path(args.config).name}: {type(model).__name__}, batch {config.train.batch_size}, {args.steps} timed "
          f"steps after {args.warmup} warm-up, {args.repeats} repeat(s), {name}, torch {torch.__version__}")
    print(f"bare PyTorch loop : {statistics.median(bare):9.1f} img/s  ({', '.join(f'{v:.1f}' for v in bare)})")
    print(f"vaegan Trainer    : {statistics.median(ours):9.1f} img/s  ({', '.join(f'{v:.1f}' for v in ours)})")
    print(f"ratio trainer/bare: {statistics.median(ours) / statistics.median(bare):.3f}")


if __name__ == "__main__":
    main()
