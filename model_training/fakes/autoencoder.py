"""Small convolutional auto-encoders that simulate CNN-generator artifacts (AutoGAN idea).

Zhang, Karaman & Chang (WIFS 2019) showed that the up-sampling stage of a generator leaves the
spectral fingerprints a detector learns, and that an auto-encoder with GAN-style up-sampling,
trained only on real images, reproduces them. Each auto-encoder here down-samples by
``factor`` (2, 4 or 8) with strided convolutions and up-samples with one of the layers real
generators use: transposed convolution (DCGAN/ProGAN-era), nearest + conv (VQGAN and the
latent-diffusion VAE decoders), bilinear + conv, or pixel shuffle (ESRGAN-family).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

UPSAMPLERS = ("transposed", "nearest", "bilinear", "pixelshuffle")


def _up(kind: str, cin: int, cout: int) -> nn.Module:
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)
    if kind in ("nearest", "bilinear"):
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=kind),
                             nn.Conv2d(cin, cout, 3, padding=1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown up-sampling {kind!r}; choose from {UPSAMPLERS}")


class ConvAutoencoder(nn.Module):
    def __init__(self, upsample: str = "nearest", factor: int = 4, width: int = 32):
        super().__init__()
        levels = int(math.log2(factor))
        if 2**levels != factor or levels < 1:
            raise ValueError("factor must be 2, 4 or 8")
        self.factor = factor
        chans = [min(width * 2**i, 128) for i in range(levels + 1)]
        enc: list[nn.Module] = [nn.Conv2d(3, chans[0], 3, padding=1), nn.ReLU(inplace=True)]
        for i in range(levels):
            enc += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.ReLU(True),
                    nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1), nn.ReLU(True)]
        dec: list[nn.Module] = []
        for i in reversed(range(levels)):
            dec += [_up(upsample, chans[i + 1], chans[i]), nn.ReLU(True),
                    nn.Conv2d(chans[i], chans[i], 3, padding=1), nn.ReLU(True)]
        dec += [nn.Conv2d(chans[0], 3, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The decoder predicts detail on top of a smooth low-pass of the input (area-shrunk by
        # ``factor``, bilinear back): colour and layout come through exactly, while every
        # fine detail of the output is synthesised by the learned up-sampling path -- the part
        # of a generator that leaves its fingerprint.
        low = F.interpolate(F.avg_pool2d(x, self.factor), size=x.shape[-2:], mode="bilinear",
                            align_corners=False)
        return low + self.decoder(self.encoder(x))


def _random_crops(images: Sequence[np.ndarray], n: int, size: int, rng: random.Random) -> torch.Tensor:
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        arr = images[rng.randrange(len(images))]
        h, w = arr.shape[:2]
        y, x = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        out[i] = arr[y : y + size, x : x + size]
    return torch.from_numpy(out).permute(0, 3, 1, 2).div_(255.0)


def gradient_l1(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    dy = (y[..., 1:, :] - y[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])
    dx = (y[..., :, 1:] - y[..., :, :-1]) - (x[..., :, 1:] - x[..., :, :-1])
    return dy.abs().mean() + dx.abs().mean()


def train_autoencoder(
    images: Sequence[np.ndarray], upsample: str, factor: int, steps: int = 400,
    batch: int = 16, crop: int = 64, lr: float = 2e-3, seed: int = 0, log=None,
    grad_weight: float = 1.0,
) -> ConvAutoencoder:
    """Fit an auto-encoder to random crops of real photos.

    Loss: L1 on pixels plus L1 on horizontal/vertical differences; the second term pushes
    the decoder to synthesise edges and texture instead of a blur.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = ConvAutoencoder(upsample, factor)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        x = _random_crops(images, batch, crop, rng)
        y = model(x)
        loss = F.l1_loss(y, x) + grad_weight * gradient_l1(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step + 1) % 100 == 0:
            log(f"  AE {upsample}/x{factor} step {step + 1}/{steps} L1 {loss.item():.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
    return model.eval()


@torch.inference_mode()
def reconstruct(model: nn.Module, img: Image.Image, multiple: int) -> Image.Image:
    """Pass a whole image through a generator; reflect-pad to ``multiple`` and crop back."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    y = model(x)[..., :h, :w].clamp(0, 1)
    out = (y[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(out)


def save_autoencoder(model: ConvAutoencoder, path: Path, upsample: str) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"upsample": upsample, "factor": model.factor, "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def load_autoencoder(path: Path) -> ConvAutoencoder:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    model = ConvAutoencoder(obj["upsample"], int(obj["factor"]))
    model.load_state_dict(obj["state_dict"])
    return model.eval()
