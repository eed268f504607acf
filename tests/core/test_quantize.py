"""int8 lever (core/quantize.py), the narrower trunk (``width``) and torch.compile's wrapper."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from forensics_app.core.architectures import build_model, fold_batchnorm, infer_arch_from_state_dict
from forensics_app.core.checkpoint_check import CheckpointFieldError, validate_meta
from forensics_app.core.detector import Detector
from forensics_app.core.quantize import (
    calibrate_int8,
    calibration_batch,
    quantize_int8,
    quantized_engine,
)
from forensics_app.core.scan import ScanOptions, scan_files
from forensics_app.core.speed import SpeedLevers
from helpers import make_image, save_tiny_checkpoint

ARCH = {"name": "resnet18", "num_outputs": 1, "input_transform": "npr", "stages": 1, "width": 16}
needs_engine = pytest.mark.skipif(quantized_engine() is None, reason="no quantized CPU engine")


def _model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(ARCH)
    torch.nn.init.normal_(model.fc.weight, 0.0, 0.5)
    return fold_batchnorm(model.eval())


def _tiles(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 64, 64, generator=g) * 2 - 1


def test_width_narrows_the_trunk_and_keeps_torchvision_names():
    wide, narrow = build_model({**ARCH, "width": 64}), build_model(ARCH)
    assert set(wide.state_dict()) == set(narrow.state_dict())
    assert narrow.conv1.out_channels == 16 and narrow.fc.in_features == 16
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters()) / 8
    assert infer_arch_from_state_dict(narrow.state_dict())["width"] == 16
    with pytest.raises(ValueError, match="width"):
        build_model({**ARCH, "width": 20})


def test_checkpoint_check_refuses_a_bad_width():
    with pytest.raises(CheckpointFieldError, match="width"):
        validate_meta({"architecture": {**ARCH, "width": 10**9}})


def test_calibration_set_is_fixed():
    a, b = calibration_batch(2), calibration_batch(2)
    assert a.shape == (2, 3, 512, 512) and torch.equal(a, b)


@needs_engine
def test_int8_tracks_fp32_and_stored_ranges_reproduce_the_calibration():
    model, calib, test = _model(), _tiles(8, 1), _tiles(6, 2)
    with torch.inference_mode():
        ref = model(test)[:, 0]
    direct, source = quantize_int8(model, calib)
    assert "given tiles" in source
    stored = calibrate_int8(model, calib, "unit-test tiles")
    json.dumps(stored)  # plain data, fit for a checkpoint's meta
    validate_meta({"int8_calibration": stored})
    again, source2 = quantize_int8(model, stored=stored)
    assert source2 == "checkpoint (unit-test tiles)"
    with torch.inference_mode():
        a, b = direct(test)[:, 0], again(test)[:, 0]
    assert torch.equal(a, b)
    assert np.corrcoef(a.numpy(), ref.numpy())[0, 1] > 0.95
    assert float((torch.sigmoid(a) - torch.sigmoid(ref)).abs().max()) < 0.1
    # the float model is untouched
    assert all(p.dtype == torch.float32 for p in model.parameters())


@needs_engine
def test_ranges_for_another_engine_fall_back_to_the_seeded_set():
    model = _model()
    stored = calibrate_int8(model, _tiles(4, 1), "x")
    stored["engine"] = "some-other-engine"
    _, source = quantize_int8(model, calibration=_tiles(4, 3), stored=stored)
    assert "some-other-engine" in source


@pytest.mark.parametrize("bad", [
    {"engine": "x86", "observers": {"a": [float("nan"), 0, 0, 127]}},
    {"engine": "x86", "observers": {"a": [0.1, 300, 0, 127]}},
    {"engine": "x86", "observers": {"a": [0.1, 0]}},
    {"engine": "x86", "observers": {}},
    {"observers": {"a": [0.1, 0, 0, 127]}},
    [1, 2, 3],
])
def test_checkpoint_check_refuses_bad_int8_ranges(bad):
    with pytest.raises(CheckpointFieldError, match="int8_calibration"):
        validate_meta({"int8_calibration": bad})


@needs_engine
def test_int8_lever_scores_a_scan_and_is_recorded(tmp_path):
    from forensics_app.core.speed import engine_record

    ckpt = save_tiny_checkpoint(tmp_path / "t.pt", arch=ARCH)
    p = tmp_path / "a.png"
    make_image((150, 120), 0).save(p)
    fp = Detector.from_checkpoint(ckpt, "cpu", threads=1)
    q = Detector.from_checkpoint(ckpt, "cpu", threads=1, levers=SpeedLevers(precision="int8"))
    (a,) = scan_files([p], fp)
    (b,) = scan_files([p], q)
    assert b.error is None and 0 <= b.prob_fake <= 1
    assert b.prob_fake == pytest.approx(a.prob_fake, abs=0.1)
    rec = engine_record(q, ScanOptions())
    assert rec["levers"]["precision"] == "int8"
    assert "photo-like" in rec["levers"]["int8_ranges"]  # no ranges stored in this checkpoint


def test_int8_is_refused_off_the_cpu(tiny_checkpoint, monkeypatch):
    import forensics_app.core.detector as det

    monkeypatch.setattr(det, "resolve_device", lambda _d: torch.device("meta"))
    with pytest.raises(ValueError, match="CPU only"):
        Detector.from_checkpoint(tiny_checkpoint, "cpu", levers=SpeedLevers(precision="int8"))


def test_a_compiled_forward_is_called_not_tested_for_truth(tiny_detector):
    class NoLen(torch.nn.Module):  # torch.compile's wrapper raises on len()/bool()
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def __len__(self):
            raise TypeError("does not support len()")

        def forward(self, x):
            return self.inner(x)

    saved = tiny_detector._forward
    try:
        tiny_detector._forward = NoLen(tiny_detector.model)
        out = tiny_detector.predict_proba(torch.zeros(1, 3, 64, 64))
        assert out.shape == (1,)
    finally:
        tiny_detector._forward = saved


@needs_engine
def test_auto_precision_picks_int8_only_with_ranges_for_this_engine(tmp_path):
    plain = save_tiny_checkpoint(tmp_path / "plain.pt", arch=ARCH)
    assert Detector.from_checkpoint(plain, "cpu", threads=1).levers.precision == "fp32"
    model = _model()
    stored = calibrate_int8(model, _tiles(4, 1), "t")
    ranged = save_tiny_checkpoint(tmp_path / "ranged.pt", arch=ARCH,
                                  meta={"int8_calibration": stored})
    det = Detector.from_checkpoint(ranged, "cpu", threads=1)
    assert det.levers.precision == "int8" and det.int8_source == "checkpoint (t)"
    assert Detector.from_checkpoint(ranged, "cpu", threads=1, levers=SpeedLevers(
        precision="fp32")).levers.precision == "fp32"
    other = save_tiny_checkpoint(tmp_path / "other.pt", arch=ARCH,
                                 meta={"int8_calibration": {**stored, "engine": "elsewhere"}})
    assert Detector.from_checkpoint(other, "cpu", threads=1).levers.precision == "fp32"


@needs_engine
def test_folded_batchnorm_still_fuses_convolution_and_relu():
    """BatchNorm folded to Identity must not keep conv and ReLU apart: no float ReLU op and
    no separate quantized ReLU remain in the int8 trunk."""
    int8, _ = quantize_int8(_model(), calibration=_tiles(4, 1))
    graph = int8.trunk.graph
    modules = dict(int8.trunk.named_modules())
    relus = [n for n in graph.nodes
             if (n.op == "call_module" and isinstance(modules[n.target], torch.nn.ReLU))
             or (n.op in ("call_function", "call_method") and "relu" in str(n.target)
                 and "add_relu" not in str(n.target))]
    assert relus == []
    fused = [m for m in modules.values() if type(m).__name__ == "ConvReLU2d"]
    assert fused, "no convolution was fused with its ReLU"
    identities = [m for m in modules.values() if isinstance(m, torch.nn.Identity)]
    assert identities == []


def test_quantizing_imports_no_compiler_stack():
    """FX tracing records no per-node stack traces, which would import torch._dynamo,
    inductor and sympy (~170 MiB resident) into a scan that compiles nothing."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]);"
        "from forensics_app.core.quantize import quantize_int8, quantized_engine;"
        "from forensics_app.core.architectures import build_model, fold_batchnorm;"
        "m = fold_batchnorm(build_model(dict(name='resnet18', num_outputs=1, "
        "input_transform='npr', stages=1, width=16)).eval());"
        "quantized_engine() and quantize_int8(m, calibration=torch.rand(2, 3, 64, 64));"
        "import torch.fx.config as c; assert not c.do_not_emit_stack_traces;"
        "print(sorted(k for k in ('torch._dynamo', 'torch._inductor', 'sympy') if k in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
