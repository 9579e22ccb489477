"""data.streaming: each image once per epoch across processes and workers, reshuffled per epoch, exact resume."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from streaming_utils import image_ids, numbered_dataset, streaming_config
from torch.utils.data import DataLoader
from training_utils import model_tensors, reset_accelerate_state

from vaegan.errors import ConfigError
from vaegan.streaming import collate_pairs, load_streaming_dataset
from vaegan.training import Trainer, train

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return numbered_dataset(tmp_path_factory.mktemp("data") / "numbered")


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    yield
    reset_accelerate_state()


def _epoch(stream, workers: int, epoch: int = 0) -> list[int]:
    stream.set_epoch(epoch)
    loader = DataLoader(stream, batch_size=4, num_workers=workers, collate_fn=collate_pairs)
    return [i for images, _ in loader for i in image_ids(images)]


def test_each_image_once_per_epoch_across_processes_and_workers(numbered):
    stream = load_streaming_dataset(f"hf:{numbered}", image_size=8, channels=1, num_shards=8)
    assert stream.n_shards == 8
    # what Accelerate does for 2 processes (n_shards >= processes): each process streams its own shards
    seen = [i for rank in range(2) for i in _epoch(stream.shard(num_shards=2, index=rank), workers=2)]
    assert sorted(seen) == list(range(64))


def test_stream_reshuffles_every_epoch(numbered):
    stream = load_streaming_dataset(f"hf:{numbered}", image_size=8, channels=1, num_shards=8, seed=3)
    first, again, second = _epoch(stream, 0, 0), _epoch(stream, 0, 0), _epoch(stream, 0, 1)
    assert sorted(first) == sorted(second) == list(range(64))
    assert first == again and first != second and first != list(range(64))


def test_streaming_config_needs_hf_source_and_max_steps(numbered, tmp_path):
    from vaegan.training.config import config_from_dict

    with pytest.raises(ConfigError, match="data.source"):
        config_from_dict({"model": {"class": "AE"}, "data": {"streaming": True}, "train": {"max_steps": 3}})
    with pytest.raises(ConfigError, match="train.max_steps"):
        streaming_config(numbered, tmp_path, max_steps=None)


def test_streaming_training_runs_on_max_steps(numbered, tmp_path):
    trainer = Trainer(streaming_config(numbered, tmp_path / "run", max_steps=10))
    seen: list[int] = []
    original = trainer._train_batch
    trainer._train_batch = lambda images, labels=None: (seen.extend(image_ids(images)), original(images, labels))[1]
    trainer.train()
    assert trainer.state.step == 10 and trainer.state.epoch == 1  # 8 batches of 8 per epoch
    counts = Counter(seen)
    assert set(counts) == set(range(64)) and sorted(set(counts.values())) in ([1, 2], [2])
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["steps"] == 10 and summary["train_images"] is None and "heldout_loss" in summary["metrics"]


def test_streaming_resume_is_exact(numbered, tmp_path):
    straight = train(streaming_config(numbered, tmp_path / "straight", max_steps=12))
    reset_accelerate_state()
    first = streaming_config(numbered, tmp_path / "resumed", max_steps=5, checkpoint_every=5)
    train(first)
    reset_accelerate_state()
    resumed = train(dataclasses.replace(first, train=dataclasses.replace(first.train, max_steps=12)), resume="latest")
    expected, actual = model_tensors(straight), model_tensors(resumed)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


@pytest.mark.slow
def test_two_cpu_processes_stream_with_workers(numbered, tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--main_process_port", "0", str(TESTS / "ddp_stream_worker.py"), str(numbered), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"
    assert all(r["num_workers"] == 2 for r in ranks)
    # 64 images, batch 8 per process, 2 processes: 4 steps are one epoch, and each image is used exactly once
    assert all(r["steps"] == 4 for r in ranks)
    seen = ranks[0]["seen"] + ranks[1]["seen"]
    assert sorted(seen) == list(range(64)) and not set(ranks[0]["seen"]) & set(ranks[1]["seen"])


def test_streaming_bad_images_error_or_skip(tmp_path):
    import datasets
    from PIL import Image

    from vaegan.imageprep import BadImages

    Image.new("L", (8, 8), 5).save(tmp_path / "ok.png")
    ok = {"bytes": (tmp_path / "ok.png").read_bytes(), "path": "ok.png"}
    rows = [ok] * 5 + [{"bytes": b"not an image", "path": "broken.png"}] + [ok] * 4
    datasets.Dataset.from_dict({"image": rows}).cast_column("image", datasets.Image()).save_to_disk(tmp_path / "hf")
    source = f"hf:{tmp_path / 'hf'}"
    with pytest.raises(ConfigError, match=r"bad image broken\.png.*data\.on_bad_image: skip"):
        _epoch(load_streaming_dataset(source, image_size=8, channels=1, num_shards=2), workers=0)
    bad = BadImages("skip", tmp_path / "bad.txt")
    seen = _epoch(load_streaming_dataset(source, image_size=8, channels=1, num_shards=2, on_bad_image=bad), 2)
    assert seen == [5] * 9
    assert bad.skipped()[0].startswith("broken.png\t")
