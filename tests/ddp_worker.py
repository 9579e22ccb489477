"""Run by ``accelerate launch`` in test_distributed.py: train, then report this rank's view as JSON."""

import json
import sys
from pathlib import Path

from training_utils import tiny_config, weights_sha256

from vaegan.training import Trainer


def main(family: str, output_dir: str) -> None:
    trainer = Trainer(tiny_config(family, Path(output_dir), epochs=1))
    trainer.train()
    acc = trainer.accelerator
    report = {"rank": acc.process_index, "world_size": acc.num_processes,
              "weights_sha256": weights_sha256(trainer.model),
              "backend": acc.state.backend, "distributed_type": str(acc.distributed_type),
              "steps": trainer.state.step}
    Path(output_dir, f"rank{acc.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
