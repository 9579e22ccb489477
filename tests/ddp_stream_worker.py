"""Run by ``accelerate launch`` in test_streaming.py: one streamed epoch, then report which images this rank used."""

import dataclasses
import json
import sys
from pathlib import Path

from streaming_utils import image_ids, streaming_config

from vaegan.training import Trainer


def main(data_dir: str, output_dir: str) -> None:
    config = streaming_config(Path(data_dir), Path(output_dir), max_steps=4)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, num_workers=2))
    trainer = Trainer(config)
    seen: list[int] = []
    original = trainer._train_batch

    def train_batch(images, labels=None):
        seen.extend(image_ids(images))
        return original(images, labels)

    trainer._train_batch = train_batch
    trainer.train()
    acc = trainer.accelerator
    report = {"rank": acc.process_index, "world_size": acc.num_processes, "backend": acc.state.backend,
              "steps": trainer.state.step, "seen": seen, "num_workers": trainer.loader.num_workers}
    Path(output_dir, f"rank{acc.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
