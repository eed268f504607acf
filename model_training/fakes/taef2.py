"""TAEF2: the tiny auto-encoder of the FLUX.2 VAE latent space (madebyollin/taesd, MIT).

Written from the architecture description shipped with the weights
(``../shared/data/models/taef2/README.md``); the weights' key names and shapes are the
contract, checked by :func:`load_taef2` (``strict=True``, ``weights_only=True``).

A real photo encoded to 32 x H/8 x W/8 latents and decoded again is a content-aligned fake
carrying a latent-diffusion decoder's up-sampling traces (Rajan et al., ICLR 2025, "aligned
datasets"). Images are in [0, 1]; latents are used as-is (no scale, no shift).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

LATENT_CHANNELS = 32
FILES = {"encoder": "taef2_encoder.pth", "decoder": "taef2_decoder.pth"}
# SHA-256 of the MIT weights (models/taef2/README.md); a different file is refused.
SHA256 = {
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
}
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "models" / "taef2"


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of the latent to about +-3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3x3 convolutions with ReLU between, identity/1x1 skip, ReLU; optional global
    branch (1x1 widen x4, GroupNorm(4), ReLU, 1x1 back) added before the block (FLUX.2)."""

    def __init__(self, n_in: int, n_out: int, global_branch: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(),
                                  _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if global_branch:
            wide = n_in * 4
            self.pool = nn.Sequential(nn.Conv2d(n_in, wide, 1, bias=False), nn.GroupNorm(4, wide),
                                      nn.ReLU(), nn.Conv2d(wide, n_in, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def build_encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    def stage(gb: bool = False) -> list[nn.Module]:
        return [_conv(64, 64, stride=2, bias=False), *[Block(64, 64, gb) for _ in range(3)]]
    return nn.Sequential(_conv(3, 64), Block(64, 64), *stage(), *stage(), *stage(True),
                         _conv(64, latent_channels))


def build_decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    def stage(gb: bool = False) -> list[nn.Module]:
        return [*[Block(64, 64, gb) for _ in range(3)], nn.Upsample(scale_factor=2),
                _conv(64, 64, bias=False)]
    return nn.Sequential(Clamp(), _conv(latent_channels, 64), nn.ReLU(), *stage(True), *stage(),
                         *stage(), Block(64, 64), _conv(64, 3))


class TAEF2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = build_encoder()
        self.decoder = build_decoder()

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1], H and W multiples of 8 -> decoded image in [0, 1]."""
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"TAEF2 needs sides that are multiples of 8, got {tuple(x.shape)}")
        return self.decoder(self.encoder(x)).clamp(0, 1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_taef2(weights_dir: Path | str | None = None, check_hash: bool = True) -> TAEF2:
    """Load the shared MIT weights (float32 on CPU); fails clearly when they are absent."""
    root = Path(weights_dir) if weights_dir else DEFAULT_DIR
    model = TAEF2()
    for part, name in FILES.items():
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(
                f"TAEF2 weights not found: {path} (expected ../shared/data/models/taef2; "
                "nothing is downloaded)")
        if check_hash and name in SHA256 and _sha256(path) != SHA256[name]:
            raise ValueError(f"{path}: SHA-256 differs from the published TAEF2 weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        getattr(model, part).load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def reconstruct_image(model: TAEF2, img: Image.Image, tile: int = 512) -> Image.Image:
    """Encode + decode a PIL image at its native pixel grid (sides must be multiples of 8).

    Large images are processed in tiles of ``tile`` px (multiples of 8) so memory stays small;
    the model is fully convolutional, so tiles only differ from a whole-image pass near seams.
    """
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    h, w = arr.shape[:2]
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]
    if h <= tile and w <= tile:
        y = model.reconstruct(x)
    else:
        y = torch.empty_like(x)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                y[..., top:top + tile, left:left + tile] = model.reconstruct(
                    x[..., top:top + tile, left:left + tile])
    out = (y[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def heldout_psnr(root: Path | str, pairs: list[dict]) -> dict[str, float]:
    """Reconstruction PSNR (dB) of the held-out photos' TAEF2 fakes: median, 10th/90th pct."""
    vals = []
    for p in pairs:
        if p["generator"] != "taef2":
            continue
        with Image.open(Path(root) / p["real"]) as r, Image.open(Path(root) / p["fake"]) as f:
            vals.append(psnr(r.convert("RGB"), f.convert("RGB")))
    if not vals:
        return {}
    v = np.array(vals)
    return {"n": int(v.size), "median_db": round(float(np.median(v)), 2),
            "p10_db": round(float(np.percentile(v, 10)), 2),
            "p90_db": round(float(np.percentile(v, 90)), 2)}
