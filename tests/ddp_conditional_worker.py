"""Run by ``accelerate launch`` in test_conditional_training.py: train a class-conditional VAE on two processes and
report, per rank, whether every label that reached the model is the label of its own image."""

import hashlib
import json
import sys
from pathlib import Path

import torch
from training_utils import TINY_MODELS, weights_sha256

from vaegan.training import Trainer
from vaegan.training.config import config_from_dict


def _key(image: torch.Tensor) -> str:
    return hashlib.sha256(image.contiguous().numpy().tobytes()).hexdigest()


def main(output_dir: str) -> None:
    config = config_from_dict({
        "model": {**TINY_MODELS["vae"], "num_classes": 10},
        "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": output_dir, "epochs": 1, "batch_size": 32, "num_preview_images": 10},
    })
    trainer = Trainer(config)
    truth = {_key(image): label for image, label in trainer.train_set}
    seen: dict[str, int] = {}
    report = {"checked": 0, "mismatched": 0}
    compute_loss = trainer.model.compute_loss

    def checking_compute_loss(phase, images, step, class_labels=None):
        if not trainer.model.training:  # the held-out loss at the end, not a training batch
            return compute_loss(phase, images, step, class_labels=class_labels)
        for image, label in zip(images.detach().cpu(), class_labels.cpu().tolist(), strict=True):
            key = _key(image)
            report["checked"] += 1
            report["mismatched"] += truth[key] != label
            seen[key] = label
        return compute_loss(phase, images, step, class_labels=class_labels)

    trainer.model.compute_loss = checking_compute_loss
    trainer.train()
    acc = trainer.accelerator
    report.update(rank=acc.process_index, world_size=acc.num_processes, weights_sha256=weights_sha256(trainer.model),
                  images=sorted(seen), classes_seen=sorted(set(seen.values())))
    Path(output_dir, f"rank{acc.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
