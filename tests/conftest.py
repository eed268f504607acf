"""Shared fixtures: tiny random-weight checkpoints and images made by the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_images, save_tiny_checkpoint  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--run-installer", action="store_true", help="build the PyInstaller bundle")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_inst = pytest.mark.skip(reason="builds the installer: pass --run-installer")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "installer" in item.keywords and not config.getoption("--run-installer"):
            item.add_marker(skip_inst)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-weight detector in this project's checkpoint format (ResNet-50, 1 stage)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_tiny_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint):
    from forensics_app.core.detector import Detector

    return Detector.from_checkpoint(tiny_checkpoint, device="cpu", threads=2)


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Eight small RGB PNG/JPEG images of assorted sizes."""
    folder = tmp_path / "images"
    make_images(folder, 8)
    return folder


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
