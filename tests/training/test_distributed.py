"""Two-process DistributedDataParallel training on CPU (gloo) through torchrun."""

import os
import subprocess
import sys

import pytest
import yaml

from model_training.checkpoint import load_training_checkpoint


@pytest.mark.slow
def test_torchrun_two_processes(data_root, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ddp", "crop_size": 32, "batch_size": 8, "val_batch_size": 16,
        "arch": "resnet18", "stages": 1, "pretrained": "none", "workers": 0, "lr": 1e-3,
        "device": "cpu", "max_epochs": 1,
    }))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "-m", "model_training", "train", "--config", str(config), "--dataroot",
         str(data_root), "--out-dir", str(tmp_path / "run"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = load_training_checkpoint(tmp_path / "run" / "last.pt")
    assert last["global_step"] == 6  # 48 images, global batch 8 split over 2 ranks
    assert not any(k.startswith("module.") for k in last["model"])
