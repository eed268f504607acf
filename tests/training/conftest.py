"""Fixtures for the training tests: tiny synthetic ForenSynths-style trees and configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_pairs import TINY_RESNET, make_forensynths, make_pair_folder  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run several times faster on one thread than on two busy cores (and a
    Detector built in a test resets the global thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """train/ and val/ with two classes of smooth vs nearest-up-sampled 48x48 PNGs."""
    return make_forensynths(tmp_path_factory.mktemp("forensynths"), n_train=12, n_val=6)


@pytest.fixture(scope="session")
def test_root(tmp_path_factory) -> Path:
    """A test root with a flat set and a multi-class set (pooled over its classes)."""
    root = tmp_path_factory.mktemp("test_root")
    make_pair_folder(root / "flat", 6, size=40, seed=7000)
    make_pair_folder(root / "multi" / "a", 3, size=48, seed=8000)
    make_pair_folder(root / "multi" / "b", 3, size=56, seed=9000)
    (root / "not_a_set").mkdir()
    return root


@pytest.fixture
def tiny_config(data_root, tmp_path):
    """A TrainConfig for a 1-stage ResNet-18 on 32-px crops, no augmentation, CPU."""
    from model_training.config import TrainConfig

    def make(**overrides):
        values = dict(
            name="tiny", dataroot=str(data_root), out_dir=str(tmp_path / "run"), crop_size=32,
            blur_prob=0.0, jpg_prob=0.0, batch_size=8, val_batch_size=16, arch="resnet18",
            stages=1, pretrained="none", workers=0, max_epochs=2, progress_bar=False,
            log_every=0, device="cpu", lr=1e-3,
        )
        values.update(overrides)
        return TrainConfig(**values)

    return make


@pytest.fixture
def tiny_arch() -> dict:
    return dict(TINY_RESNET)
