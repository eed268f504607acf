"""Detector v4's semantic branch (``core.clip_blocks``): block features, views, the domain check.

A tiny ONNX graph stands in for CLIP with the same interface as the prepared graph
(``pixel_values [N,3,224,224] -> image_embeds [N,512], block_cls [N,9216]``), so the path
checkpoint metadata -> registry -> ONNX Runtime -> head -> views -> domain check -> row runs
in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from helpers import make_image, make_images, save_tiny_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from forensics_app.core.clip_blocks import (  # noqa: E402
    BlockHead,
    DomainCheck,
    views_of,
)
from forensics_app.core.detector import CheckpointError, Detector  # noqa: E402
from forensics_app.core.results import Verdict  # noqa: E402
from forensics_app.core.semantic import EMBED_DIM, ClipEncoder  # noqa: E402

BLOCK_DIM = 12 * 768


def _tiny_block_clip(path, seed=0):
    """pixel_values -> GAP [N,3] -> @W1 image_embeds [N,512], @W2 block_cls [N,9216]."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(3, EMBED_DIM)).astype(np.float32), "W1"),
             numpy_helper.from_array(rng.normal(size=(3, BLOCK_DIM)).astype(np.float32), "W2"),
             numpy_helper.from_array(np.array([-1, 3], dtype=np.int64), "shape")]
    nodes = [helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
             helper.make_node("Reshape", ["pooled", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W1"], ["image_embeds"]),
             helper.make_node("MatMul", ["flat", "W2"], ["block_cls"])]
    graph = helper.make_graph(
        nodes, "tiny_block_clip",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["N", EMBED_DIM]),
         helper.make_tensor_value_info("block_cls", TensorProto.FLOAT, ["N", BLOCK_DIM])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_block_clip(tmp_path, monkeypatch):
    path = _tiny_block_clip(tmp_path / "tiny_block_clip.onnx")
    monkeypatch.setattr("forensics_app.weights.find_asset", lambda key: path)
    return path


def _head(seed=0) -> BlockHead:
    rng = np.random.default_rng(seed)
    return BlockHead("blocks", (rng.normal(size=BLOCK_DIM) * 0.01).astype(np.float32), 0.1,
                     np.zeros(BLOCK_DIM, np.float32), np.ones(BLOCK_DIM, np.float32))


def _domain(limit: float) -> DomainCheck:
    rng = np.random.default_rng(1)
    comps = np.linalg.qr(rng.normal(size=(EMBED_DIM, 4)))[0].T.astype(np.float32)
    return DomainCheck(np.zeros(EMBED_DIM, np.float32), np.ones(EMBED_DIM, np.float32), comps,
                       np.zeros((2, 4), np.float32), np.ones((2, 4), np.float32),
                       ("web", "sd14"), limit)


def _meta(domain_limit: float | None = None, trace_weight: float = 0.0) -> dict:
    rec = {"kind": "clip-vitb16-blocks", "asset": "clip-vitb16", "head": _head().to_record()}
    if domain_limit is not None:
        rec["domain"] = _domain(domain_limit).to_record()
    return {"branches": {"semantic": rec},
            "fusion": {"kind": "logistic", "weights": {"trace": trace_weight, "semantic": 1.0},
                       "bias": 0.0}}


def test_views_centre_crop_plus_whole_image_for_large_pictures():
    small = make_image((300, 260), 0)
    assert views_of(small).shape == (1, 3, 224, 224)  # whole view ≈ centre crop: one view
    big = make_image((800, 500), 1)
    v = views_of(big)
    assert v.shape == (2, 3, 224, 224)
    assert not np.allclose(v[0], v[1])  # native-scale crop differs from the resized picture


def test_block_branch_scores_every_view_and_averages(tmp_path, tiny_block_clip):
    from forensics_app.core.scan import ScanOptions, scan_paths

    det = Detector.from_checkpoint(save_tiny_checkpoint(tmp_path / "v4.pt", meta=_meta()),
                                   device="cpu", threads=1)
    assert "block features" in det.device_description
    folder = tmp_path / "imgs"
    make_images(folder, 2, size=(400, 360))
    rows = scan_paths([folder], det, ScanOptions(provenance=False))
    enc = ClipEncoder(tiny_block_clip, threads=1)
    head = _head()
    for r in rows:
        assert r.ok and r.domain_caveat is None
        emb, blocks = enc.features(views_of(Image.open(r.path)))
        want = float(np.mean(head.logits(emb, blocks)))
        assert r.branch_probs["semantic"] == pytest.approx(1 / (1 + math.exp(-want)), abs=1e-5)
        # trace weight 0: the verdict rests on the semantic branch alone
        assert r.prob_fake == pytest.approx(r.branch_probs["semantic"], abs=1e-6)


def test_outside_validated_domains_is_inconclusive_with_the_reason(tmp_path, tiny_block_clip):
    from forensics_app.core.export import jsonl_row, result_to_row
    from forensics_app.core.scan import ScanOptions, scan_paths

    det = Detector.from_checkpoint(
        save_tiny_checkpoint(tmp_path / "v4.pt", meta=_meta(domain_limit=1e-6)),
        device="cpu", threads=1)
    make_images(tmp_path / "imgs", 2)
    rows = scan_paths([tmp_path / "imgs"], det, ScanOptions(provenance=False, threshold=0.01))
    for r in rows:
        assert r.ok and r.verdict is Verdict.INCONCLUSIVE  # whatever the score
        assert "outside the detector's validated domains" in r.domain_caveat
        assert "nearest training group" in r.domain_caveat
        # re-judging at another threshold keeps it Inconclusive; the score itself is kept
        again = r.with_threshold(0.99, 0.0)
        assert again.verdict is Verdict.INCONCLUSIVE and again.prob_fake == r.prob_fake
        assert result_to_row(r)["domain_caveat"].startswith("semantic branch: outside")
        assert "Inconclusive whatever the score" in jsonl_row(r)["notes"][0]
    # a generous limit: inside the domains, verdicts come from the score again
    det2 = Detector.from_checkpoint(
        save_tiny_checkpoint(tmp_path / "v4b.pt", meta=_meta(domain_limit=1e9)),
        device="cpu", threads=1)
    rows = scan_paths([tmp_path / "imgs"], det2, ScanOptions(provenance=False, threshold=0.01,
                                                             inconclusive_band=0.0))
    assert all(r.domain_caveat is None and r.verdict is Verdict.AI_GENERATED for r in rows)


def test_domain_caveat_survives_a_case(tmp_path, tiny_block_clip):
    from forensics_app.core.case_records import record_to_result, result_to_record
    from forensics_app.core.scan import ScanOptions, scan_paths

    det = Detector.from_checkpoint(
        save_tiny_checkpoint(tmp_path / "v4.pt", meta=_meta(domain_limit=1e-6)),
        device="cpu", threads=1)
    make_images(tmp_path / "imgs", 1)
    (r,) = scan_paths([tmp_path / "imgs"], det, ScanOptions(provenance=False))
    back = record_to_result(result_to_record(r))
    assert back.domain_caveat == r.domain_caveat and back.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("field, bad", [
    ("head", {"kind": "logistic", "features": "blocks", "weight": [0.0] * 3, "bias": 0.0,
              "mean": [0.0] * 3, "scale": [1.0] * 3}),
    ("head", {"kind": "logistic", "features": "pixels"}),
    ("domain", {"names": ["a"], "components": [[0.0] * 7], "centres": [[0.0]],
                "inv_var": [[1.0]], "mean": [0.0] * EMBED_DIM, "scale": [1.0] * EMBED_DIM,
                "limit": 1.0}),
])
def test_bad_block_records_are_refused_naming_the_field(tmp_path, field, bad):
    meta = _meta(domain_limit=1.0)
    meta["branches"]["semantic"][field] = bad
    ckpt = save_tiny_checkpoint(tmp_path / "bad.pt", meta=meta)
    with pytest.raises(CheckpointError, match=rf"meta\.branches\.semantic\.{field}"):
        Detector.from_checkpoint(ckpt, device="cpu", threads=1)


def test_a_clip_graph_without_block_outputs_is_refused_clearly(tmp_path, monkeypatch):
    from test_branches import _tiny_clip

    path = _tiny_clip(tmp_path / "old.onnx")
    monkeypatch.setattr("forensics_app.weights.find_asset", lambda key: path)
    ckpt = save_tiny_checkpoint(tmp_path / "v4.pt", meta=_meta())
    with pytest.raises(CheckpointError, match="weights fetch"):
        Detector.from_checkpoint(ckpt, device="cpu", threads=1)


def test_block_cls_output_is_the_cls_token_of_every_block(tmp_path):
    """``onnx_rewrite.add_block_cls_output`` on a graph whose blocks are named like CLIP's."""
    from forensics_app.onnx_rewrite import BLOCK_CLS_OUTPUT, add_block_cls_output

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(12):
        b = numpy_helper.from_array(rng.normal(size=(768,)).astype(np.float32), f"b{i}")
        inits.append(b)
        out = f"h{i}"
        nodes.append(helper.make_node("Add", [prev, f"b{i}"], [out],
                                      name=f"/vision_model/encoder/layers.{i}/Add_1"))
        prev = out
    graph = helper.make_graph(
        nodes, "blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 768])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", 5, 768])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    add_block_cls_output(model)
    add_block_cls_output(model)  # idempotent
    onnx.checker.check_model(model)
    x = rng.normal(size=(2, 5, 768)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString())
    (cls,) = sess.run([BLOCK_CLS_OUTPUT], {"x": x})
    assert cls.shape == (2, 12 * 768)
    h = x.copy()
    for i in range(12):
        h = h + numpy_helper.to_array(inits[i])
        assert np.allclose(cls[:, i * 768:(i + 1) * 768], h[:, 0], atol=1e-5)
