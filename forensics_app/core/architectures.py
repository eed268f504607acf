"""Detector network definitions, shared by the app and the training package.

Two families: EfficientNet-Lite0 (``core.efficientnet_lite``, ImageNet-initialised, the v3 trace
candidate; architecture name ``efficientnet_lite0``) and the ResNets. The ResNets are torchvision ResNets (the blocks copied in core/resnet.py, so the app imports
no torchvision) with torchvision's parameter names, so official
CNNDetection checkpoints load unchanged. Options recorded in checkpoint metadata:

* ``input_transform``: ``"none"`` (the paper) or ``"npr"`` -- the neighbouring-pixel residual
  ``x - up(down(x))`` (nearest, factor 2) of Tan et al. (CVPR 2024), which exposes up-sampling
  traces; odd trailing rows/columns are dropped.
* ``stages``: how many of the four residual stages are kept (4 = full ResNet-50).
* ``width``: channels of the stem and the first stage (64 = torchvision's; each later stage
  doubles it). A narrower trunk costs about (width / 64)^2 of the work per pixel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from forensics_app.core.efficientnet_lite import EfficientNetLite0
from forensics_app.core.resnet import BasicBlock, Bottleneck, ResNet, init_weights

ARCH_LAYERS = {
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
}

DEFAULT_ARCH: dict[str, Any] = {
    "name": "resnet50",
    "num_outputs": 1,
    "input_transform": "none",
    "stages": 4,
    "npr_gain": 4.0,
    "width": 64,
}
WIDTHS = (16, 24, 32, 48, 64)
LITE0 = "efficientnet_lite0"
NETWORK_NAMES = (*ARCH_LAYERS, LITE0)

# Networks the training package builds for studies that the app refuses, with the reason
# shown to the user (checked before anything is built from the checkpoint).
_STUDY_REASON = (
    "is a study network of the training package (the CIFAKE seed study, docs/cifake_study.md), "
    "not a detector this app loads: it was trained on images down-scaled to 32x32 and "
    "up-sampled to one fixed input size, which the app's preprocessing (the full image, not "
    "resized) does not reproduce, so its scores on evidence would not mean what its test "
    "figures say; the app also carries no {what} definition (it imports no torchvision)"
)
STUDY_ONLY = {"inception_v3": "inception_v3 " + _STUDY_REASON.format(what="InceptionV3")}
STUDY_HEAD_REASON = ("the 'paper' head (Dense 1024, ReLU, Dropout, 1 logit) " +
                     _STUDY_REASON.format(what="dense-head"))


def study_network_reason(state: dict[str, Any]) -> str | None:
    """Why a bare state dict is a refused study network (None: it is not one)."""
    if any(k.startswith("Mixed_7c.") for k in state):
        return STUDY_ONLY["inception_v3"]
    if "fc.0.weight" in state and "fc.3.weight" in state:
        return STUDY_HEAD_REASON
    return None


def npr_residual(x: torch.Tensor, gain: float = 4.0) -> torch.Tensor:
    """Neighbouring-pixel residual: x - nearest_up(nearest_down(x)), times ``gain``."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    # Each 2x2 cell minus its top-left pixel, by broadcasting over a (.., h, 2, w, 2) view: the
    # same arithmetic as subtracting the nearest-upsampled image, in one pass (2.5x faster).
    cells = x[..., : 2 * h, : 2 * w].reshape(*x.shape[:-2], h, 2, w, 2)
    return ((cells - cells[..., :1, :, :1]) * gain).reshape(*x.shape[:-2], 2 * h, 2 * w)


class ForensicResNet(ResNet):
    """torchvision ResNet with an optional input transform and truncated trunk."""

    def __init__(self, arch: dict[str, Any]):
        block, layers = ARCH_LAYERS[arch["name"]]
        super().__init__(block, layers, num_classes=arch["num_outputs"])
        self.arch = dict(arch)
        self.stages = int(arch.get("stages", 4))
        if not 1 <= self.stages <= 4:
            raise ValueError(f"stages must be 1..4, got {self.stages}")
        for i in range(self.stages + 1, 5):
            setattr(self, f"layer{i}", nn.Identity())
        base = int(arch.get("width", 64))
        if base not in WIDTHS:
            raise ValueError(f"width must be one of {WIDTHS}, got {base}")
        if base != 64:  # rebuild the trunk narrower, keeping torchvision's names and init
            norm = self._norm_layer
            self.inplanes = base
            self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = norm(base)
            for i in range(1, self.stages + 1):
                setattr(self, f"layer{i}", self._make_layer(block, base * 2 ** (i - 1),
                                                            layers[i - 1],
                                                            stride=1 if i == 1 else 2))
            init_weights(self)
        width = base * (2 ** (self.stages - 1)) * block.expansion
        self.fc = nn.Linear(width, arch["num_outputs"])
        self.input_transform = arch.get("input_transform", "none")
        if self.input_transform not in ("none", "npr"):
            raise ValueError(f"unknown input_transform {self.input_transform!r}")
        self.npr_gain = float(arch.get("npr_gain", 4.0))

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform == "npr":
            x = npr_residual(x, self.npr_gain)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def cam_target_layer(self) -> nn.Module:
        """Last residual block of the last kept stage (Grad-CAM's usual target)."""
        return getattr(self, f"layer{self.stages}")[-1]


class ForensicLite0(EfficientNetLite0):
    """EfficientNet-Lite0 with the interface the detector, Grad-CAM and the checks use:
    ``arch``, ``fc``, ``input_transform`` (``none`` or ``npr``) and ``cam_target_layer``."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__(num_outputs=arch["num_outputs"])
        self.arch = dict(arch)
        self.input_transform = arch.get("input_transform", "none")
        if self.input_transform not in ("none", "npr"):
            raise ValueError(f"unknown input_transform {self.input_transform!r}")
        self.npr_gain = float(arch.get("npr_gain", 4.0))

    @property
    def fc(self) -> nn.Linear:
        return self._fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform == "npr":
            x = npr_residual(x, self.npr_gain)
        return super().forward(x)


Network = ForensicResNet | ForensicLite0


def resolve_arch(arch: dict[str, Any] | None) -> dict[str, Any]:
    resolved = dict(DEFAULT_ARCH)
    resolved.update(arch or {})
    if resolved["name"] not in NETWORK_NAMES:
        raise ValueError(f"unknown architecture {resolved['name']!r}; known: {sorted(NETWORK_NAMES)}")
    return resolved


def construct(arch: dict[str, Any]) -> Network:
    """The network for a resolved ``arch``, with its modules' default initialisation (cheap on
    the ``meta`` device: what the checkpoint checks use to learn the expected layout)."""
    return ForensicLite0(arch) if arch["name"] == LITE0 else ForensicResNet(arch)


def build_model(arch: dict[str, Any] | None = None) -> Network:
    """Build an (untrained) detector; the head is initialised N(0, 0.02) as in the paper."""
    model = construct(resolve_arch(arch))
    nn.init.normal_(model.fc.weight, 0.0, 0.02)
    nn.init.zeros_(model.fc.bias)
    return model


def describe_arch(arch: dict[str, Any]) -> str:
    """One line naming the network, for the model dialog, reports and ``--info``."""
    name = arch.get("name", "resnet50")
    text = f"CNN {name}"
    if name != LITE0 and arch.get("stages"):
        text += f", {arch['stages']} stages"
    if arch.get("input_transform") not in (None, "none"):
        text += f", {arch['input_transform']} input"
    return text


def _fold(parent: nn.Module, conv: str, bn: str) -> None:
    if isinstance(getattr(parent, bn, None), nn.BatchNorm2d):
        setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
        setattr(parent, bn, nn.Identity())


def fold_batchnorm(model: Network) -> Network:
    """Fold each BatchNorm into the convolution before it, in place, for inference.

    Outputs are unchanged up to float rounding, and the ~50 passes over the activations that
    the BatchNorms cost disappear: 15-25 % of a ResNet-50 forward on a CPU. The folded network
    has no BatchNorm parameters, so it must not be trained or saved as a checkpoint.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    if isinstance(model, EfficientNetLite0):
        _fold(model, "_conv_stem", "_bn0")
        for block in model._blocks:
            if block.expand:
                _fold(block, "_expand_conv", "_bn0")
            _fold(block, "_depthwise_conv", "_bn1")
            _fold(block, "_project_conv", "_bn2")
        _fold(model, "_conv_head", "_bn1")
        return model
    _fold(model, "conv1", "bn1")
    for block in [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]:
        for i in (1, 2, 3):
            _fold(block, f"conv{i}", f"bn{i}")
        ds = block.downsample
        if isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[1], nn.BatchNorm2d):
            block.downsample = nn.Sequential(fuse_conv_bn_eval(ds[0], ds[1]))
    return model


def infer_arch_from_state_dict(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Guess a ResNet variant from parameter names and shapes (for foreign checkpoints)."""
    if "fc.weight" not in state or "conv1.weight" not in state:
        raise ValueError("no 'conv1.weight'/'fc.weight': not a torchvision ResNet state dict")
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in state)
    counts = []
    for stage in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state if k.startswith(f"layer{stage}.")}
        if not idx:
            break
        counts.append(max(idx) + 1)
    stages = len(counts)
    width = int(state["conv1.weight"].shape[0])
    for name, (block, layers) in ARCH_LAYERS.items():
        if (block is Bottleneck) == bottleneck and layers[:stages] == counts:
            return resolve_arch(
                {"name": name, "num_outputs": int(state["fc.weight"].shape[0]), "stages": stages,
                 "width": width}
            )
    raise ValueError(f"unrecognised ResNet layout (blocks per stage {counts})")
