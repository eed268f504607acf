"""Content-shortcut probe: what does the detector say about *real* non-photographic images?

The unaligned generator tiles are mostly artworks and the reals are photographs, so a model
can learn "painting / drawing = generated". This probe scores real images that are not
photographs of natural scenes and reports the share called AI-generated at the shipped
threshold (a real image: every "generated" verdict is a false positive):

- ``screenshots``: user-interface and document renderings drawn here with PIL (text, panels,
  buttons, gradients) -- made on the fly, never trained on;
- ``drawings``: line drawings and flat-colour vector shapes drawn here with PIL;
- ``graphic photos``: the ImageNet photos of printed or screen content among the training
  reals (comic book, web site, book jacket, menu, crossword, street sign, envelope,
  scoreboard, television, monitor, jigsaw puzzle, packet) -- real photos of graphics; those in
  the held-out splits are never-seen, the rest were trained on as reals.

Every image goes through the same JPEG q90 256 px normalisation as dev_test.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

GRAPHIC_CLASSES = ("comic_book", "web_site", "book_jacket", "menu", "crossword_puzzle",
                   "street_sign", "envelope", "scoreboard", "television", "monitor",
                   "jigsaw_puzzle", "packet")


def _normalise(img: Image.Image, size: int = 256) -> Image.Image:
    w, h = img.size
    c = min(size, w, h)
    x, y = (w - c) // 2, (h - c) // 2
    buf = io.BytesIO()
    img.convert("RGB").crop((x, y, x + c, y + c)).save(buf, format="JPEG", quality=90)
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def screenshot(rng: random.Random, w: int = 320, h: int = 256) -> Image.Image:
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 24), fill=tuple(rng.randint(20, 120) for _ in range(3)))
    for _ in range(rng.randint(2, 5)):  # panels and buttons
        x0, y0 = rng.randint(0, w - 60), rng.randint(30, h - 40)
        d.rectangle((x0, y0, x0 + rng.randint(40, 160), y0 + rng.randint(16, 80)),
                    fill=tuple(rng.randint(150, 250) for _ in range(3)),
                    outline=(90, 90, 90))
    words = ["File", "Edit", "View", "Report", "Case", "Scan", "Export", "Settings", "Help",
             "Evidence", "SHA-256", "Verdict", "0.734", "Real", "Inconclusive"]
    for row in range(rng.randint(6, 14)):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 7)))
        d.text((rng.randint(4, 40), 28 + row * 16), text, fill=(rng.randint(0, 60),) * 3)
    return img


def drawing(rng: random.Random, w: int = 320, h: int = 256) -> Image.Image:
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(5, 25)):
        pts = [(rng.randint(0, w), rng.randint(0, h)) for _ in range(rng.randint(2, 5))]
        kind = rng.random()
        color = tuple(rng.randint(0, 255) for _ in range(3))
        if kind < 0.4:
            d.line(pts, fill=(0, 0, 0), width=rng.randint(1, 4))
        elif kind < 0.7 and len(pts) >= 3:
            d.polygon(pts, fill=color, outline=(0, 0, 0))
        else:
            x0, y0 = pts[0]
            r = rng.randint(5, 60)
            d.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=color, outline=(0, 0, 0))
    if rng.random() < 0.5:  # pencil-like softening
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return img


def probe_images(real_root: Path | str | None, n_synthetic: int = 40, seed: int = 0,
                 held_out: set[str] | None = None) -> dict[str, list[Image.Image]]:
    rng = random.Random(seed)
    groups: dict[str, list[Image.Image]] = {
        "screenshots (made here)": [_normalise(screenshot(rng)) for _ in range(n_synthetic)],
        "drawings (made here)": [_normalise(drawing(rng)) for _ in range(n_synthetic)],
    }
    if real_root and Path(real_root).is_dir():
        seen, unseen = [], []
        for p in sorted(Path(real_root).rglob("*")):
            if any(p.stem.endswith(c) for c in GRAPHIC_CLASSES):
                with Image.open(p) as im:
                    img = _normalise(im.convert("RGB"))
                rel = f"{p.parent.name}/{p.name}"
                (unseen if held_out is not None and rel in held_out else seen).append(img)
        groups["graphic photos (trained on as reals)"] = seen
        if unseen:
            groups["graphic photos (held out)"] = unseen
    return {k: v for k, v in groups.items() if v}


def run_probe(detector, real_root: Path | str | None, held_out: set[str] | None = None,
              threshold: float = 0.5, seed: int = 0) -> list[dict]:
    """Share of each group called AI-generated at ``threshold`` (all images are real)."""
    from forensics_app.core.preprocess import to_normalized_tensor

    rows = []
    for name, images in probe_images(real_root, seed=seed, held_out=held_out).items():
        probs = np.concatenate([
            detector.predict_proba(to_normalized_tensor(im)[None]) for im in images])
        rows.append({"group": name, "n": len(images),
                     "called generated %": round(100 * float(np.mean(probs >= threshold)), 1),
                     "median P(generated)": round(float(np.median(probs)), 3)})
    return rows
