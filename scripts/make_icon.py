"""Draw the application icon into resources/icons: app.png (512 px), app.ico, app.icns.

    .venv/bin/python scripts/make_icon.py [--out DIR]

A magnifying glass over a grid of pixels, one of them flagged: "look closely at the pixels".
Drawn with Pillow at 4x and down-sampled (anti-aliasing), so no image editor or external
asset is involved. Windows uses the .ico and macOS the .icns (build_installer.spec picks
them); Linux shows the .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def draw_icon(size: int = 512) -> Image.Image:
    s = size * 4  # supersampled canvas
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = s / 64  # design grid: 64 x 64 units
    d.rounded_rectangle([2 * u, 2 * u, 62 * u, 62 * u], radius=12 * u, fill=(23, 37, 64, 255))
    # Pixel grid (4 x 4 cells), one cell flagged.
    cell, gap, x0, y0 = 8 * u, 1.2 * u, 9 * u, 9 * u
    shades = [(70, 96, 140), (88, 118, 168), (60, 84, 126), (98, 130, 180)]
    for row in range(4):
        for col in range(4):
            colour = (230, 72, 60) if (row, col) == (1, 2) else shades[(row * 3 + col) % 4]
            left, top = x0 + col * (cell + gap), y0 + row * (cell + gap)
            d.rounded_rectangle([left, top, left + cell, top + cell], radius=1.5 * u,
                                fill=(*colour, 255))
    # Magnifying glass centred on the flagged cell.
    cx, cy, r = x0 + 2.5 * (cell + gap) - gap / 2, y0 + 1.5 * (cell + gap) - gap / 2, 11 * u
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(245, 245, 245, 255), width=int(3.2 * u))
    hx, hy = cx + r * 0.72, cy + r * 0.72
    d.line([hx, hy, hx + 14 * u, hy + 14 * u], fill=(245, 245, 245, 255), width=int(5.5 * u))
    return img.resize((size, size), Image.Resampling.LANCZOS)


def write_icons(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    icon = draw_icon(1024)
    paths = [out / "app.png", out / "app.ico", out / "app.icns"]
    icon.resize((512, 512), Image.Resampling.LANCZOS).save(paths[0], optimize=True)
    icon.save(paths[1], sizes=ICO_SIZES)
    icon.save(paths[2])
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "resources" / "icons")
    args = p.parse_args(argv)
    for path in write_icons(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
