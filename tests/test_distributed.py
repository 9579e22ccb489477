"""Two data-parallel processes on the CPU through `accelerate launch` (gloo): world size and weight sync, and the
README's two-process and two-machine commands for the shipped configs, with their evaluations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaegan.metrics import read_eval_results
from vaegan.models import get_model_class

TESTS = Path(__file__).parent
CONFIGS = TESTS.parent / "configs"
#: The shipped configs that train offline (the others download their data).
OFFLINE_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml")
                         if yaml.safe_load(p.read_text())["data"]["source"] == "mnist-5k")
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]  # `accelerate launch`


def _env(**extra: str) -> dict[str, str]:
    """Two CPU processes (the README's ACCELERATE_USE_CPU=1), this checkout's vaegan, one thread per process."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **extra}


def _launch(family: str, output_dir: Path) -> list[dict]:
    env = _env()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", str(TESTS / "ddp_worker.py"), family, str(output_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return [json.loads((output_dir / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan", "cluster-gan"])
def test_two_cpu_processes_keep_identical_weights(tmp_path, family):
    ranks = _launch(family, tmp_path)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["backend"] == "gloo"
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    # 256 images, batch 32 per process, 2 processes: each optimisation step consumes 64 images.
    assert ranks[0]["steps"] == 4
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["hardware"] == "2 x cpu" and summary["batch_size"] == 64
    assert (tmp_path / "model" / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.slow
def test_accelerate_launch_module_entry_point(tmp_path):
    """`accelerate launch --config_file configs/accelerate/cpu-2proc.yaml -m vaegan.train CONFIG`: two processes."""
    import yaml
    from training_utils import TINY_MODELS

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": TINY_MODELS["ae"], "data": {"source": "mnist-5k", "limit": 256},
        "train": {"output_dir": str(tmp_path / "out"), "epochs": 1, "batch_size": 32, "num_preview_images": 4},
    }))
    env = _env()
    accelerate_config = TESTS.parent / "configs" / "accelerate" / "cpu-2proc.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
               "--main_process_port", "0", "-m", "vaegan.train", str(config)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["hardware"] == "2 x cpu" and summary["steps"] == 4
    assert (tmp_path / "out" / "model" / "config.json").is_file()


def _start(command: list[str]) -> subprocess.Popen:
    """A launch in a session of its own, so that :func:`_finish` can end its workers too."""
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _finish(launch: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    """stdout and stderr of a finished launch; a hung one is ended with its workers, and the test fails."""
    try:
        return launch.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        out, err = launch.communicate()
        pytest.fail(f"the launch hung for {timeout} s:\n{out[-3000:]}{err[-5000:]}")


def _run(command: list[str]) -> tuple[str, str]:
    launch = _start(command)
    out, err = _finish(launch)
    assert launch.returncode == 0, out[-3000:] + err[-5000:]
    return out, err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_command(config: str, output_dir: Path, *overrides: str) -> list[str]:
    """``-m vaegan.train CONFIG`` with few steps and a small final evaluation (still every configured metric)."""
    settings = [f"train.output_dir={output_dir}", "train.max_steps=2", "train.final_eval_num_samples=200",
                "train.num_preview_images=4", *overrides]
    return ["-m", "vaegan.train", str(CONFIGS / config), *(a for s in settings for a in ("--set", s))]


def _check_finished_run(output_dir: Path, config: str) -> None:
    """Two processes trained (world size 2), and the main process wrote the model with its final evaluation."""
    summary = json.loads((output_dir / "training_summary.json").read_text())
    settings = yaml.safe_load((CONFIGS / config).read_text())
    stages = len(get_model_class(settings["model"]["class"]).stages())  # train.max_steps=2 is per stage
    assert summary["hardware"] == "2 x cpu" and summary["batch_size"] == 2 * settings["train"]["batch_size"]
    assert summary["steps"] == 2 * stages
    evaluation = read_eval_results(output_dir / "model")
    wanted = yaml.safe_load((CONFIGS / config).read_text())["train"]["eval_metrics"]
    assert evaluation["num_samples"] == 200 and list(evaluation["metrics"]) == wanted
    assert summary["evaluation"]["metrics"] == evaluation["metrics"]
    # The weights, at the top or in the components (vqvae/, prior/) of a model saved as several.
    assert list((output_dir / "model").rglob("diffusion_pytorch_model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("config", OFFLINE_CONFIGS)
def test_readme_two_process_command_with_the_final_evaluation(tmp_path, config):
    """``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 -m vaegan.train configs/X.yaml``:
    only the main process evaluates; its metrics gather nothing from the other process, which waits for it."""
    command = [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port()),
               *_train_command(config, tmp_path / "out")]
    out, _ = _run(command)
    assert out.count("Evaluating the final model: 200 samples") == 1  # the main process alone
    _check_finished_run(tmp_path / "out", config)


@pytest.mark.slow
def test_readme_two_machine_command_on_one_host(tmp_path):
    """Two launches, ``--num_machines 2 --machine_rank 0|1 --main_process_ip 127.0.0.1``: both end with status 0
    (no torch elastic exit-barrier error on machine 1 while machine 0 evaluates and saves)."""
    config, port = "mnist-vae.yaml", str(_free_port())
    launches = []
    for rank in (0, 1):
        command = [*LAUNCH, "--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank",
                   str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                   *_train_command(config, tmp_path / "out")]
        launches.append(_start(command))
    try:
        outputs = [_finish(launch) for launch in launches]
    finally:  # a failed machine leaves no launch behind
        for launch in launches:
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
    for launch, (out, err) in zip(launches, outputs, strict=True):
        assert launch.returncode == 0, out[-3000:] + err[-5000:]
        assert "exit barrier" not in err, err[-5000:]
    _check_finished_run(tmp_path / "out", config)


@pytest.mark.slow
def test_periodic_evaluation_and_best_model_with_two_processes(tmp_path):
    """``train.eval_every`` with two processes: the main process evaluates at every step while the other waits;
    both go on training and end; the saved model is the best by ``select_best_by``."""
    out = tmp_path / "out"
    command = [*LAUNCH, "--multi_gpu", "--num_processes", "2", "--main_process_port", str(_free_port()),
               *_train_command("mnist-vae.yaml", out, "train.eval_every=1", "train.eval_num_samples=100",
                               "train.select_best_by=fd_mnist", "train.log_every=1")]
    _run(command)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = {m["step"]: m["eval/fd_mnist"] for m in logged if "eval/fd_mnist" in m}
    assert sorted(evaluated) == [1, 2]
    best = json.loads((out / "best.json").read_text())
    assert best["value"] == min(evaluated.values()) and evaluated[best["step"]] == best["value"]
    assert f"fd_mnist = {best['value']:.6g} at step {best['step']}" == \
        json.loads((out / "training_summary.json").read_text())["selected_by"]
    _check_finished_run(out, "mnist-vae.yaml")


def _wait_beside_a_slow_main_process(rank: int, init_file: str, mode: str) -> None:
    """Process ``rank`` of two whose group times out after 2 s; the main process works alone for 5 s."""
    import datetime
    import time
    from types import SimpleNamespace

    import torch.distributed as dist

    from vaegan.training.waiting import MainProcessWait

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=2))
    accelerator = SimpleNamespace(num_processes=2, is_main_process=rank == 0, wait_for_everyone=dist.barrier)
    wait = MainProcessWait(accelerator).wait if mode == "main-process-wait" else dist.barrier
    try:
        if rank == 0:
            time.sleep(5)  # an evaluation, a save, an upload
        wait()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_the_other_processes_wait_for_the_main_process_past_the_group_timeout(tmp_path):
    import torch.multiprocessing as mp

    with pytest.raises(mp.ProcessRaisedException, match="Timed out"):  # what accelerator.wait_for_everyone() does
        mp.spawn(_wait_beside_a_slow_main_process, args=(str(tmp_path / "a"), "barrier"), nprocs=2)
    mp.spawn(_wait_beside_a_slow_main_process, args=(str(tmp_path / "b"), "main-process-wait"), nprocs=2)
