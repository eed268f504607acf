"""What a padded JPEG bomb costs to take in: wall time and peak memory of ``decode_image``.

Builds a JPEG of ``--real`` x ``--real`` noise, patches its frame header to claim ``--side``
x ``--side`` (the decoder fills the missing blocks with flat filler) and, with ``--fill``,
puts one 0xFF fill byte before the EOI (which defeated the old padding probe). Prints the
file size, the seconds and the process's peak RSS, and whether the file was scored or
refused. Run it with ``PYTHONPATH`` pointing at the checkout to measure (one process each:
peak RSS is per process).

Figures, not a test. Example (issue 22: 15000^2 claimed in 347 KB):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/padded_jpeg_bomb.py --side 15000 --real 540 --fill
"""

from __future__ import annotations

import argparse
import io
import resource
import struct
import time

import numpy as np
from PIL import Image

from forensics_app.core.loading import ImageLoadError, decode_image


def padded_jpeg(side: int, real: int, fill: bool) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (real, real, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=95)
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    if fill:
        data = data[:-2] + b"\xff" + data[-2:]
    return bytes(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=15000, help="claimed width and height")
    p.add_argument("--real", type=int, default=540, help="side of the real noise image")
    p.add_argument("--fill", action="store_true", help="one 0xFF fill byte before the EOI")
    args = p.parse_args()
    data = padded_jpeg(args.side, args.real, args.fill)
    t0 = time.perf_counter()
    try:
        _img, facts = decode_image(data, "bomb.jpg")
        outcome = f"scored; notes: {list(facts['notes']) or 'none'}"
    except ImageLoadError as exc:
        outcome = f"error row: {exc.reason[:100]}"
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.side}x{args.side} claimed in {len(data) / 1000:.0f} KB (fill byte: "
          f"{args.fill}): {seconds:.2f} s, peak RSS {peak:.0f} MiB -- {outcome}")


if __name__ == "__main__":
    main()
