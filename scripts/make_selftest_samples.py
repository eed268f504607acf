"""Write the self-test's sample images and their expected scores (run at model export time).

    .venv/bin/python scripts/make_selftest_samples.py                 # bundled model
    .venv/bin/python scripts/make_selftest_samples.py --model X.pt --out DIR

The images are generated here, procedurally and deterministically (no photo and nothing from
the training data): smooth gradients with sensor-like noise, a JPEG, a grey-scale chirp, an
RGBA image with transparency, a palette GIF, a lossless WebP and one image small enough to
be up-scaled. Together they exercise every decode and preprocessing path a frozen bundle
could lose (JPEG/PNG/GIF/WebP codecs, mode conversions, the up-scaling branch). They are
then scored on the CPU through ``forensics_app.core`` (``selftest.write_expected_scores``:
Detector + scan_files) and ``expected_scores.json`` records the scores, each sample's
SHA-256 and the model's SHA-256. Re-run it whenever the bundled checkpoint changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.paths import bundled_model_path, samples_dir  # noqa: E402
from forensics_app.selftest import DEFAULT_TOLERANCE, write_expected_scores  # noqa: E402


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y / max(1, h - 1), x / max(1, w - 1)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def gradient_noise(rng: np.random.Generator) -> Image.Image:
    y, x = _grid(192, 256)
    rgb = np.stack([255 * x, 255 * y, 255 * (1 - x) * (1 - y) + 60 * np.sin(9 * x * y)], -1)
    return Image.fromarray(_u8(rgb + rng.normal(0, 6, rgb.shape)))


def checker_jpeg(rng: np.random.Generator) -> Image.Image:
    y, x = _grid(224, 224)
    cells = ((np.floor(x * 7) + np.floor(y * 7)) % 2)[..., None]
    colours = np.array([[200, 60, 40], [40, 120, 210]], dtype=np.float64)
    rgb = colours[0] * cells + colours[1] * (1 - cells)
    return Image.fromarray(_u8(rgb + rng.normal(0, 3, rgb.shape)))


def chirp_gray(rng: np.random.Generator) -> Image.Image:
    y, x = _grid(200, 200)
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
    return Image.fromarray(_u8(127.5 + 110 * np.cos(180 * r2) + rng.normal(0, 2, r2.shape)), "L")


def blobs_rgba(rng: np.random.Generator) -> Image.Image:
    h, w = 240, 160
    y, x = _grid(h, w)
    rgb = np.full((h, w, 3), 30.0)
    alpha = np.zeros((h, w))
    for _ in range(6):
        cy, cx, s = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        rgb += blob[..., None] * rng.uniform(60, 200, 3)
        alpha = np.maximum(alpha, blob)
    return Image.fromarray(np.dstack([_u8(rgb), _u8(255 * alpha)]), "RGBA")


def stripes_palette(rng: np.random.Generator) -> Image.Image:
    y, x = _grid(128, 128)
    rgb = np.stack([128 + 127 * np.sin(20 * x + 3 * y), 128 + 127 * np.sin(14 * y),
                    128 + 127 * np.cos(11 * (x + y))], -1)
    img = Image.fromarray(_u8(rgb + rng.normal(0, 4, rgb.shape)))
    return img.quantize(colors=32, dither=Image.Dither.NONE)


def value_noise(rng: np.random.Generator) -> Image.Image:
    size = 192
    acc = np.zeros((size, size, 3))
    for octave, amp in ((4, 120.0), (12, 60.0), (48, 30.0)):
        coarse = Image.fromarray(_u8(rng.uniform(0, 255, (octave, octave, 3))))
        acc += amp / 255 * np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC),
                                      dtype=np.float64)
    return Image.fromarray(_u8(acc / 210 * 255))


def tiny_noise(rng: np.random.Generator) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


# file name -> (maker, save options); the order of this table fixes the random draws.
SAMPLES = {
    "gradient_noise.png": (gradient_noise, {"optimize": False}),
    "checker_q90.jpg": (checker_jpeg, {"quality": 90, "subsampling": 0}),
    "chirp_gray.png": (chirp_gray, {"optimize": False}),
    "blobs_alpha.png": (blobs_rgba, {"optimize": False}),
    "stripes_palette.gif": (stripes_palette, {}),
    "value_noise.webp": (value_noise, {"lossless": True}),
    "tiny_48x40.png": (tiny_noise, {"optimize": False}),
}


def make_sample_images(folder: Path, seed: int = 20200601) -> list[Path]:
    """Write the sample images into ``folder`` (same bytes every run with the same Pillow)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (maker, options)) in enumerate(SAMPLES.items()):
        path = folder / name
        maker(np.random.default_rng(seed + i)).save(path, **options)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None,
                   help=f"checkpoint to score with (default: {bundled_model_path()})")
    p.add_argument("--out", type=Path, default=None,
                   help=f"sample folder (default: {samples_dir()})")
    p.add_argument("--score-only", action="store_true",
                   help="keep the images already in the folder; only rewrite the scores")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest |score difference| the self-test accepts")
    args = p.parse_args(argv)
    model = args.model or bundled_model_path()
    out = args.out or samples_dir()
    if not model.is_file():
        print(f"make_selftest_samples: no checkpoint at {model}", file=sys.stderr)
        return 2
    if not args.score_only:
        make_sample_images(out)
    expected = write_expected_scores(model, out, tolerance=args.tolerance)

    import json

    data = json.loads(expected.read_text(encoding="utf-8"))
    for s in data["samples"]:
        print(f"{s['prob_fake']:.6f}  {s['verdict']:<13} {s['file']}")
    print(f"wrote {expected} ({len(data['samples'])} samples, model {data['model_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
