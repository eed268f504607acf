"""Run an ncnn ``.param``/``.bin`` network as a PyTorch module (inference only).

Supports the layer types that Real-ESRGAN's ncnn exports use: Input, Split, Convolution
(with fused ReLU / LeakyReLU), PReLU, Concat, Eltwise, BinaryOp (add/sub/mul), Interp
(nearest / bilinear / bicubic) and PixelShuffle. Weights are read in ncnn's order: a
convolution's weights carry a 4-byte storage flag (fp32 or fp16), biases and PReLU slopes are
raw fp32. Verified against the ncnn runtime in tests/training/test_fakes.py.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_FP16_FLAG = 0x01306B47


@dataclass
class _Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, object]


def _parse_value(v: str) -> float | int:
    return float(v) if any(c in v for c in ".eE") else int(v)


def parse_param(text: str) -> list[_Layer]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines[0].strip() != "7767517":
        raise ValueError("not an ncnn .param file (bad magic)")
    layers = []
    for ln in lines[2:]:
        parts = ln.split()
        ltype, name, nb, nt = parts[0], parts[1], int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + nb]
        tops = parts[4 + nb : 4 + nb + nt]
        params: dict[int, object] = {}
        for kv in parts[4 + nb + nt :]:
            k, v = kv.split("=", 1)
            key = int(k)
            if key <= -23300:  # array: count,values...
                vals = v.split(",")
                params[-(key + 23300)] = [_parse_value(x) for x in vals[1:]]
            else:
                params[key] = _parse_value(v)
        layers.append(_Layer(ltype, name, bottoms, tops, params))
    return layers


class _BinReader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def raw_f32(self, n: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype="<f4", count=n, offset=self.pos)
        self.pos += 4 * n
        return arr.copy()

    def flagged(self, n: int) -> np.ndarray:
        flag = int(np.frombuffer(self.data, dtype="<u4", count=1, offset=self.pos)[0])
        self.pos += 4
        if flag == _FP16_FLAG:
            arr = np.frombuffer(self.data, dtype="<f2", count=n, offset=self.pos)
            self.pos += 2 * n
            self.pos += (-self.pos) % 4  # fp16 blocks are padded to 4 bytes
            return arr.astype(np.float32)
        if flag == 0:
            return self.raw_f32(n)
        raise ValueError(f"unsupported ncnn weight storage flag {flag:#x}")


class NcnnGraph(nn.Module):
    """An ncnn network executed layer by layer with PyTorch ops (NCHW, float32)."""

    def __init__(self, param_path: Path | str, bin_path: Path | str):
        super().__init__()
        self.layers = parse_param(Path(param_path).read_text())
        reader = _BinReader(Path(bin_path).read_bytes())
        self.weights = nn.ParameterDict()
        for layer in self.layers:
            p = layer.params
            if layer.type == "Convolution":
                cout, k = int(p[0]), int(p[1])
                kh = int(p.get(11, k))
                n = int(p[6])
                cin = n // (cout * k * kh)
                w = reader.flagged(n).reshape(cout, cin, kh, k)
                self.weights[layer.name + "_w"] = nn.Parameter(torch.from_numpy(w), False)
                if int(p.get(5, 0)):
                    b = reader.raw_f32(cout)
                    self.weights[layer.name + "_b"] = nn.Parameter(torch.from_numpy(b), False)
            elif layer.type == "PReLU":
                s = reader.raw_f32(int(p.get(0, 1)))
                self.weights[layer.name + "_s"] = nn.Parameter(torch.from_numpy(s), False)
            elif layer.type not in ("Input", "Split", "Concat", "Eltwise", "BinaryOp",
                                    "Interp", "PixelShuffle"):
                raise ValueError(f"ncnn layer type {layer.type!r} is not supported")
        if reader.pos != len(reader.data):
            raise ValueError(f"weights file size mismatch: read {reader.pos} of {len(reader.data)}")

    @staticmethod
    def _activate(x: torch.Tensor, p: dict) -> torch.Tensor:
        act = int(p.get(9, 0))
        if act == 0:
            return x
        if act == 1:
            return F.relu(x)
        if act == 2:
            slope = p.get(10, [0.0])
            return F.leaky_relu(x, float(slope[0]))
        raise ValueError(f"unsupported fused activation {act}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blobs: dict[str, torch.Tensor] = {}
        out = None
        for layer in self.layers:
            p = layer.params
            ins = [blobs[b] for b in layer.bottoms]
            t = layer.type
            if t == "Input":
                out = x
            elif t == "Split":
                for top in layer.tops:
                    blobs[top] = ins[0]
                continue
            elif t == "Convolution":
                out = F.conv2d(
                    ins[0], self.weights[layer.name + "_w"],
                    self.weights[layer.name + "_b"] if layer.name + "_b" in self.weights else None,
                    stride=int(p.get(3, 1)), padding=int(p.get(4, 0)), dilation=int(p.get(2, 1)),
                )
                out = self._activate(out, p)
            elif t == "PReLU":
                out = F.prelu(ins[0], self.weights[layer.name + "_s"])
            elif t == "Concat":
                out = torch.cat(ins, dim=1)
            elif t == "Eltwise":
                op, coeffs = int(p.get(0, 1)), p.get(1) or [1.0] * len(ins)
                if op != 1:
                    raise ValueError("only Eltwise sum is supported")
                out = sum(c * v for c, v in zip(coeffs, ins, strict=True))
            elif t == "BinaryOp":
                op = int(p.get(0, 0))
                a, b = ins if len(ins) == 2 else (ins[0], float(p.get(2, 0.0)))
                out = {0: operator.add, 1: operator.sub, 2: operator.mul}[op](a, b)
            elif t == "Interp":
                mode = {1: "nearest", 2: "bilinear", 3: "bicubic"}[int(p.get(0, 1))]
                hs, ws = float(p.get(1, 1.0)), float(p.get(2, 1.0))
                size = (int(ins[0].shape[-2] * hs), int(ins[0].shape[-1] * ws))
                kw = {} if mode == "nearest" else {"align_corners": False}
                out = F.interpolate(ins[0], size=size, mode=mode, **kw)
            elif t == "PixelShuffle":
                out = F.pixel_shuffle(ins[0], int(p[0]))
            blobs[layer.tops[0]] = out
        return out
