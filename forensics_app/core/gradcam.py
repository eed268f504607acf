"""Grad-CAM for the detector (pytorch-grad-cam), Qt-free.

Each request builds its own ``with GradCAM(...)`` block, with gradients enabled, on a model
instance that no scan is using. The map shows the regions that most raised the
"generated" score -- not a map of manipulated areas.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from forensics_app.core.architectures import ForensicResNet
from forensics_app.core.preprocess import denormalize


class _GeneratedScore:
    """Grad-CAM target: the logit (or class score) that means "generated"."""

    def __init__(self, fake_index: int):
        self.fake_index = fake_index

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if model_output.ndim == 1:
            return model_output[self.fake_index if model_output.shape[0] > 1 else 0]
        return model_output[:, self.fake_index if model_output.shape[1] > 1 else 0]


def cam_model_copy(model: ForensicResNet) -> ForensicResNet:
    """A private fp32 CPU copy of the detector for Grad-CAM (scans keep their own)."""
    m = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def compute_gradcam(
    model: ForensicResNet, tensor: torch.Tensor, fake_index: int = 0
) -> np.ndarray:
    """Heatmap (H, W) in [0, 1] for one normalised image tensor (3, H, W)."""
    x = tensor.unsqueeze(0).float()
    with torch.enable_grad(), GradCAM(model=model, target_layers=[model.cam_target_layer()]) as cam:
        heat = cam(input_tensor=x, targets=[_GeneratedScore(fake_index)])[0]
    heat = np.nan_to_num(heat.astype(np.float32))
    h, w = tensor.shape[-2:]
    if heat.shape != (h, w):  # NPR input drops an odd trailing row/column
        heat = np.asarray(Image.fromarray(heat).resize((w, h), Image.BILINEAR))
    return heat


def overlay(tensor: torch.Tensor, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """RGB uint8 overlay of ``heat`` on the (de-normalised) image."""
    rgb = denormalize(tensor).astype(np.float32)
    return show_cam_on_image(rgb, heat, use_rgb=True, image_weight=1.0 - float(opacity))
