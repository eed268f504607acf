"""Export stores the int8 activation ranges that the app's int8 lever then uses."""

from __future__ import annotations

import pytest

from forensics_app.core.detector import Detector, load_checkpoint
from forensics_app.core.quantize import quantized_engine
from forensics_app.core.speed import SpeedLevers
from helpers import make_image, save_tiny_checkpoint
from model_training.export import add_int8_calibration, int8_calibration_tiles

ARCH = {"name": "resnet18", "num_outputs": 1, "input_transform": "npr", "stages": 1, "width": 16}


@pytest.mark.skipif(quantized_engine() is None, reason="no quantized CPU engine")
def test_calibration_is_stored_and_used(tmp_path):
    reals, fakes = [], []
    for i in range(3):
        for group, name in ((reals, "r"), (fakes, "f")):
            p = tmp_path / f"{name}{i}.png"
            make_image((80 + 7 * i, 72), i + (10 if name == "f" else 0)).save(p)
            group.append(p)
    small = tmp_path / "small.png"  # below the crop: skipped, not a differently shaped tile
    make_image((40, 30), 99).save(small)
    tiles = int8_calibration_tiles([*reals, small], fakes, n_each=3, side=64)
    assert tiles.shape == (6, 3, 64, 64)
    ckpt = save_tiny_checkpoint(tmp_path / "t.pt", arch=ARCH)
    before = load_checkpoint(ckpt)
    info = add_int8_calibration(ckpt, tiles, "4 test tiles")
    after = load_checkpoint(ckpt)  # still passes the loader's schema check
    assert after.meta["int8_calibration"]["observers"] == info["observers"]
    for k, v in before.model.state_dict().items():
        assert (after.model.state_dict()[k] == v).all(), k  # weights untouched
    det = Detector.from_checkpoint(ckpt, "cpu", threads=1, levers=SpeedLevers(precision="int8"))
    assert det.int8_source == "checkpoint (4 test tiles)"
