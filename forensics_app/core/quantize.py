"""Static int8 quantisation of the detector's convolution trunk (PyTorch's ``torch.ao`` FX path).

``precision="int8"`` (a :class:`~forensics_app.core.speed.SpeedLevers` setting, off unless
asked for) runs the stem and the residual stages as int8 convolutions -- per-channel weights,
per-tensor activations, the x86 backend (fbgemm/oneDNN) or QNNPACK on ARM -- while the NPR
input transform, the average pool and the linear head stay float32, so the logit keeps its
float range and the checkpoint's calibration applies unchanged.

Activation ranges never depend on the evidence being scanned. A checkpoint exported by
the training package carries them in ``meta["int8_calibration"]``: the scale and zero point of
every activation observer, measured at export on held-in training tiles of both classes
(:func:`calibrate_int8`). A checkpoint without them (or made for another quantized engine) is
calibrated at load on a fixed, seeded set of photo-like tiles (a smooth colour field with
per-pixel sensor noise, one JPEG round trip at quality 90) prepared with the app's one
preprocessing preset -- a weaker stand-in for photos, so scores move more. Either way the same
checkpoint and torch build give the same int8 network on every run. What int8 does to accuracy is measured on dev_test
(the training package's ``evaluate --precision int8``) and recorded in the model card.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

import numpy as np
import torch
import torch.fx
from PIL import Image
from torch import nn

from forensics_app.core.architectures import ForensicResNet, npr_residual
from forensics_app.core.preprocess import PreprocessConfig, prepare_image

CALIBRATION_SEED = 20261201
CALIBRATION_TILES = 12  # tiles of 512^2, from three 1024^2 photo-like images


def quantized_engine() -> str | None:
    """The int8 backend this torch build offers for the CPU, or None."""
    engines = torch.backends.quantized.supported_engines
    for name in ("x86", "fbgemm", "qnnpack"):
        if name in engines:
            return name
    return None


def _photo_like(size: int, rng: np.random.Generator) -> Image.Image:
    low = rng.integers(30, 226, (size // 48 + 2, size // 48 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
    noisy = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (size, size, 1)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    buf.seek(0)
    return Image.open(buf, formats=("JPEG",)).convert("RGB")


def calibration_batch(n_tiles: int = CALIBRATION_TILES) -> torch.Tensor:
    """(n, 3, 512, 512) normalised tiles, identical on every call."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    cfg = PreprocessConfig(mode="tiles")
    tiles: list[torch.Tensor] = []
    while len(tiles) < n_tiles:
        tiles += prepare_image(_photo_like(1024, rng), cfg).tensors
    return torch.stack(tiles[:n_tiles])


class Int8Detector(nn.Module):
    """Float NPR transform -> int8 trunk -> float pool and head; the forward of a scan."""

    def __init__(self, model: ForensicResNet, trunk: nn.Module):
        super().__init__()
        self.input_transform = model.input_transform
        self.npr_gain = model.npr_gain
        self.trunk, self.avgpool, self.fc = trunk, model.avgpool, model.fc

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x, self.npr_gain) if self.input_transform == "npr" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk(self.pre(x).contiguous())
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _engine() -> str:
    engine = quantized_engine()
    if engine is None:
        raise ValueError("int8 was requested but this torch build has no quantized CPU engine "
                         "(x86, fbgemm or qnnpack) -- use fp32")
    torch.backends.quantized.engine = engine
    return engine


def _prepared(model: ForensicResNet, engine: str) -> tuple[Int8Detector, nn.Module]:
    """(wrapper around a copy of ``model``, its trunk with observers inserted)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    if model.training:
        raise ValueError("int8 quantisation needs a model in eval mode")
    src = copy.deepcopy(model).float().cpu().to(memory_format=torch.contiguous_format)
    trunk = _without_identities(nn.Sequential(src.conv1, src.bn1, src.relu, src.maxpool,
                                              src.layer1, src.layer2, src.layer3, src.layer4))
    wrapper = Int8Detector(src, trunk)
    example = torch.zeros(1, 3, 64, 64)
    return wrapper, prepare_fx(trunk, get_default_qconfig_mapping(engine), (example,))


def _without_identities(trunk: nn.Module) -> torch.fx.GraphModule:
    """``trunk`` traced, with its ``Identity`` calls removed (the BatchNorms folded into their
    convolutions, and the cut stages): a convolution then meets its ReLU directly, so the
    two fuse into one int8 op instead of an int8 convolution, a copy and a separate ReLU
    (2x the trunk's time at 512^2, measured)."""
    gm = torch.fx.symbolic_trace(trunk)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.Identity):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


@contextlib.contextmanager
def _quiet_torch_ao():
    """The setting every torch.ao call here runs in: its deprecation notices silenced (not
    the analyst's concern), and FX tracing without a stack trace per node -- recording them
    imports torch._dynamo, inductor, sympy and networkx (~170 MiB of resident memory and
    seconds of start-up in a scan that never compiles anything)."""
    import torch.fx.config as fx_config

    before = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        fx_config.do_not_emit_stack_traces = before


def _observers(prepared: nn.Module) -> dict[str, nn.Module]:
    return {name: mod for name, mod in prepared.named_children()
            if name.startswith("activation_post_process")}


def _observe(wrapper: Int8Detector, prepared: nn.Module, tiles: torch.Tensor) -> None:
    with torch.inference_mode():
        for i in range(0, len(tiles), 4):
            prepared(wrapper.pre(tiles[i:i + 4]))


def calibrate_int8(model: ForensicResNet, tiles: torch.Tensor, source: str) -> dict:
    """Activation scales and zero points of ``model`` on ``tiles``, as plain data for a
    checkpoint's ``meta["int8_calibration"]``."""
    engine = _engine()
    with _quiet_torch_ao():
        wrapper, prepared = _prepared(model, engine)
        _observe(wrapper, prepared, tiles)
        observers = {}
        for name, obs in _observers(prepared).items():
            scale, zero_point = obs.calculate_qparams()
            observers[name] = [float(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0]),
                               int(obs.quant_min), int(obs.quant_max)]
    return {"engine": engine, "torch": torch.__version__.split("+")[0], "tiles": int(len(tiles)),
            "source": source, "observers": observers}


def quantize_int8(model: ForensicResNet, calibration: torch.Tensor | None = None,
                  stored: dict | None = None) -> tuple[Int8Detector, str]:
    """An int8 copy of ``model`` (eval mode, float32, CPU) and where its activation ranges came
    from; ``model`` itself is left as it is. ``stored``: a checkpoint's ``int8_calibration``,
    used when it was made for this engine and this network; else ``calibration`` tiles (default:
    the seeded photo-like set)."""
    from torch.ao.quantization.observer import FixedQParamsObserver
    from torch.ao.quantization.quantize_fx import convert_fx

    engine = _engine()
    with _quiet_torch_ao():
        wrapper, prepared = _prepared(model, engine)
        observers = _observers(prepared)
        saved = (stored or {}).get("observers") or {}
        if stored and stored.get("engine") == engine and set(saved) == set(observers):
            for name, obs in observers.items():
                scale, zero_point, qmin, qmax = saved[name]
                setattr(prepared, name, FixedQParamsObserver(
                    scale, zero_point, dtype=obs.dtype, quant_min=qmin, quant_max=qmax))
            source = f"checkpoint ({stored.get('source', 'training tiles')})"
        else:
            tiles = calibration_batch() if calibration is None else calibration
            _observe(wrapper, prepared, tiles)
            source = (f"{len(tiles)} seeded photo-like tiles" if calibration is None
                      else f"{len(tiles)} given tiles")
            if stored:
                source += f" (the checkpoint's ranges are for {stored.get('engine')!r})"
        wrapper.trunk = convert_fx(prepared)
    return wrapper.eval(), source
