"""EfficientNet-Lite0 as the checkpoint's trace CNN: loads, folds, scans, explains."""

from __future__ import annotations

import pytest
import torch

from forensics_app.core.architectures import build_model, describe_arch
from forensics_app.core.detector import CheckpointError, Detector, load_checkpoint
from forensics_app.core.gradcam import cam_model_copy, compute_gradcam
from forensics_app.core.preprocess import to_normalized_tensor
from forensics_app.core.scan import ScanOptions, scan_files
from forensics_app.core.speed import SpeedLevers
from helpers import make_image, make_images, save_tiny_checkpoint

LITE0 = {"name": "efficientnet_lite0", "num_outputs": 1, "input_transform": "none"}


@pytest.fixture(scope="module")
def lite0_checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("lite0") / "lite0.pt", arch=LITE0)


def test_a_lite0_checkpoint_scans_with_folded_batchnorm(lite0_checkpoint, tmp_path):
    det = Detector.from_checkpoint(lite0_checkpoint, device="cpu", threads=1)
    assert det.model.arch["name"] == "efficientnet_lite0"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in det.model.modules())
    plain = Detector.from_checkpoint(lite0_checkpoint, device="cpu", threads=1,
                                     levers=SpeedLevers(fold_batchnorm=False))
    x = torch.stack([to_normalized_tensor(make_image((96, 96), s)) for s in range(3)])
    assert torch.allclose(torch.as_tensor(det.predict_proba(x)),
                          torch.as_tensor(plain.predict_proba(x)), atol=1e-4)
    files = make_images(tmp_path / "ev", 3)
    results = scan_files(files, det, ScanOptions())
    assert [r.error for r in results] == [None] * 3
    assert all(0.0 <= r.prob_fake <= 1.0 for r in results)


def test_gradcam_explains_the_lite0_trace(lite0_checkpoint):
    ckpt = load_checkpoint(lite0_checkpoint)
    cam = cam_model_copy(ckpt.model)
    heat = compute_gradcam(cam, to_normalized_tensor(make_image((128, 96), 1)))
    assert heat.shape == (96, 128) and 0.0 <= heat.min() and heat.max() <= 1.0


def test_int8_is_refused_for_lite0_with_a_reason(lite0_checkpoint):
    with pytest.raises(ValueError, match="ResNet trace CNNs only"):
        Detector.from_checkpoint(lite0_checkpoint, device="cpu",
                                 levers=SpeedLevers(precision="int8"))


def test_lite0_weights_that_do_not_fit_are_named(tmp_path):
    path = tmp_path / "bad.pt"
    save_tiny_checkpoint(path, arch=LITE0)
    ck = torch.load(path, weights_only=True)
    ck["state_dict"]["_conv_head.weight"] = torch.zeros(1280, 7, 1, 1)
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match="_conv_head.weight"):
        load_checkpoint(path)


def test_describe_arch_names_the_network():
    assert describe_arch(build_model(LITE0).arch) == "CNN efficientnet_lite0"
    assert describe_arch({"name": "resnet18", "stages": 2, "input_transform": "npr"}) == \
        "CNN resnet18, 2 stages, npr input"
