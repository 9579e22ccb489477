"""Running the main commands again: --overwrite, the re-runnable `make quickstart`, log-friendly progress output."""

from __future__ import annotations

import io
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
from vaegan.training.outputs import clear_run_outputs
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
    for folder in ("model", "best_model"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text("{}")
        (tmp_path / folder / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    (tmp_path / "model" / "eval_results.json").write_text("{}")
    (tmp_path / "best.json").write_text('{"metric": "fd_mnist", "value": 1.0, "step": 4}')
    clear_run_outputs(tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_fresh_run_forgets_the_best_model_of_an_earlier_run(tmp_path):
    from vaegan.training.evaluation import BEST_DIR, BEST_STATE

    config = tiny_config("vae", tmp_path, epochs=1, checkpoint_every=1000)
    (tmp_path / BEST_DIR).mkdir()
    (tmp_path / BEST_DIR / "diffusion_pytorch_model.safetensors").write_bytes(b"an older model")
    (tmp_path / BEST_STATE).write_text('{"metric": "fd_mnist", "value": 1.0, "step": 4}')
    trainer = Trainer(config)
    assert trainer.eval_hook.best is None
    trainer.train()
    assert not (tmp_path / BEST_STATE).exists() and not (tmp_path / BEST_DIR).exists()


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
