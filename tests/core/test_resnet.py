"""core/resnet.py is torchvision's ResNet: same names, shapes and outputs; and the app's core
no longer imports torchvision."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from forensics_app.core import resnet as ours

tv = pytest.importorskip("torchvision.models.resnet")


@pytest.mark.parametrize("block,layers", [("BasicBlock", [2, 2, 2, 2]), ("Bottleneck", [3, 4, 6, 3])])
def test_same_state_dict_and_outputs_as_torchvision(block, layers):
    torch.manual_seed(0)
    theirs = tv.ResNet(getattr(tv, block), layers, num_classes=1).eval()
    mine = ours.ResNet(getattr(ours, block), layers, num_classes=1).eval()
    a, b = theirs.state_dict(), mine.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    mine.load_state_dict(a)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs(x), mine(x))


def test_scan_path_does_not_import_torchvision():
    code = ("import sys; import forensics_app.core.detector as d, forensics_app.core.scan, "
            "forensics_app.cli; from forensics_app.paths import bundled_model_path; "
            "d.load_checkpoint(bundled_model_path()); "
            "print(any(m in sys.modules for m in ('torchvision', 'torch._dynamo', 'sympy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
