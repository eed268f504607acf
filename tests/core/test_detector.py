"""Device choice, probability conversion and calibration of the detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forensics_app.core.architectures import build_model, fold_batchnorm, npr_residual
from forensics_app.core.detector import Detector, describe_device, resolve_device
from forensics_app.core.preprocess import to_normalized_tensor
from helpers import make_image, save_tiny_checkpoint


def test_auto_device_falls_back_to_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert resolve_device("CPU").type == "cpu"


def test_bad_device_names():
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def test_device_is_reported(tiny_detector):
    assert tiny_detector.device.type == "cpu"
    assert tiny_detector.device_description.startswith("cpu (")
    assert describe_device(torch.device("cpu")).endswith(("thread)", "threads)"))


def test_predict_proba_runs_without_autograd(tiny_detector):
    x = torch.stack([to_normalized_tensor(make_image((64, 64), s)) for s in range(2)])
    p = tiny_detector.predict_proba(x)
    assert p.shape == (2,) and p.dtype == np.float64
    assert ((p > 0) & (p < 1)).all()
    assert not tiny_detector.model.training


def test_platt_calibration_from_metadata(tmp_path):
    plain = Detector.from_checkpoint(save_tiny_checkpoint(tmp_path / "a.pt"), "cpu", threads=1)
    calibrated = Detector.from_checkpoint(
        save_tiny_checkpoint(tmp_path / "b.pt", meta={"calibration": {"type": "platt", "a": 2.0,
                                                                      "b": -1.0}}),
        "cpu", threads=1)
    x = to_normalized_tensor(make_image((64, 64), 0)).unsqueeze(0)
    p = plain.predict_proba(x)[0]
    logit = np.log(p / (1 - p))
    assert calibrated.predict_proba(x)[0] == pytest.approx(1 / (1 + np.exp(-(2 * logit - 1))),
                                                           abs=1e-6)


def test_threads_are_set_on_cpu(tiny_checkpoint):
    Detector.from_checkpoint(tiny_checkpoint, "cpu", threads=1)
    assert torch.get_num_threads() == 1


def test_npr_residual_is_the_image_minus_its_nearest_upsampled_half():
    """The broadcast form computes exactly x - nearest_up(x[::2, ::2]), times the gain, for
    batched and unbatched, channels-last and odd-sized inputs."""
    for shape in ((2, 3, 17, 33), (3, 8, 10), (1, 3, 64, 64)):
        x = torch.randn(*shape)
        h, w = shape[-2] // 2 * 2, shape[-1] // 2 * 2
        crop = x[..., :h, :w]
        up = crop[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        assert torch.equal(npr_residual(x, 3.0), (crop - up) * 3.0)
        if x.dim() == 4:
            cl = x.contiguous(memory_format=torch.channels_last)
            assert torch.equal(npr_residual(cl, 3.0), (crop - up) * 3.0)


def test_npr_residual_removes_nearest_upsampled_content():
    low = torch.rand(1, 3, 8, 8)
    up = low.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.count_nonzero(npr_residual(up)) == 0
    assert npr_residual(torch.rand(1, 3, 9, 7)).shape == (1, 3, 8, 6)


def test_stage_count_is_validated():
    with pytest.raises(ValueError, match="stages"):
        build_model({"stages": 5})
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model({"name": "vgg16"})


@pytest.mark.parametrize("arch", [{"stages": 2}, {"name": "resnet18", "stages": 2}],
                         ids=["bottleneck", "basic-block"])
def test_folding_batchnorm_keeps_the_outputs(arch):
    torch.manual_seed(0)
    model = build_model(arch)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_(0, 0.2)  # trained-looking statistics, not the identity
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0, 0.1)
    model.eval()
    x = torch.randn(2, 3, 72, 64)
    with torch.inference_mode():
        expected = model(x)
        fold_batchnorm(model)
        folded = model(x)
        fold_batchnorm(model)  # idempotent
        again = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(folded, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(folded, again)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(build_model(arch).train())


def test_detector_scores_match_the_checkpoint_network(tiny_checkpoint):
    from forensics_app.core.detector import load_checkpoint

    trained = load_checkpoint(tiny_checkpoint).model
    det = Detector.from_checkpoint(tiny_checkpoint, "cpu", threads=1)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in det.model.modules())
    x = torch.stack([to_normalized_tensor(make_image((80, 64), s)) for s in range(3)])
    with torch.inference_mode():
        expected = torch.sigmoid(trained(x)[:, 0]).double().numpy()
    np.testing.assert_allclose(det.predict_proba(x), expected, atol=1e-5)
