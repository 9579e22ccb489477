"""--resume checks checkpoints: `latest` falls back from a damaged newest one, a damaged PATH is a clear error."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from training_utils import reset_accelerate_state

from vaegan.errors import CheckpointError
from vaegan.training import Trainer, train
from vaegan.training.checkpoints import MANIFEST, checkpoint_problem, rng_restore_problem
from vaegan.training.config import config_from_dict
from vaegan.training.trainer import list_checkpoints, resolve_resume


def _config(output_dir, **train):
    return config_from_dict({
        "model": {"class": "VAE", "latent_dim": 2, "block_out_channels": [4, 8], "strides": [2, 2]},
        "data": {"source": "mnist-5k", "limit": 128},
        "train": {"output_dir": str(output_dir), "epochs": 2, "batch_size": 32, "checkpoint_every": 2,
                  "num_preview_images": 4, **train},
    })


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run stopped at step 6 with checkpoints at steps 2, 4 and 6."""
    out = tmp_path_factory.mktemp("run") / "run"
    try:
        train(_config(out, max_steps=6))
    finally:
        reset_accelerate_state()
    return out


@pytest.fixture
def run(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _step(run, n):
    return run / "checkpoints" / f"step_{n:08d}"


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_checkpoints_are_whole_and_have_a_manifest(run):
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002", "step_00000004", "step_00000006"]
    for checkpoint in list_checkpoints(run):
        assert (checkpoint / MANIFEST).is_file()
        assert checkpoint_problem(checkpoint) is None


def test_latest_skips_a_truncated_newest_checkpoint_and_names_it(run, caplog):
    _truncate(_step(run, 6) / "model.safetensors")
    with caplog.at_level(logging.WARNING):
        assert resolve_resume(run, "latest") == _step(run, 4)
    assert "step_00000006" in caplog.text and "model.safetensors has" in caplog.text and "truncated" in caplog.text


@pytest.mark.parametrize("victim", ["optimizer.bin", "trainer_state.json", "random_states_0.pkl"])
def test_latest_skips_checkpoints_with_deleted_files(run, victim, caplog):
    (_step(run, 6) / victim).unlink()
    (_step(run, 4) / "model.safetensors").unlink()
    with caplog.at_level(logging.WARNING):
        assert resolve_resume(run, "latest") == _step(run, 2)
    assert f"missing: {victim}" in caplog.text and "missing: model.safetensors" in caplog.text


def _resume_latest_and_finish(run: Path, resumed_at: int) -> None:
    """``--resume latest`` starts at step ``resumed_at`` and trains the run to its end (8 steps)."""
    try:
        trainer = Trainer(_config(run, max_steps=8), resume="latest")
        assert trainer.state.step == resumed_at
        trainer.train()
    finally:
        reset_accelerate_state()
    assert trainer.state.step == 8 and (run / "model" / "config.json").is_file()


def test_resume_latest_continues_from_the_previous_good_checkpoint(run):
    _truncate(_step(run, 6) / "optimizer.bin")
    _resume_latest_and_finish(run, resumed_at=4)


def test_resume_path_to_a_damaged_checkpoint_is_a_clear_error(run):
    _truncate(_step(run, 6) / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"step_00000006: the checkpoint is damaged: .*model.safetensors has"):
        resolve_resume(run, str(_step(run, 6)))
    with pytest.raises(CheckpointError, match="damaged"):
        Trainer(_config(run), resume=str(_step(run, 6)))
    reset_accelerate_state()


@pytest.mark.parametrize(("model", "detail"), [
    ({"block_out_channels": [8, 8]}, "model.encoder.features.0.weight is [4, 1, 3, 3] in the checkpoint, "
                                     "[8, 1, 3, 3] in the config's model"),
    ({"class": "AE"}, "model.encoder.head.weight is [4, 392] in the checkpoint, [2, 392]"),
])
def test_resume_with_another_model_says_so_and_advises_no_earlier_checkpoint(run, model, detail):
    """Every checkpoint of the run holds the other model: an earlier one cannot help, the run's config can."""
    config = _config(run)
    config.model.update(model)
    with pytest.raises(CheckpointError) as info:
        try:
            Trainer(config_from_dict(config.to_dict()), resume="latest")
        finally:
            reset_accelerate_state()
    message = str(info.value)
    assert f"{_step(run, 6)} holds another model than the config's" in message and detail in message
    assert f"resume with the config of that run ({run / 'config.yaml'})" in message and "--overwrite" in message
    assert "earlier checkpoint" not in message and "\n" not in message


def test_unloadable_checkpoint_names_the_earlier_one_that_can_help(run, monkeypatch):
    """Damage the checks cannot see: the advice names a whole earlier checkpoint, or says there is none."""
    from accelerate import Accelerator

    def load_state(self, input_dir=None, **kwargs):
        raise RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory\nmore")

    monkeypatch.setattr(Accelerator, "load_state", load_state)
    for resume, advice in [("latest", f"Resume from the earlier checkpoint: --resume {_step(run, 4)}."),
                           (str(_step(run, 2)), "No earlier checkpoint of the run is whole: start afresh with "
                                                "--overwrite (or another train.output_dir).")]:
        with pytest.raises(CheckpointError) as info:
            try:
                Trainer(_config(run), resume=resume)
            finally:
                reset_accelerate_state()
        checkpoint = _step(run, 6) if resume == "latest" else _step(run, 2)
        assert str(info.value) == (f"--resume: could not load the checkpoint {checkpoint}: PytorchStreamReader failed "
                                   f"reading zip archive: failed finding central directory. {advice}")


def test_every_checkpoint_damaged(run):
    for checkpoint in list_checkpoints(run):
        (checkpoint / "optimizer.bin").unlink()
    with pytest.raises(CheckpointError, match="every checkpoint .* is damaged"):
        resolve_resume(run, "latest")


def test_checkpoint_without_manifest_from_before_manifests(run):
    """Checkpoints written before manifests existed still resume, and are still checked as far as possible."""
    for checkpoint in list_checkpoints(run):
        (checkpoint / MANIFEST).unlink()
    assert resolve_resume(run, "latest") == _step(run, 6)
    _truncate(_step(run, 6) / "model.safetensors")
    (_step(run, 4) / "trainer_state.json").unlink()
    assert "model.safetensors is unreadable" in checkpoint_problem(_step(run, 6))
    assert resolve_resume(run, "latest") == _step(run, 2)


def test_corrupt_bytes_of_the_same_size(run):
    path = _step(run, 6) / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"\xff" * 8  # inside the JSON header
    path.write_bytes(bytes(data))
    assert "SHA-256 differs" in checkpoint_problem(_step(run, 6))
    _sizes_only_manifests(run)  # a checkpoint of the previous release: the header check still sees it
    assert "unreadable" in checkpoint_problem(_step(run, 6))


def _flip(path, at=None):
    """Damage ``path`` without changing its size: invert 16 bytes (in the middle unless ``at``)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 if at is None else at
    data[start:start + 16] = bytes(255 - b for b in data[start:start + 16])
    path.write_bytes(bytes(data))


def _sizes_only_manifests(run):
    """Rewrite the manifests the way the previous release wrote them (format 1: names and sizes)."""
    for checkpoint in list_checkpoints(run):
        files = json.loads((checkpoint / MANIFEST).read_text())["files"]
        (checkpoint / MANIFEST).write_text(json.dumps({"format": 1, "files": files}, indent=1))


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.bin", "random_states_0.pkl"])
def test_same_size_damage_falls_back_to_the_previous_checkpoint(run, victim, caplog):
    """Issue 23.7: bytes changed in place (sizes kept) resumed silently; the manifest's SHA-256 digests catch it."""
    _flip(_step(run, 6) / victim)
    with caplog.at_level(logging.WARNING):
        try:
            trainer = Trainer(_config(run, max_steps=8), resume="latest")
        finally:
            reset_accelerate_state()
    assert trainer.state.step == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert f"skipped the damaged checkpoint(s) {_step(run, 6)} (files are damaged (their SHA-256 differs from the " \
           f"manifest's): {victim}); resuming from {_step(run, 4)}" in warnings[0]
    with pytest.raises(CheckpointError, match=rf"step_00000006: the checkpoint is damaged: .*SHA-256.*{victim}"):
        resolve_resume(run, str(_step(run, 6)))


def test_manifests_record_a_digest_of_every_file(run):
    manifest = json.loads((_step(run, 6) / MANIFEST).read_text())
    assert manifest["format"] == 2 and set(manifest["sha256"]) == set(manifest["files"])
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json"} <= set(manifest["files"])


def test_sizes_only_manifests_of_the_previous_release_still_resume(run):
    _sizes_only_manifests(run)
    assert checkpoint_problem(_step(run, 6)) is None
    _resume_latest_and_finish(run, resumed_at=6)


def test_random_states_that_cannot_be_restored_are_an_error(run):
    """Issue 23.7: accelerate logs a failed random-state restore at INFO and trains on with fresh generators; an old
    (sizes-only) manifest cannot see the damage, so the restore itself is checked."""
    _sizes_only_manifests(run)
    rng = _step(run, 6) / "random_states_0.pkl"
    rng.write_bytes(bytes(rng.stat().st_size))  # same size, all zeros
    assert checkpoint_problem(_step(run, 6)) is None
    with pytest.raises(CheckpointError, match=r"generators were not restored from .*step_00000006: "
                                              r"random_states_0.pkl cannot be read .*Resume from an earlier"):
        try:
            Trainer(_config(run, max_steps=8), resume="latest")
        finally:
            reset_accelerate_state()


def test_rng_restore_problem_names_a_process_the_checkpoint_has_no_state_for(run):
    assert "random states of 1 process(es) and none for process 1; resume with as many processes" in \
        rng_restore_problem(_step(run, 6), 1)
    assert rng_restore_problem(_step(run, 6), 0) == "the generators do not hold the states saved in " \
        "random_states_0.pkl"  # nothing restored them in this process
