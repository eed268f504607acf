import logging

import pytest
import torch
from torchvision.models import resnet18

from model_training.models import build_training_model, find_imagenet_weights, is_app_arch

ARCH = {"name": "resnet18", "num_outputs": 1, "input_transform": "none", "stages": 4}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_scratch_on_purpose():
    model, info = build_training_model(ARCH, "none")
    assert info["init"] == "scratch" and model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 1)
    assert model.fc.weight.std().item() == pytest.approx(0.02, rel=0.1)  # paper head init


def test_missing_imagenet_weights_fall_back_loudly(hub, caplog):
    with caplog.at_level(logging.WARNING):
        _, info = build_training_model(ARCH, "auto")
    assert info["init"] == "scratch" and "no ImageNet weights" in info["reason"]
    assert "TRAINING FROM SCRATCH" in caplog.text


def test_imagenet_weights_from_the_hub_cache(hub):
    hub.mkdir(parents=True)
    reference = resnet18()  # stands in for torchvision's ImageNet file
    torch.save(reference.state_dict(), hub / "resnet18-f37072fd.pth")
    assert find_imagenet_weights("resnet18") == hub / "resnet18-f37072fd.pth"
    model, info = build_training_model(ARCH, "auto")
    assert info["init"] == "imagenet" and len(info["weights_sha256"]) == 64
    torch.testing.assert_close(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert model.fc.weight.shape == (1, 512)  # the 1-logit head is not taken from ImageNet
    # truncated trunks take what they have
    small, _ = build_training_model({**ARCH, "stages": 1}, str(hub / "resnet18-f37072fd.pth"))
    torch.testing.assert_close(small.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_explicit_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_training_model(ARCH, str(tmp_path / "nope.pth"))


def test_efficientnet_is_training_only():
    model, info = build_training_model({"name": "efficientnet_b0", "num_outputs": 1}, "none")
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 1)
    assert not is_app_arch({"name": "efficientnet_b0"}) and is_app_arch(ARCH)
