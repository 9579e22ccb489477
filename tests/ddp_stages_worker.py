"""Run by ``accelerate launch`` in test_protocol_training.py: a two-stage family on two processes, then this rank's
view as JSON."""

import json
import sys
from pathlib import Path

from test_protocol_training import TWO_STAGES, TwoStageToy, _config
from training_utils import weights_sha256

from vaegan.training import Trainer


def main(output_dir: str) -> None:
    trainer = Trainer(_config("TwoStageToy", Path(output_dir), TWO_STAGES))
    trainer.train()
    acc = trainer.accelerator
    report = {"world_size": acc.num_processes, "weights_sha256": weights_sha256(trainer.model),
              "steps": trainer.state.step, "stage_calls": TwoStageToy.stage_calls}
    Path(output_dir, f"rank{acc.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
