"""Multi-branch detectors: branch records, fusion, the semantic branch in a scan, weights prep.

The CLIP tower is replaced by a tiny ONNX graph with the same interface
(``pixel_values [N,3,224,224] -> image_embeds [N,512]``), built here, so the whole path
(checkpoint metadata -> registry -> ONNX Runtime -> head -> fusion -> row) runs in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from helpers import make_images, save_tiny_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from forensics_app.core.branches import Fusion, describe_branches  # noqa: E402
from forensics_app.core.detector import CheckpointError, Detector  # noqa: E402
from forensics_app.core.semantic import EMBED_DIM, LinearHead, clip_input  # noqa: E402


def _tiny_clip(path: Path, seed: int = 0) -> Path:
    """pixel_values -> global average pool -> [N,3] @ W[3,512] -> image_embeds."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(3, EMBED_DIM)).astype(np.float32), "W")
    shape = numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_clip",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["N", EMBED_DIM])],
        [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _head(seed: int = 0) -> LinearHead:
    rng = np.random.default_rng(seed)
    return LinearHead(rng.normal(size=EMBED_DIM).astype(np.float32) * 0.1, 0.2,
                      np.zeros(EMBED_DIM, np.float32), np.ones(EMBED_DIM, np.float32))


def _branch_meta(head: LinearHead, fusion: dict | None = None) -> dict:
    meta = {"branches": {"semantic": {"kind": "clip-vitb16-linear", "asset": "clip-vitb16",
                                      "head": head.to_record()}}}
    meta["fusion"] = fusion or {"kind": "logistic", "weights": {"trace": 0.5, "semantic": 1.0},
                                "bias": -0.1}
    return meta


@pytest.fixture
def tiny_clip_installed(tmp_path, monkeypatch) -> Path:
    path = _tiny_clip(tmp_path / "tiny_clip.onnx")
    monkeypatch.setattr("forensics_app.weights.find_asset", lambda key: path)
    return path


def test_fusion_is_logistic_over_branch_logits():
    f = Fusion({"trace": 0.5, "semantic": 2.0}, -1.0)
    z = -1.0 + 0.5 * 0.3 + 2.0 * -0.7
    assert f.fuse({"trace": 0.3, "semantic": -0.7}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert f.fuse({"trace": 1e9, "semantic": 1e9}) == pytest.approx(1.0)  # no overflow


def test_clip_input_centre_crop_without_resize_and_padding():
    from PIL import Image

    big = Image.fromarray(np.arange(300 * 400 * 3, dtype=np.uint8).reshape(300, 400, 3))
    x = clip_input(big)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    small = Image.new("RGB", (100, 60), (255, 0, 0))
    y = clip_input(small)
    assert y.shape == (3, 224, 224)
    assert np.allclose(y[0], y[0, 0, 0])  # a flat image stays flat after padding


@pytest.mark.parametrize("bad, field", [
    ({"branches": {"semantic": {"kind": "nope"}}}, "meta.branches.semantic.kind"),
    ({"branches": {"semantic": {"kind": "clip-vitb16-linear", "asset": "clip-vitb16",
                                "head": {"kind": "logistic", "dim": 512, "weight": [0.0] * 3,
                                         "bias": 0.0, "mean": [0.0] * 3, "scale": [1.0] * 3}}}},
     "meta.branches.semantic.head"),
    ({"fusion": {"kind": "logistic", "weights": {"semantic": 1.0}, "bias": 0.0}},
     "meta.fusion.weights.semantic"),
    ({"fusion": {"kind": "logistic", "weights": {"trace": float("nan")}, "bias": 0.0}},
     "meta.fusion.weights.trace"),
])
def test_bad_branch_records_are_refused_naming_the_field(tmp_path, bad, field):
    ckpt = save_tiny_checkpoint(tmp_path / "bad.pt", meta=bad)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")):
        Detector.from_checkpoint(ckpt, device="cpu", threads=1)


def test_missing_weights_fail_clearly(tmp_path, monkeypatch):
    from forensics_app import weights

    monkeypatch.setattr(weights, "third_party_dirs", lambda: [tmp_path / "nowhere"])
    ckpt = save_tiny_checkpoint(tmp_path / "v3.pt", meta=_branch_meta(_head()))
    with pytest.raises(CheckpointError, match="forensics_app.weights fetch"):
        Detector.from_checkpoint(ckpt, device="cpu", threads=1)


def test_scan_rows_carry_each_branch_and_the_fusion(tmp_path, tiny_clip_installed):
    from forensics_app.core.export import jsonl_row, result_to_row
    from forensics_app.core.scan import ScanOptions, scan_paths
    from forensics_app.core.semantic import ClipEncoder

    head = _head()
    ckpt = save_tiny_checkpoint(tmp_path / "v3.pt", meta=_branch_meta(head))
    det = Detector.from_checkpoint(ckpt, device="cpu", threads=1)
    assert set(det.branches) == {"semantic"}
    assert "semantic: CLIP ViT-B/16, ONNX Runtime" in det.device_description
    from forensics_app.core.speed import engine_record

    rec = engine_record(det, ScanOptions())
    assert rec["fusion"]["weights"] == {"trace": 0.5, "semantic": 1.0}
    trace_only = Detector.from_checkpoint(ckpt, device="cpu", threads=1, with_branches=False)
    folder = tmp_path / "imgs"
    files = make_images(folder, 3)
    opts = ScanOptions(provenance=False)
    rows = scan_paths([folder], det, opts)
    base = scan_paths([folder], trace_only, opts)
    enc = ClipEncoder(tiny_clip_installed, threads=1)
    from PIL import Image

    for r, b, f in zip(rows, base, sorted(files), strict=True):
        assert r.ok and set(r.branch_probs) == {"trace", "semantic"}
        assert r.branch_probs["trace"] == pytest.approx(b.prob_fake, abs=1e-6)
        sem_logit = float(head.logits(enc.embed(clip_input(Image.open(f))[None]))[0])
        assert r.branch_probs["semantic"] == pytest.approx(1 / (1 + math.exp(-sem_logit)),
                                                           abs=1e-5)
        t = math.log(b.prob_fake / (1 - b.prob_fake))
        fused = 1 / (1 + math.exp(-(-0.1 + 0.5 * t + 1.0 * sem_logit)))
        assert r.prob_fake == pytest.approx(fused, abs=1e-5)
        row = result_to_row(r)
        assert row["prob_semantic"] == pytest.approx(r.branch_probs["semantic"], abs=1e-6)
        assert jsonl_row(b)["prob_semantic"] is None  # one-branch rows leave it empty
    assert any("semantic" in line for line in describe_branches(det.checkpoint.meta))


def test_a_failing_branch_makes_an_error_row_not_a_crash(tmp_path, tiny_clip_installed):
    from forensics_app.core.scan import ScanOptions, scan_paths

    ckpt = save_tiny_checkpoint(tmp_path / "v3.pt", meta=_branch_meta(_head()))
    det = Detector.from_checkpoint(ckpt, device="cpu", threads=1)

    def boom(inputs):
        raise RuntimeError("broken session")

    det.branches["semantic"].logits = boom
    make_images(tmp_path / "imgs", 2)
    rows = scan_paths([tmp_path / "imgs"], det, ScanOptions(provenance=False))
    assert len(rows) == 2 and all(not r.ok for r in rows)
    assert all("semantic branch could not score" in r.error for r in rows)
    det.branches["semantic"].logits = lambda inputs: np.array([np.nan])
    rows = scan_paths([tmp_path / "imgs"], det, ScanOptions(provenance=False))
    assert all(not r.ok and "non-finite" in r.error for r in rows)  # never a P=1 verdict


def test_rebuild_float_matmuls_equals_dequantised_weights(tmp_path):
    """A dynamic-int8 MatMul graph (ORT's own quantiser) rebuilt as float MatMul computes
    exactly x @ dequantised(W)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from forensics_app.weights import rebuild_float_matmuls

    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"),
                     weight_type=QuantType.QInt8, per_channel=True)
    qmodel = onnx.load(str(tmp_path / "q.onnx"))
    assert any(n.op_type == "MatMulInteger" for n in qmodel.graph.node)
    n = rebuild_float_matmuls(tmp_path / "q.onnx", tmp_path / "r.onnx")
    assert n == 1
    rebuilt = onnx.load(str(tmp_path / "r.onnx"))
    ops = {node.op_type for node in rebuilt.graph.node}
    assert "MatMulInteger" not in ops and "DynamicQuantizeLinear" not in ops
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    wq = next(v for k, v in inits.items() if k.endswith("_quantized"))
    zp = next(v for k, v in inits.items() if k.endswith("_zero_point"))
    sc = next(v for k, v in inits.items() if k.endswith("_scale"))
    w_deq = (wq.astype(np.float32) - zp.astype(np.float32)) * sc.astype(np.float32)
    x = rng.normal(size=(5, 64)).astype(np.float32)
    (y,) = ort.InferenceSession(str(tmp_path / "r.onnx")).run(None, {"x": x})
    assert np.allclose(y, x @ w_deq, atol=1e-4)
    assert np.abs(y - x @ w).max() < 0.1 * np.abs(x @ w).max()  # and close to the float W


def test_installed_clip_tower_finds_an_images_own_rescaled_flip(shared_data):
    """The real rebuilt CLIP graph (skips when setup has not fetched it)."""
    from PIL import Image, ImageOps

    from forensics_app.core.semantic import ClipEncoder
    from forensics_app.weights import MissingWeightsError, find_asset

    try:
        path = find_asset("clip-vitb16")
    except MissingWeightsError:
        pytest.skip("CLIP weights not fetched (python -m forensics_app.weights fetch)")
    files = sorted((shared_data / "train" / "real" / "bsds500").glob("*.jpg"))[:6]
    ims = [Image.open(f).convert("RGB") for f in files]
    enc = ClipEncoder(path, threads=2)
    a = enc.embed_images(ims)
    b = enc.embed_images([ImageOps.mirror(im.resize((im.width * 3 // 4, im.height * 3 // 4)))
                          for im in ims])
    assert ((a @ b.T).argmax(axis=1) == np.arange(len(ims))).all()
