"""Second witnesses on cases built from real photos: detection rate, false alarms, cost.

Builds its own manipulated cases from ``../shared/data`` reals (nothing is written: every
case is bytes in memory) and runs every witness on each:

* ``original``   the untouched file (false alarms of every witness);
* ``own_thumb``  the photo re-saved at quality 95 with its own EXIF thumbnail (the
                 thumbnail witness's false alarms);
* ``copy_move``  a 96x96 textured region pasted elsewhere in the same photo, saved at 92;
* ``splice``     a 96x96 region of another photo pasted in, saved at 92;
* ``double_jpeg`` decoded, saved at a lower quality (60/70/80), then at 90 or 95;
* ``swapped_thumb`` re-saved at 95 with the EXIF thumbnail of another photo.

Prints, per witness and case, the fraction of files flagged (``detected``), and the mean
time per image; then each witness's time on one 12 MP photo (a real one upscaled).
Deterministic (seeded); machine load changes only the times.

    nice -n 10 python benchmarks/witnesses.py --n 40
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forensics_app.core.witnesses import WITNESSES, Subject, run_witnesses  # noqa: E402
from forensics_app.core.witnesses.thumbnail import exif_with_thumbnail  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_DIRS = ("train/real/imagenet_sample", "train/real/bsds500")
CASES = ("original", "own_thumb", "copy_move", "splice", "double_jpeg", "swapped_thumb")
PATCH = 96


def jpeg_bytes(im: Image.Image, quality: int, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def thumb_exif(im: Image.Image) -> bytes:
    t = im.copy()
    t.thumbnail((160, 160))
    return exif_with_thumbnail(jpeg_bytes(t, 75))


def textured_box(im: Image.Image, rng: random.Random) -> tuple[int, int]:
    """Top-left of a PATCH box among the most textured ones (copy-move of sky shows nothing
    to any keypoint method: that limit is stated, not measured here)."""
    g = np.asarray(im.convert("L"), np.float32)
    h, w = g.shape
    cands = []
    for _ in range(40):
        x, y = rng.randrange(0, w - PATCH), rng.randrange(0, h - PATCH)
        cands.append((float(np.abs(np.diff(g[y:y + PATCH, x:x + PATCH], axis=1)).mean()), x, y))
    cands.sort(reverse=True)
    return cands[0][1], cands[0][2]


def far_spot(w: int, h: int, x: int, y: int, rng: random.Random) -> tuple[int, int]:
    for _ in range(200):
        u, v = rng.randrange(0, w - PATCH), rng.randrange(0, h - PATCH)
        if abs(u - x) >= PATCH or abs(v - y) >= PATCH:
            return u, v
    return (w - PATCH - x, h - PATCH - y)


def make_cases(path: Path, other: Path, rng: random.Random) -> dict[str, bytes]:
    data = path.read_bytes()
    im = Image.open(io.BytesIO(data)).convert("RGB")
    donor = Image.open(other).convert("RGB")
    w, h = im.size
    x, y = textured_box(im, rng)
    u, v = far_spot(w, h, x, y, rng)
    moved = im.copy()
    moved.paste(im.crop((x, y, x + PATCH, y + PATCH)), (u, v))
    dx, dy = textured_box(donor, rng)
    spliced = im.copy()
    spliced.paste(donor.crop((dx, dy, dx + PATCH, dy + PATCH)), (u, v))
    q1, q2 = rng.choice((60, 70, 80)), rng.choice((90, 95))
    once = Image.open(io.BytesIO(jpeg_bytes(im, q1))).convert("RGB")
    return {"original": data,
            "own_thumb": jpeg_bytes(im, 95, thumb_exif(im)),
            "copy_move": jpeg_bytes(moved, 92),
            "splice": jpeg_bytes(spliced, 92),
            "double_jpeg": jpeg_bytes(once, q2),
            "swapped_thumb": jpeg_bytes(im, 95, thumb_exif(donor))}


def subject(data: bytes) -> Subject:
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or ""
        return Subject(im.convert("RGB"), data, fmt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="real photos sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA, help=f"shared data (default {DATA})")
    ap.add_argument("--no-12mp", action="store_true", help="skip the 12 MP cost figure")
    args = ap.parse_args()
    files = sorted(p for d in REAL_DIRS if (args.data / d).is_dir()
                   for p in (args.data / d).iterdir())
    if not files:
        print(f"no reals under {args.data}; nothing measured", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    picked = rng.sample(files, min(args.n, len(files)))
    names = list(WITNESSES)
    hits = {(w, c): [0, 0] for w in names for c in CASES}  # flagged, applicable
    cost = {w: [] for w in names}
    for i, path in enumerate(picked):
        other = picked[(i + 1) % len(picked)]
        for case, data in make_cases(path, other, rng).items():
            for r in run_witnesses(subject(data), names):
                cost[r.name].append(r.elapsed_ms)
                if r.detected is not None:
                    hits[(r.name, case)][1] += 1
                    hits[(r.name, case)][0] += int(r.detected)
    print(f"{len(picked)} real photos from {', '.join(REAL_DIRS)} (seed {args.seed}); "
          "cells: flagged / applicable (n/a where the witness does not apply)")
    print(f"{'witness':<10}" + "".join(f"{c:>15}" for c in CASES) + f"{'ms/image':>10}")
    for w in names:
        cells = "".join(f"{f'{a}/{n}' if n else 'n/a':>15}" for a, n in
                        (hits[(w, c)] for c in CASES))
        print(f"{w:<10}{cells}{np.mean(cost[w]):>10.0f}")
    if not args.no_12mp:
        big = subject(picked[0].read_bytes()).image.resize((4000, 3000), Image.Resampling.BICUBIC)
        data = jpeg_bytes(big, 92, thumb_exif(big))
        t0 = time.perf_counter()
        results = run_witnesses(Subject(big, data, "JPEG"), names)
        print(f"one 12 MP JPEG (4000x3000, a real upscaled): total "
              f"{time.perf_counter() - t0:.2f} s; " +
              ", ".join(f"{r.name} {r.elapsed_ms / 1000:.2f} s" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
