"""Rewrites of the packaged CLIP ONNX graph, shared by the float (``forensics_app.weights``)
and the 8-bit weight-only (``forensics_app.weight_quant``) preparations: the dynamic-int8
``MatMulInteger`` blocks replaced one way or the other, and the ``block_cls`` output (the CLS
token after every encoder block) added. Run at setup, never while scanning.
"""

from __future__ import annotations

from pathlib import Path

BLOCK_CLS_OUTPUT = "block_cls"


def rewrite_int8_matmuls(src: Path, dst: Path, replace, block_cls: bool = False,
                         opsets: tuple[tuple[str, int], ...] = ()) -> int:
    """Rewrite every ``DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scale)`` block of
    ``src`` through ``replace(name, x_float, out, w_q, zp, scale, base)`` — which returns the
    new node and its initialisers — drop what nobody reads any more, optionally add the
    ``block_cls`` output, and save ``dst`` with its weights in a memory-mappable side file
    (``dst.data``). Returns how many blocks were rewritten. ``opsets``: extra (domain,
    version) the new nodes need."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

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
    for n in g.node:
        if n.op_type != "MatMulInteger":
            continue
        a_q, b_q, _a_zp, b_zp = n.input
        dql = producer[a_q]
        if dql.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"unexpected producer {dql.op_type} for {a_q}")
        (cast,) = consumers[n.output[0]]
        (mul,) = consumers[cast.output[0]]
        scale_name = next(i for i in mul.input if i != cast.output[0])
        w_scale_name = next(i for i in producer[scale_name].input if i in inits)
        node, made = replace(n.name, dql.input[0], mul.output[0],
                             numpy_helper.to_array(inits[b_q]),
                             numpy_helper.to_array(inits[b_zp]),
                             numpy_helper.to_array(inits[w_scale_name]).astype(np.float32),
                             b_q.replace("_quantized", ""))
        new_inits += made
        new_nodes[idx[id(n)]] = node
        drop.update({idx[id(cast)], idx[id(mul)]})

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
    for domain, version in opsets:
        if not any(op.domain == domain for op in model.opset_import):
            model.opset_import.append(helper.make_opsetid(domain, version))
    if block_cls:
        add_block_cls_output(model)
    used = {i for nd in g.node for i in nd.input}
    keep_inits = [i for i in list(g.initializer) + new_inits if i.name in used]
    g.ClearField("initializer")
    g.initializer.extend(keep_inits)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Weights in a side file next to the graph: ONNX Runtime memory-maps external data, so the
    # 330 MiB of float weights are file-backed pages instead of a second private copy
    # (peak RSS at load 411 vs 611 MiB, benchmarks/semantic_branch.py).
    data = dst.with_name(dst.name + ".data")
    tmp = dst.with_name(dst.name + ".tmp")
    for p in (tmp, data):
        p.unlink(missing_ok=True)
    onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
              location=data.name, size_threshold=1024)
    data.chmod(0o644)
    tmp.replace(dst)
    return len(new_nodes)


def add_block_cls_output(model, n_blocks: int = 12) -> None:
    """Add the output ``block_cls`` ``[N, 12*768]``: the CLS token after each of the 12
    encoder blocks (the residual stream ``/vision_model/encoder/layers.{i}/Add_1``), computed
    in the same forward pass as ``image_embeds`` (RINE, Koutlis & Papadopoulos, ECCV 2024;
    ``../shared/DETECTION_NOTES.md`` pilot 8). Costs one Gather per block and a Concat."""
    from onnx import TensorProto, helper

    g = model.graph
    if any(o.name == BLOCK_CLS_OUTPUT for o in g.output):
        return
    by_name = {n.name: n for n in g.node}
    zero = helper.make_tensor("block_cls_index", TensorProto.INT64, [], [0])
    g.initializer.append(zero)
    cls_names = []
    for i in range(n_blocks):
        node = by_name.get(f"/vision_model/encoder/layers.{i}/Add_1")
        if node is None:
            raise ValueError(f"CLIP graph: encoder block {i} not found")
        out = f"block_cls_{i}"
        g.node.append(helper.make_node("Gather", [node.output[0], zero.name], [out], axis=1,
                                       name=f"block_cls_gather_{i}"))
        cls_names.append(out)
    g.node.append(helper.make_node("Concat", cls_names, [BLOCK_CLS_OUTPUT], axis=1,
                                   name="block_cls_concat"))
    g.output.append(helper.make_tensor_value_info(BLOCK_CLS_OUTPUT, TensorProto.FLOAT,
                                                  ["batch", n_blocks * 768]))
