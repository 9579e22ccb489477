"""Running the main commands again: --overwrite, the re-runnable `make quickstart`, log-friendly progress output."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from checkout import fresh_checkout
from training_utils import TINY_MODELS, read_metrics, reset_accelerate_state, tiny_config

from vaegan.errors import ConfigError
from vaegan.training import Trainer, train
from vaegan.training.outputs import RUN_MARKER, claim_output_dir, clear_run_outputs
from vaegan.training.progress import Progress
from vaegan.training.trainer import list_checkpoints


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


def test_overwrite_removes_only_vaegan_outputs(tmp_path):
    out = tmp_path / "run"
    train(tiny_config("vae", out, epochs=2, checkpoint_every=4))
    assert list_checkpoints(out) and (out / "samples" / "epoch_002.png").is_file()
    first_run_steps = len(read_metrics(out))
    (out / "notes.txt").write_text("mine")
    (out / "samples" / "favourite.png").write_bytes(b"not vaegan's")
    (out / "model" / "NOTES.md").write_text("also mine")
    (out / "data").mkdir()
    (out / "data" / "digits.csv").write_text("1,2,3")
    reset_accelerate_state()

    with pytest.raises(ConfigError, match="already holds checkpoints.*--overwrite"):
        Trainer(tiny_config("vae", out, epochs=1))
    reset_accelerate_state()
    train(tiny_config("vae", out, epochs=1, checkpoint_every=1000), overwrite=True)

    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "samples" / "favourite.png").read_bytes() == b"not vaegan's"
    assert (out / "model" / "NOTES.md").read_text() == "also mine"
    assert (out / "data" / "digits.csv").read_text() == "1,2,3"
    assert not list_checkpoints(out)  # the earlier run's checkpoints are gone, the new run wrote none
    assert not (out / "samples" / "epoch_002.png").exists()  # a one-epoch run: epoch 2's grid was the old run's
    assert (out / "samples" / "epoch_001.png").is_file() and (out / "model" / "config.json").is_file()
    steps = [m["step"] for m in read_metrics(out)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < first_run_steps  # fresh, not appended


def test_clear_run_outputs_keeps_folders_with_user_files_and_nothing_else(tmp_path):
    (tmp_path / "checkpoints" / "step_00000004").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step_00000004" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoints" / "README").write_text("keep")
    (tmp_path / "vaegan" / "1700000000").mkdir(parents=True)
    (tmp_path / "vaegan" / "1700000000" / "events.out.tfevents.1.host").write_bytes(b"x")
    (tmp_path / "config.yaml").write_text("model: {}")
    (tmp_path / "model.yaml").write_text("mine")  # a user file whose name resembles vaegan's
    removed = clear_run_outputs(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "checkpoints/step_00000004", "config.yaml", "vaegan/1700000000/events.out.tfevents.1.host"]
    assert (tmp_path / "checkpoints" / "README").is_file() and (tmp_path / "model.yaml").is_file()
    assert not (tmp_path / "vaegan").exists()
    assert clear_run_outputs(tmp_path / "missing") == []


def test_clear_run_outputs_removes_the_best_model_and_evaluation(tmp_path):
    claim_output_dir(tmp_path)
    for folder in ("model", "best_model"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text("{}")
        (tmp_path / folder / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    (tmp_path / "model" / "eval_results.json").write_text("{}")
    (tmp_path / "best.json").write_text('{"metric": "fd_mnist", "value": 1.0, "step": 4}')
    clear_run_outputs(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [RUN_MARKER]


def test_a_fresh_run_forgets_the_best_model_of_an_earlier_run(tmp_path):
    from vaegan.training.evaluation import BEST_DIR, BEST_STATE

    config = tiny_config("vae", tmp_path, epochs=1, checkpoint_every=1000)
    claim_output_dir(tmp_path)  # the earlier run's marker
    (tmp_path / BEST_DIR).mkdir()
    (tmp_path / BEST_DIR / "diffusion_pytorch_model.safetensors").write_bytes(b"an older model")
    (tmp_path / BEST_STATE).write_text('{"metric": "fd_mnist", "value": 1.0, "step": 4}')
    trainer = Trainer(config)
    assert trainer.eval_hook.best is None
    trainer.train()
    assert not (tmp_path / BEST_STATE).exists() and not (tmp_path / BEST_DIR).exists()


def test_a_run_refuses_to_replace_files_vaegan_did_not_write(tmp_path):
    """Issue 23.5: a fresh run into a folder holding the user's own config.yaml, samples.png and metrics.jsonl
    replaced them silently; with or without --overwrite it now refuses, names them, and changes nothing."""
    mine = {"config.yaml": "my own config", "samples.png": "my picture", "metrics.jsonl": "my measurements",
            "notes.txt": "not a name vaegan writes"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"holds config\.yaml, metrics\.jsonl, samples\.png, which a vaegan "
                                              r"run writes but which vaegan did not write there.*Move them"):
            train(tiny_config("vae", tmp_path, epochs=1, max_steps=2), overwrite=overwrite)
        reset_accelerate_state()
    assert {name: (tmp_path / name).read_text() for name in mine} == mine
    assert not (tmp_path / RUN_MARKER).exists()
    for name in ("config.yaml", "samples.png", "metrics.jsonl"):
        (tmp_path / name).unlink()
    train(tiny_config("vae", tmp_path, epochs=1, max_steps=2))  # with them moved away: runs, and keeps notes.txt
    assert (tmp_path / RUN_MARKER).is_file() and (tmp_path / "notes.txt").read_text() == "not a name vaegan writes"


def test_overwrite_never_follows_links_out_of_the_output_folder(tmp_path):
    """Issue 23.5: --overwrite followed a symlinked model/ and deleted in the folder it points to. A link where an
    output goes is refused (vaegan never makes one); links deeper down are removed as links; targets are kept."""
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    claim_output_dir(out)
    (out / "training_summary.json").write_text('{"steps": 4, "metrics": {}}')
    (elsewhere / "model").mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors", "README.md"):
        (elsewhere / "model" / name).write_text(f"another project's {name}")
    (out / "model").symlink_to(elsewhere / "model", target_is_directory=True)
    (elsewhere / "step_00000009").mkdir()
    (elsewhere / "step_00000009" / "trainer_state.json").write_text("{}")
    (elsewhere / "epoch_001.png").write_text("a picture")
    (elsewhere / "runs" / "1").mkdir(parents=True)
    (elsewhere / "runs" / "1" / "events.out.tfevents.1.host").write_text("events")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "step_00000009").symlink_to(elsewhere / "step_00000009", target_is_directory=True)
    (out / "samples").mkdir()
    (out / "samples" / "epoch_001.png").symlink_to(elsewhere / "epoch_001.png")
    (out / "vaegan").mkdir()
    (out / "vaegan" / "runs").symlink_to(elsewhere / "runs", target_is_directory=True)
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))

    with pytest.raises(ConfigError, match=r"model \(a symbolic link to .*elsewhere/model\).*remove it, its target is "
                                          "kept"):
        train(tiny_config("vae", out, epochs=1, max_steps=2), overwrite=True)
    reset_accelerate_state()
    removed = clear_run_outputs(out)  # called directly: the same care
    assert sorted(str(p.relative_to(out)) for p in removed) == [
        "checkpoints/step_00000009", "samples/epoch_001.png", "training_summary.json"]
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before
    assert (elsewhere / "model" / "config.json").read_text() == "another project's config.json"
    assert (out / "model").is_symlink() and (out / "vaegan" / "runs").is_symlink()


def test_a_run_folder_from_before_the_marker_is_still_vaegans(tmp_path):
    """A folder written by the previous release (no .vaegan-run.json) is recognised by its checkpoints or its
    finished run's training_summary.json: it resumes, --overwrite clears it, and the run then marks it."""
    out = tmp_path / "old-run"
    train(tiny_config("vae", out, epochs=1, max_steps=4, checkpoint_every=2))
    (out / RUN_MARKER).unlink()  # as the previous release left it
    (out / "training_summary.json").unlink()
    shutil.rmtree(out / "model")  # interrupted after its checkpoints
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="already holds checkpoints of an earlier run"):
        Trainer(tiny_config("vae", out, epochs=1, max_steps=6, checkpoint_every=2))
    reset_accelerate_state()
    train(tiny_config("vae", out, epochs=1, max_steps=6, checkpoint_every=2), resume="latest")
    assert json.loads((out / "training_summary.json").read_text())["steps"] == 6
    (out / RUN_MARKER).unlink()
    shutil.rmtree(out / "checkpoints")  # a finished run of the previous release, recognised by its summary
    (out / "notes.txt").write_text("mine")
    reset_accelerate_state()
    train(tiny_config("vae", out, epochs=1, max_steps=2), overwrite=True)
    assert json.loads((out / "training_summary.json").read_text())["steps"] == 2
    assert (out / RUN_MARKER).is_file() and (out / "notes.txt").read_text() == "mine"
    # what an interrupted old run left before its first checkpoint cannot be told from a user's files: refused
    for path in out.iterdir():
        if path.name not in ("config.yaml", "metrics.jsonl", "notes.txt"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    reset_accelerate_state()
    with pytest.raises(ConfigError, match=r"holds config\.yaml, metrics\.jsonl, which a vaegan run writes"):
        Trainer(tiny_config("vae", out, epochs=1, max_steps=2), overwrite=True)


def test_finished_run_without_checkpoints_is_not_clobbered(tmp_path):
    train(tiny_config("vae", tmp_path, epochs=1))
    assert not list_checkpoints(tmp_path)
    reset_accelerate_state()
    with pytest.raises(ConfigError, match=r"already holds a trained model.*--overwrite"):
        Trainer(tiny_config("vae", tmp_path, epochs=1))


def test_overwrite_conflicts_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="only one of them"):
        Trainer(tiny_config("vae", tmp_path), resume="latest", overwrite=True)
    train(tiny_config("vae", tmp_path / "base", epochs=1))
    reset_accelerate_state()
    with pytest.raises(ConfigError, match="would delete the model being fine-tuned"):
        Trainer(tiny_config("vae", tmp_path / "base"), init_from=str(tmp_path / "base" / "model"), overwrite=True)


def test_progress_prints_one_line_per_logged_step_off_a_terminal():
    stream = io.StringIO()
    progress = Progress(10, 0, bar=False, stream=stream)
    for step in range(1, 11):
        progress.update()
        if step % 4 == 0 or step == 10:
            progress.log({"loss": 1.0 / step, "epoch": step / 5})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]
    assert "loss=0.25" in lines[0] and "epoch 0.80" in lines[0] and "\r" not in stream.getvalue()


def test_progress_is_a_live_bar_on_a_terminal():
    stream = io.StringIO()
    progress = Progress(4, 0, bar=True, stream=stream)
    for _ in range(4):
        progress.update()
    progress.log({"loss": 0.5})
    progress.close()
    assert "\r" in stream.getvalue() and "4/4" in stream.getvalue() and "step " not in stream.getvalue()


def test_non_tty_training_log_has_one_line_per_logged_step(tmp_path):
    config = tmp_path / "vae.yaml"
    config.write_text(yaml.safe_dump({
        "model": TINY_MODELS["vae"], "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path / "out"), "epochs": 1, "max_steps": 7, "batch_size": 32,
                  "log_every": 3, "num_preview_images": 4},
    }))
    result = subprocess.run([sys.executable, "-m", "vaegan.cli", "train", str(config)], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    step_lines = [line for line in result.stdout.splitlines() if re.match(r"step \d+/7 ", line)]
    assert [line.split()[1] for line in step_lines] == ["3/7", "6/7", "7/7"]  # log_every and the last step
    assert "\r" not in result.stdout + result.stderr  # no progress bar redraws in the log


@pytest.mark.slow
def test_make_quickstart_succeeds_every_time(tmp_path):
    """`make quickstart` in a fresh checkout: trains; again: reports the finished run; after an interruption
    (the state a kill after a checkpoint leaves: checkpoints, no final model): resumes; OVERWRITE=1: retrains.

    The checkout uses this session's virtual environment (-o: no reinstall) and a few training steps."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    clone, venv = fresh_checkout(tmp_path / "clone"), Path(sys.prefix)
    args = ("--set train.max_steps=4 --set train.checkpoint_every=2 --set data.limit=256 "
            "--set train.num_preview_images=4 --set train.batch_size=32")

    def make(*extra: str) -> str:
        result = subprocess.run(["make", "-o", f"{venv}/.train-installed", "quickstart", f"VENV={venv}",
                                 f"QUICKSTART_ARGS={args}", *extra], cwd=clone, capture_output=True, text=True,
                                timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    out = clone / "outputs" / "mnist-vae"
    first = make()
    assert "Training configs/mnist-vae.yaml" in first and (out / "model" / "config.json").is_file()
    assert "Model: outputs/mnist-vae/model" in first
    weights = out / "model" / "diffusion_pytorch_model.safetensors"
    trained_at = weights.stat().st_mtime_ns

    second = make()
    assert "already holds a finished run" in second and "Samples: outputs/mnist-vae/samples.png" in second
    assert weights.stat().st_mtime_ns == trained_at  # reported, not retrained

    shutil.rmtree(out / "model")
    (out / "training_summary.json").unlink()
    third = make()
    assert "resuming" in third and "Resumed from" in third and (out / "model" / "config.json").is_file()

    (out / "notes.txt").write_text("mine")
    fourth = make("OVERWRITE=1")
    assert "OVERWRITE=1" in fourth and "--overwrite: removed" in fourth
    assert (out / "notes.txt").read_text() == "mine" and (out / "training_summary.json").is_file()


def test_ctrl_c_during_training_says_how_to_resume(monkeypatch, capsys):
    import vaegan.training
    from vaegan.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vaegan.training, "train", interrupted)
    assert main(["train", "mnist-vae"]) == 130
    assert "interrupted. Continue the run from its last checkpoint with --resume latest" in capsys.readouterr().err
