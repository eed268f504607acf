"""Networks for training: the app's ResNets (``forensics_app.core.architectures``) plus an
EfficientNet-B0 and the CIFAKE study's InceptionV3 / paper-head networks (``study_nets``) kept
inside the training package, with ImageNet initialisation when a local torchvision-format
state dict exists.

The paper starts from ImageNet weights. This package never downloads: ``pretrained="auto"``
looks in torch's hub cache (``$TORCH_HOME/hub/checkpoints``), a path uses that file, and
``"none"`` trains from scratch. Falling back to scratch is logged loudly and recorded in the
checkpoint, because it changes what the model can learn.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forensics_app.core.architectures import ARCH_LAYERS, build_model, resolve_arch
from forensics_app.core.detector import file_sha256
from model_training.checkpoint import load_torch_file
from model_training.study_nets import (
    INCEPTION,
    InceptionDetector,
    PaperHeadResNet,
    freeze_all_but_last,
)

log = logging.getLogger(__name__)

EFFICIENTNETS = ("efficientnet_b0",)
TRAINING_ARCHS = tuple(sorted(ARCH_LAYERS)) + EFFICIENTNETS + (INCEPTION,)

# torchvision's ImageNet files, preferred first (V1 weights: what the paper started from).
_KNOWN_FILES = {
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth"),
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet34": ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth"),
    "resnet101": ("resnet101-63fe2227.pth", "resnet101-5d3b4d8f.pth"),
    INCEPTION: ("inception_v3_google-0cc3c7bd.pth",),
}


def is_app_arch(arch: dict[str, Any]) -> bool:
    """True for architectures ``forensics_app.core`` can load (the ResNets, linear head)."""
    return arch.get("name") in ARCH_LAYERS and arch.get("head", "linear") == "linear"


class EfficientNetDetector(nn.Module):
    """torchvision EfficientNet-B0 with a 1-logit head initialised N(0, 0.02)."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        from torchvision.models import efficientnet_b0

        net = efficientnet_b0(weights=None)
        self.features, self.avgpool = net.features, net.avgpool
        in_features = net.classifier[1].in_features
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True),
                                        nn.Linear(in_features, arch.get("num_outputs", 1)))
        nn.init.normal_(self.classifier[1].weight, 0.0, 0.02)
        nn.init.zeros_(self.classifier[1].bias)
        self.arch = dict(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def build_network(arch: dict[str, Any]) -> nn.Module:
    """An untrained network for ``arch`` (head N(0, 0.02))."""
    if arch["name"] in EFFICIENTNETS:
        return EfficientNetDetector({"num_outputs": 1, **arch})
    if arch["name"] == INCEPTION:
        return InceptionDetector({"num_outputs": 1, **arch})
    if arch.get("head", "linear") != "linear":
        return PaperHeadResNet({"num_outputs": 1, **arch})
    return build_model(resolve_arch(arch))


def find_imagenet_weights(name: str) -> Path | None:
    """A torchvision ImageNet state dict for ``name`` in torch's hub cache, if any."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if not folder.is_dir():
        return None
    for fname in _KNOWN_FILES.get(name, ()):
        if (folder / fname).is_file():
            return folder / fname
    prefix = f"{name}_" if name.startswith("efficientnet") else f"{name}-"
    found = sorted(folder.glob(f"{prefix}*.pth"))
    return found[0] if found else None


def _head_prefix(model: nn.Module) -> str:
    return "classifier." if isinstance(model, EfficientNetDetector) else "fc."


def load_imagenet_weights(model: nn.Module, path: Path) -> None:
    """Load a torchvision ImageNet state dict into the trunk; the 1-logit head stays as is."""
    state = load_torch_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    head = _head_prefix(model)
    own = model.state_dict()
    trunk = {k: v for k, v in state.items() if not k.startswith(head) and k in own}
    skipped_layers = {k.split(".")[0] for k in state if k not in own and not k.startswith(head)}
    missing = [k for k in own if not k.startswith(head) and k not in trunk]
    if missing:
        raise ValueError(f"{path}: not a matching ImageNet state dict; missing e.g. {missing[:3]}")
    bad = [k for k, v in trunk.items() if v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:3]}")
    model.load_state_dict(trunk, strict=False)
    if skipped_layers:
        log.info("ImageNet weights: ignored %s (not in this truncated network)",
                 ", ".join(sorted(skipped_layers)))


def build_training_model(arch: dict[str, Any], pretrained: str = "auto", *,
                         train_last_n: int | None = None,
                         frozen_bn: str = "eval") -> tuple[nn.Module, dict]:
    """The network plus a record of how it was initialised (stored in every checkpoint).

    ``pretrained``: ``"auto"`` (hub cache if present, else scratch with a loud warning),
    ``"none"`` (scratch, on purpose) or a path to a torchvision state dict (must exist).
    ``train_last_n``: freeze all parameterised trunk layers but the last N after the weights
    are in (``study_nets.freeze_all_but_last``; recorded under ``"freeze"``).
    """
    model, info = _initialised(arch, pretrained)
    if train_last_n is not None:
        info["freeze"] = freeze_all_but_last(model, train_last_n, frozen_bn)
        if info["init"] == "scratch":
            log.warning("freezing %d layers of a network trained from scratch: the frozen "
                        "trunk keeps its random weights", info["freeze"]["frozen_layers"])
    return model, info


def _initialised(arch: dict[str, Any], pretrained: str) -> tuple[nn.Module, dict]:
    model = build_network(arch)
    if pretrained in ("none", "", None):
        return model, {"init": "scratch", "reason": "pretrained=none"}
    path = find_imagenet_weights(arch["name"]) if pretrained == "auto" else Path(pretrained)
    if path is None:
        where = Path(torch.hub.get_dir()) / "checkpoints"
        log.warning(
            "\n%s\nNO IMAGENET WEIGHTS for %s in %s: TRAINING FROM SCRATCH.\nThe paper starts "
            "from ImageNet; results will differ. Pass pretrained=<state dict path> to fix.\n%s",
            "!" * 78, arch["name"], where, "!" * 78,
        )
        return model, {"init": "scratch", "reason": f"no ImageNet weights in {where}"}
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {path} not found")
    load_imagenet_weights(model, path)
    info = {"init": "imagenet", "weights_file": path.name, "weights_sha256": file_sha256(path)}
    log.info("initialised %s from ImageNet weights %s", arch["name"], path)
    return model, info
