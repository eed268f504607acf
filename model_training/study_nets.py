"""Networks of the CIFAKE seed study: torchvision InceptionV3, the paper's dense head, freezing.

The study (ResNet-50 vs InceptionV3 on CIFAKE) puts the same head on both trunks -- global
average pooling -> Dense 1024 ReLU -> Dropout 0.3 -> 1 logit -- and trains only the last 50
Keras layers. Here:

* :class:`InceptionDetector` is torchvision's ``inception_v3`` trunk (``Conv2d_1a_3x3`` ..
  ``Mixed_7c``, torchvision parameter names) without the auxiliary head (the Keras model the
  study used has none; it is never built, so inference and training see the same graph), and
  a head chosen by ``arch["head"]``: ``"linear"`` (one ``Linear``, as the ResNets) or
  ``"paper"``. It accepts inputs from 75 px, as torchvision's and Keras's InceptionV3.
* :class:`PaperHeadResNet` is the app's ResNet trunk with the paper's head in ``fc``.
* :func:`freeze_all_but_last` freezes every *parameterised* trunk layer (Conv, BatchNorm,
  Linear) except the last ``n``; the head always trains. Keras also counts layers without
  weights (activations, concatenations, additions), so Keras's "last 50" is about 30 of these
  on ResNet-50 and about 33 on InceptionV3 (``docs/cifake_study.md``).
* Frozen BatchNorm layers run on their stored statistics (``frozen_bn="eval"``, Keras >= 2.1's
  behaviour for ``trainable=False``) or, as a plain PyTorch ``requires_grad_(False)`` leaves
  them, on batch statistics that keep updating the running ones (``"train"``).

These are study networks: ``forensics_app`` refuses them with the reason
(``core.checkpoint_check.STUDY_ONLY``), the ResNets with the linear head stay app networks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from forensics_app.core.architectures import ForensicResNet, resolve_arch

INCEPTION = "inception_v3"
INCEPTION_MIN_SIDE = 75  # torchvision/Keras: smaller inputs leave nothing for the last pools
HEADS = ("linear", "paper")
FROZEN_BN_MODES = ("eval", "train")
# torchvision Inception3's trunk, in forward order (no AuxLogits: never built here).
INCEPTION_TRUNK = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
)


def make_head(in_features: int, arch: dict[str, Any]) -> nn.Module:
    """``linear``: Linear(in, 1). ``paper``: Linear(in, 1024), ReLU, Dropout(0.3), Linear(1024, 1).

    The last Linear is initialised N(0, 0.02), bias 0, as the repository's other heads.
    """
    head = arch.get("head", "linear")
    outputs = int(arch.get("num_outputs", 1))
    if head == "linear":
        layers: list[nn.Module] = [nn.Linear(in_features, outputs)]
    elif head == "paper":
        hidden = int(arch.get("head_hidden", 1024))
        dropout = float(arch.get("head_dropout", 0.3))
        if hidden < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"head_hidden must be >= 1 and head_dropout in [0, 1), got "
                             f"{hidden}, {dropout}")
        layers = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                  nn.Linear(hidden, outputs)]
    else:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    nn.init.normal_(layers[-1].weight, 0.0, 0.02)
    nn.init.zeros_(layers[-1].bias)
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class InceptionDetector(nn.Module):
    """torchvision InceptionV3 trunk (no auxiliary head), GAP, and a 1-logit head in ``fc``."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__()
        from torchvision.models import inception_v3

        if arch.get("aux_logits", False):
            raise ValueError("aux_logits is not supported: the study's network has no "
                             "auxiliary head")
        net = inception_v3(weights=None, aux_logits=False, init_weights=True,
                           transform_input=False)
        for name in INCEPTION_TRUNK:
            setattr(self, name, getattr(net, name))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = make_head(net.fc.in_features, arch)
        self.arch = {"aux_logits": False, "head": "linear", **arch}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < INCEPTION_MIN_SIDE:
            raise ValueError(f"InceptionV3 needs inputs of at least {INCEPTION_MIN_SIDE} px, "
                             f"got {tuple(x.shape[-2:])}")
        for name in INCEPTION_TRUNK:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))

    def cam_target_layer(self) -> nn.Module:
        """The last mixed block (Grad-CAM's usual target on InceptionV3)."""
        return self.Mixed_7c


class PaperHeadResNet(ForensicResNet):
    """The app's ResNet trunk with the study's head (``arch["head"] == "paper"``) in ``fc``."""

    def __init__(self, arch: dict[str, Any]):
        super().__init__(resolve_arch({k: v for k, v in arch.items()
                                       if k not in ("head", "head_hidden", "head_dropout")}))
        self.fc = make_head(self.fc.in_features, arch)
        self.arch = dict(arch)


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm that stays in eval mode (stored statistics) whatever ``train()`` asks."""

    def train(self, mode: bool = True) -> FrozenStatsBatchNorm2d:
        return super().train(False)


def head_module(model: nn.Module) -> nn.Module:
    return model.fc if hasattr(model, "fc") else model.classifier


def trunk_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Parameterised leaf layers of the trunk (not the head), in registration = forward order."""
    head_ids = {id(m) for m in head_module(model).modules()}
    return [(name, m) for name, m in model.named_modules()
            if id(m) not in head_ids and not list(m.children())
            and any(True for _ in m.parameters(recurse=False))]


def freeze_all_but_last(model: nn.Module, n: int | None,
                        frozen_bn: str = "eval") -> dict[str, Any]:
    """Freeze all parameterised trunk layers but the last ``n`` (None: train everything).

    Returns the record stored in the checkpoint's metadata (how many layers, which is the
    first trainable one, trainable parameter count, the BatchNorm mode).
    """
    if frozen_bn not in FROZEN_BN_MODES:
        raise ValueError(f"frozen_bn must be one of {FROZEN_BN_MODES}, not {frozen_bn!r}")
    layers = trunk_layers(model)
    if n is None:
        n_frozen = 0
    else:
        if n < 0:
            raise ValueError(f"train_last_n must be >= 0, got {n}")
        n_frozen = max(0, len(layers) - n)
    for _name, layer in layers[:n_frozen]:
        layer.requires_grad_(False)
        if isinstance(layer, nn.BatchNorm2d) and frozen_bn == "eval":
            layer.__class__ = FrozenStatsBatchNorm2d
            layer.eval()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "train_last_n": n, "trunk_layers": len(layers), "frozen_layers": n_frozen,
        "first_trainable": layers[n_frozen][0] if n_frozen < len(layers) else "head",
        "frozen_bn": frozen_bn, "trainable_params": int(trainable),
        "total_params": int(sum(p.numel() for p in model.parameters())),
    }
