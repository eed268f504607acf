"""Grad-CAM on the tiny detector: an (H, W) map in [0, 1], on a private model copy."""

from __future__ import annotations

import numpy as np
import torch

from forensics_app.core.architectures import build_model
from forensics_app.core.gradcam import cam_model_copy, compute_gradcam, overlay
from forensics_app.core.preprocess import to_normalized_tensor
from helpers import make_image


def test_gradcam_map_shape_and_range(tiny_detector):
    tensor = to_normalized_tensor(make_image((96, 72), 4))
    before = {k: v.clone() for k, v in tiny_detector.model.state_dict().items()}
    model = cam_model_copy(tiny_detector.model)
    assert model is not tiny_detector.model

    heat = compute_gradcam(model, tensor, fake_index=tiny_detector.checkpoint.fake_index)
    assert heat.shape == (72, 96)
    assert heat.dtype == np.float32 and np.isfinite(heat).all()
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat.max() > heat.min()  # not a flat map
    # The scanning model is untouched: same weights, no gradients accumulated.
    after = tiny_detector.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in tiny_detector.model.parameters())

    rgb = overlay(tensor, heat, opacity=0.4)
    assert rgb.shape == (72, 96, 3) and rgb.dtype == np.uint8


def test_gradcam_two_class_and_npr_odd_size():
    torch.manual_seed(0)
    model = build_model({"num_outputs": 2, "stages": 1, "input_transform": "npr"}).eval()
    tensor = to_normalized_tensor(make_image((67, 65), 5))  # odd sides: NPR drops a row/column
    heat = compute_gradcam(cam_model_copy(model), tensor, fake_index=1)
    assert heat.shape == (65, 67)
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_frozen_prefix_gives_the_same_map():
    """cam_model_copy freezes everything before the target block: same map, less memory."""
    torch.manual_seed(1)
    model = build_model({"name": "resnet18", "stages": 2, "input_transform": "npr"}).eval()
    tensor = to_normalized_tensor(make_image((96, 80), 6))
    frozen = cam_model_copy(model)
    trainable = [n for n, p in frozen.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("layer2.1.", "fc.")) for n in trainable)
    full = cam_model_copy(model)
    for p in full.parameters():
        p.requires_grad_(True)
    a = compute_gradcam(frozen, tensor)
    b = compute_gradcam(full, tensor)
    np.testing.assert_allclose(a, b, atol=1e-5)
