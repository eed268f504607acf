"""Peak memory of a scan over a mixed folder: many small images plus 100 MP JPEGs and
8000x8000 PNGs (figures, not a test).

    .venv/bin/python benchmarks/scale_memory.py [--small 500] [--big-jpegs 10] [--big-pngs 10] \
        [--mode full|sample] [--model CKPT] [--flat 5000] [--fixtures DIR]

Fixtures are generated once into ``--fixtures`` (default: a folder under the system temp
directory, reused between runs): 256^2 JPEG/PNG photos-like images, 11547x8660 JPEGs
(quality 90) and 8000x8000 RGB PNGs. Each scan runs ``forensics-scan`` in a fresh process
and reads its peak RSS (VmHWM) at exit. ``--flat N`` also scans N small files alone and
compares the peak with the ``--small`` run (the target: flat within 10 %).
The targets (issue 14): peak RSS <= 1.5 GB for 500 small + ten 100 MP JPEGs + ten 8000^2 PNGs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from forensics_app.cli import main
t0 = time.perf_counter()
rc = main(sys.argv[2:])
took = time.perf_counter() - t0
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(f'RESULT rc={rc} seconds={took:.1f} vmhwm_kib={hwm}', flush=True)
"""


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = rng.integers(30, 226, (height // 48 + 2, width // 48 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((width, height), Image.BICUBIC)
    noise = rng.normal(0, 6, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def big_image(width: int, height: int, seed: int) -> Image.Image:
    """A large image pasted from 4x4 distinct photo-like blocks (keeps generation memory low)."""
    canvas = Image.new("RGB", (width, height))
    bw, bh = -(-width // 4), -(-height // 4)
    for j in range(4):
        for i in range(4):
            canvas.paste(photo_like(bw, bh, seed * 100 + j * 4 + i), (i * bw, j * bh))
    return canvas


def make_fixtures(root: Path, small: int, jpegs: int, pngs: int) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {"small": [], "jpeg100": [], "png64": []}
    (root / "small").mkdir(parents=True, exist_ok=True)
    for i in range(small):
        p = root / "small" / f"s{i:05d}{'.jpg' if i % 2 else '.png'}"
        if not p.exists():
            photo_like(256, 256, i).save(p)
        out["small"].append(p)
    for i in range(jpegs):
        p = root / f"big_{i:02d}.jpg"
        if not p.exists():
            big_image(11547, 8660, i).save(p, "JPEG", quality=90)
        out["jpeg100"].append(p)
    for i in range(pngs):
        p = root / f"big_{i:02d}.png"
        if not p.exists():
            big_image(8000, 8000, 50 + i).save(p, "PNG", compress_level=1)
        out["png64"].append(p)
    return out


def scan_peak(files: list[Path], args, label: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "scan"
        listing.mkdir()
        for f in files:  # one folder with links to the chosen fixtures
            (listing / f.name).symlink_to(f)
        cmd = [sys.executable, "-c", CHILD, str(REPO), str(listing), "-q", "--mode", args.mode,
               "--jsonl", str(Path(tmp) / "r.jsonl")]
        if args.model:
            cmd += ["--model", str(args.model)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        if not line:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(f"{label}: scan failed")
        fields = dict(kv.split("=") for kv in line[0].split()[1:])
        peak_mib = int(fields["vmhwm_kib"]) / 1024
        print(f"{label}: {len(files)} files, {fields['seconds']} s, exit {fields['rc']}, "
              f"peak RSS {peak_mib:.0f} MiB ({time.perf_counter() - t0:.0f} s with start-up)",
              flush=True)
        return peak_mib, float(fields["seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--big-jpegs", type=int, default=10)
    ap.add_argument("--big-pngs", type=int, default=10)
    ap.add_argument("--flat", type=int, default=0, help="also scan this many small files alone")
    ap.add_argument("--mode", default="sample", choices=("full", "sample", "tiles"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--fixtures", type=Path,
                    default=Path(tempfile.gettempdir()) / "forensics_scale_fixtures")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    fx = make_fixtures(args.fixtures, max(args.small, args.flat), args.big_jpegs, args.big_pngs)
    print(f"fixtures in {args.fixtures} ready after {time.perf_counter() - t0:.0f} s; mode "
          f"{args.mode}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    mixed = fx["small"][: args.small] + fx["jpeg100"] + fx["png64"]
    peak, _ = scan_peak(mixed, args, f"mixed ({args.small} small + {len(fx['jpeg100'])} x 100 MP "
                                     f"JPEG + {len(fx['png64'])} x 8000^2 PNG)")
    print(f"target <= 1536 MiB: {'met' if peak <= 1536 else 'NOT met'}")
    if args.flat:
        a, _ = scan_peak(fx["small"][: args.small], args, f"{args.small} small")
        b, _ = scan_peak(fx["small"][: args.flat], args, f"{args.flat} small")
        print(f"flatness {args.flat}/{args.small}: {b / a:.3f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
