"""Issue 37 H3, Qt-free: an occlusion map for any branch through its own interface, and the
branches described in the order of their fusion weight."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from forensics_app.core.branch_explain import (
    ExplainCancelled,
    branch_order,
    occlusion_map,
)
from forensics_app.core.branches import Fusion


class CentreCropBranch:
    """Sees only a centre ``crop``² crop (no resize), like the CLIP branch; its logit is the
    mean red of the crop's top-left quarter, so only that region should light up."""

    def __init__(self, crop: int = 32):
        self.crop = crop
        self.calls: list[int] = []

    def input_for(self, img: Image.Image) -> np.ndarray:
        w, h = img.size
        c = self.crop
        box = ((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)
        return np.asarray(img.crop(box), np.float32).transpose(2, 0, 1) / 255.0

    def logits(self, inputs: list[np.ndarray]) -> np.ndarray:
        self.calls.append(len(inputs))
        x = np.stack(inputs)
        q = self.crop // 2
        return x[:, 0, :q, :q].mean(axis=(1, 2)) * 10.0


def _red_image(w: int = 96, h: int = 80) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = 250
    return Image.fromarray(a)


def test_occlusion_scores_only_what_the_branch_sees_and_finds_the_deciding_region():
    branch = CentreCropBranch(32)
    m = occlusion_map(branch, _red_image(), name="semantic", grid=4, batch_size=5)
    # the region seen lies around the centre crop (x 32-64, y 24-56), never the whole image
    x0, y0, x1, y1 = m.region
    assert x0 <= 32 and x1 >= 64 and y0 <= 24 and y1 >= 56 and (x1 - x0) < 96
    assert m.seen.any() and m.n_forward == 1 + int(m.seen.sum())
    assert all(n <= 5 for n in branch.calls)  # batched
    assert m.base_logit == pytest.approx(250 / 255 * 10, rel=1e-5)
    heat = m.heat()
    assert heat.shape == (80, 96) and heat.max() == pytest.approx(1.0)
    hot = np.argwhere(heat > 0.5)
    # the hot area is the crop's top-left quarter (x 32-48, y 24-40), nothing outside it
    assert hot[:, 1].min() >= 24 and hot[:, 1].max() < 56
    assert hot[:, 0].min() >= 16 and hot[:, 0].max() < 48
    assert heat[:, :16].max() == 0 and heat[:, 80:].max() == 0  # never seen: never hot
    small = m.heat(48, 40)
    assert small.shape == (40, 48) and small.max() == pytest.approx(1.0)
    assert m.seen_mask().sum() < 96 * 80


def test_occlusion_can_be_cancelled():
    with pytest.raises(ExplainCancelled):
        occlusion_map(CentreCropBranch(32), _red_image(), grid=4, batch_size=2,
                      should_cancel=lambda: True)


def test_branches_are_described_by_weight_heaviest_first():
    fusion = Fusion({"trace": 0.0, "semantic": 1.0}, -0.2)
    roles = branch_order(fusion.weights, {"semantic": "centre 224² crop"})
    assert [r.name for r in roles] == ["semantic", "trace"]
    assert roles[0].label == "semantic branch (fusion weight +1.00)"
    assert roles[0].explanation == "occlusion sensitivity" and roles[1].explanation == "Grad-CAM"
    assert roles[0].decides and not roles[1].decides
    assert [r.name for r in branch_order({"trace": 1.0})] == ["trace"]
    assert [r.name for r in branch_order({"trace": -2.0, "semantic": 1.0})] == \
        ["trace", "semantic"]
