"""Grad-CAM for the detector (pytorch-grad-cam), Qt-free.

Each request builds its own ``with GradCAM(...)`` block, with gradients enabled, on a model
instance that no scan is using. The map shows the regions that most raised the
"generated" score -- not a map of manipulated areas.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from forensics_app.core.architectures import ForensicResNet
from forensics_app.core.preprocess import PreparedImage, denormalize


class _GeneratedScore:
    """Grad-CAM target: the logit (or class score) that means "generated"."""

    def __init__(self, fake_index: int):
        self.fake_index = fake_index

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if model_output.ndim == 1:
            return model_output[self.fake_index if model_output.shape[0] > 1 else 0]
        return model_output[:, self.fake_index if model_output.shape[1] > 1 else 0]


def cam_model_copy(model: ForensicResNet) -> ForensicResNet:
    """A private fp32 CPU copy of the detector for Grad-CAM (scans keep their own).

    Only the target block and what follows it need gradients: Grad-CAM weighs the target's
    activations by d(score)/d(activations), which the layers before it do not enter. With their
    parameters frozen, autograd keeps none of their (full-resolution, widest) activations, so a
    512^2 tile's backward pass holds a fraction of the memory and the map is the same.
    """
    m = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    for p in (*m.cam_target_layer().parameters(), *m.fc.parameters()):
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


# Grad-CAM of a large image is shown at most this many pixels, a 4K screen's worth (display
# only: every tile's map is computed at full resolution, then placed, scaled, into the picture
# of the whole image). 16 MP took a 100 MP Grad-CAM to 1,547 MiB, 8.3 MP to 1,487 (issue 14's
# bound is 1.5 GB; ``benchmarks/gradcam_memory.py``).
DISPLAY_PIXELS = 8_300_000


@dataclass
class TiledCam:
    """A whole image's Grad-CAM for display: the image, its heat map and the analysed mask,
    all at ``scale`` of the scored image; ``boxes`` are the tiles in display coordinates."""

    image: np.ndarray  # (h, w, 3) uint8
    heat: np.ndarray  # (h, w) float32 in [0, 1]
    analysed: np.ndarray  # (h, w) bool
    scale: float
    boxes: list[tuple[int, int, int, int]]
    notes: list[str]


def colour_map(heat: np.ndarray) -> np.ndarray:
    """RGB uint8 JET colours of ``heat`` as pytorch-grad-cam draws them, without its float
    copies of the whole image."""
    import cv2

    rgb = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET),
                       cv2.COLOR_BGR2RGB)
    peak = int(rgb.max()) if rgb.size else 0
    if 0 < peak < 255:
        rgb = (rgb.astype(np.float32) * (255.0 / peak)).round().astype(np.uint8)
    return rgb


def tiled_gradcam(
    model: ForensicResNet, prepared: PreparedImage, fake_index: int = 0,
    display_pixels: int = DISPLAY_PIXELS, should_cancel: Callable[[], bool] | None = None,
) -> TiledCam:
    """Grad-CAM of each scored input (tile, crop or whole image), at full resolution, one
    tile at a time, placed into a display-sized picture of the whole image.

    Memory: the decoded image (already held), one tile's forward and backward pass, and the
    display-sized arrays -- a 100 MP photo is shown at 8.3 MP, never copied as floats.
    """
    width, height = prepared.scored_size
    scale = min(1.0, math.sqrt(display_pixels / max(1, width * height)))
    dw, dh = max(1, round(width * scale)), max(1, round(height * scale))
    notes: list[str] = []
    single = prepared.n_tiles == 1 and prepared.boxes[0] == (0, 0, width, height)
    image = None
    if not single:  # the display picture first, while no tile's Grad-CAM memory is held
        src = prepared.source
        image = np.asarray(src if scale == 1.0 else src.resize((dw, dh), Image.BOX),
                           dtype=np.uint8)
        del src
        if prepared.n_tiles > 1:
            notes.append("Grad-CAM computed per tile; each tile's map is scaled on its own.")
        else:
            notes.append("Only the highlighted crop was analysed.")
    heat = np.zeros((dh, dw), dtype=np.float32)
    analysed = np.zeros((dh, dw), dtype=bool)
    boxes = []
    for i, (x, y, w, h) in enumerate(prepared.boxes):
        if should_cancel is not None and should_cancel():
            raise CamCancelled()
        tile = prepared.tile(i)
        cam = compute_gradcam(model, tile, fake_index)
        del tile
        x0, y0 = round(x * scale), round(y * scale)
        x1, y1 = min(dw, max(x0 + 1, round((x + w) * scale))), min(dh, max(y0 + 1, round((y + h) * scale)))
        if (x1 - x0, y1 - y0) != cam.shape[::-1]:
            cam = np.asarray(Image.fromarray(cam).resize((x1 - x0, y1 - y0), Image.BILINEAR))
        heat[y0:y1, x0:x1] = cam
        analysed[y0:y1, x0:x1] = True
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    if single:
        # Exactly the pixels the network saw (this includes any recorded up-scaling).
        image = (denormalize(prepared.tile(0)) * 255.0).round().astype(np.uint8)
    if scale < 1.0:
        notes.append(f"Shown at {scale:.0%} of full resolution ({dw}x{dh} of {width}x{height}); "
                     "the score and each tile's map were computed at full resolution.")
    return TiledCam(np.ascontiguousarray(image), heat, analysed, scale, boxes, notes)


class CamCancelled(Exception):
    """``should_cancel()`` returned True between tiles."""
