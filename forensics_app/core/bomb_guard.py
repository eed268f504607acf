"""The decompression-bomb guard: decide from an image's header whether to decode it.

A bomb is a small file whose header declares a huge image: decoding allocates the declared
size before a single pixel is read. A genuine large photo or scan is big on disk too. The
guard therefore keys on the declared size *versus the file size* (the compression ratio), and
on an explicit pixel cap that the analyst can raise; Pillow's own ``MAX_IMAGE_PIXELS`` is
switched off so that it is never the real limit (``core.loading`` does that and applies this
guard before every full decode, as does the GUI's thumbnail reader).

Rules, checked in this order (each refusal names its rule and how to raise the limit):

* ``pixel-cap``: width x height above ``max_pixels`` (default 250 MP).
* ``compression-ratio``: the declared decoded size is over ``ratio_floor_bytes`` (64 MiB; an
  image that decodes to less cannot exhaust memory, whatever its ratio) *and* more than
  ``max_compression_ratio`` (2000:1) times the file size. Deflate (PNG, TIFF) cannot compress
  better than ~1032:1, so every complete PNG passes; a camera JPEG is 5-20:1, a flat JPEG
  about 200:1. A 1 KB PNG declaring 100000 x 100000 (30 GB) is 29 million to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MAX_PIXELS = 250_000_000
DEFAULT_MAX_COMPRESSION_RATIO = 2000.0
DEFAULT_RATIO_FLOOR_BYTES = 64 * 1024 * 1024
# Memory one decode may hold (its pixels as Pillow stores them, plus a mode conversion):
# 250 MP as RGB is 1 GB, CMYK 2 GB; a larger declaration is refused before decoding.
DEFAULT_MAX_DECODE_BYTES = 2 * 1024**3
# Scans in one JPEG: a baseline JPEG has 1, a progressive one about 10 (libjpeg's own
# progressive scripts use at most 10-11, mozjpeg about 20); each scan re-reads every block,
# so thousands of tiny scans make a few MB cost minutes.
DEFAULT_MAX_JPEG_SCANS = 100
# Pages (IFDs) in one TIFF: counting them walks the chain; more are refused, not counted.
DEFAULT_MAX_TIFF_PAGES = 1024
# Wall-clock seconds one file may take from its read to its decode (a stuck read is
# abandoned at this point; later stages check it between steps).
DEFAULT_MAX_SECONDS_PER_FILE = 120.0

# Nominal bytes per pixel of the decoded image, per PIL mode (bands x bytes per sample).
_BYTES_PER_PIXEL = {
    "1": 1 / 8, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3,
    "HSV": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I;16": 2, "I;16L": 2, "I;16B": 2,
    "I;16N": 2, "I": 4, "F": 4,
}


@dataclass(frozen=True)
class DecodeLimits:
    """What the guard allows; a scan setting, recorded in the report side-car."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    ratio_floor_bytes: int = DEFAULT_RATIO_FLOOR_BYTES
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS
    max_tiff_pages: int = DEFAULT_MAX_TIFF_PAGES
    max_seconds_per_file: float = DEFAULT_MAX_SECONDS_PER_FILE

    def __post_init__(self) -> None:
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels must be a whole number >= 1, not {self.max_pixels!r}")
        # NaN compares false with everything, so "<= 0" alone would let it through and
        # silently switch the rule off; infinity would do the same on purpose.
        if not math.isfinite(self.max_compression_ratio) or self.max_compression_ratio <= 0:
            raise ValueError("max_compression_ratio must be a finite number > 0, not "
                             f"{self.max_compression_ratio!r}")
        if not (math.isfinite(self.max_seconds_per_file) and self.max_seconds_per_file > 0):
            raise ValueError("max_seconds_per_file must be a finite number > 0, not "
                             f"{self.max_seconds_per_file!r}")
        for name in ("max_decode_bytes", "max_jpeg_scans", "max_tiff_pages"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")

    def record(self) -> dict:
        return {"max_pixels": self.max_pixels,
                "max_compression_ratio": self.max_compression_ratio,
                "ratio_floor_bytes": self.ratio_floor_bytes,
                "max_decode_bytes": self.max_decode_bytes, "max_jpeg_scans": self.max_jpeg_scans,
                "max_tiff_pages": self.max_tiff_pages,
                "max_seconds_per_file": self.max_seconds_per_file}


class BombRefused(ValueError):
    """The header declares an image the guard will not decode; ``rule`` says which rule."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


def declared_bytes(width: int, height: int, mode: str | None) -> int:
    """Nominal size of the decoded image the header declares (unknown modes count 4 B/px)."""
    return int(max(1, width) * max(1, height) * _BYTES_PER_PIXEL.get(mode or "", 4))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def check_declared_image(
    width: int, height: int, mode: str | None, file_bytes: int, limits: DecodeLimits
) -> None:
    """Raise :class:`BombRefused` when the header's declared image breaks a rule."""
    pixels = max(0, width) * max(0, height)
    if pixels > limits.max_pixels:
        raise BombRefused(
            "pixel-cap",
            f"refused as a possible decompression bomb (rule: pixel cap): the header declares "
            f"{width}x{height} = {pixels:,} pixels, over the {limits.max_pixels:,}-pixel cap; "
            "not decoded. If the image is genuine, raise the cap (forensics-scan --max-pixels "
            "N, or max_pixels in the app's settings.json)",
        )
    decoded = declared_bytes(width, height, mode)
    ratio = decoded / max(1, file_bytes)
    if decoded > limits.ratio_floor_bytes and ratio > limits.max_compression_ratio:
        raise BombRefused(
            "compression-ratio",
            f"refused as a possible decompression bomb (rule: compression ratio): the header "
            f"declares {width}x{height} {mode or '?'} ({_size(decoded)} decoded) in a "
            f"{_size(file_bytes)} file, {ratio:,.0f}:1, over the "
            f"{limits.max_compression_ratio:,.0f}:1 limit (no genuine PNG exceeds ~1032:1); "
            "not decoded. If the image is genuine, raise the limit (forensics-scan "
            "--max-compression-ratio R, or max_compression_ratio in the app's settings.json)",
        )


def check_decode_memory(width: int, height: int, mode: str | None,
                        limits: DecodeLimits) -> int:
    """The bytes the decode will hold; :class:`BombRefused` (rule ``memory-budget``) when
    that is over ``limits.max_decode_bytes``. Checked before a pixel is decoded."""
    cost = decode_cost_bytes(width, height, mode)
    if cost > limits.max_decode_bytes:
        raise BombRefused(
            "memory-budget",
            f"refused (rule: memory budget): decoding the declared {width}x{height} "
            f"{mode or '?'} image would hold {_size(cost)}, over the "
            f"{_size(limits.max_decode_bytes)} one decode may use; not decoded")
    return cost


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """SOS markers in a JPEG, counting up to ``stop_after + 1``. Inside entropy-coded data
    every 0xFF byte is followed by 0x00 or a restart marker, so ``FF DA`` is always a real
    start-of-scan."""
    n, pos = 0, data.find(b"\xff\xda")
    while pos >= 0 and n <= stop_after:
        n += 1
        pos = data.find(b"\xff\xda", pos + 2)
    return n


def count_tiff_pages(data: bytes, stop_after: int) -> int:
    """Pages (IFDs) in a classic TIFF's chain, counting up to ``stop_after + 1``; a loop in the
    chain ends the count. Linear in pages, unlike seeking through them."""
    import struct

    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 0
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack_from(order + "I", data, 4)[0]
    seen: set[int] = set()
    n = 0
    while offset and offset not in seen and n <= stop_after and offset + 2 <= len(data):
        seen.add(offset)
        n += 1
        (entries,) = struct.unpack_from(order + "H", data, offset)
        nxt = offset + 2 + 12 * entries
        if nxt + 4 > len(data):
            break
        offset = struct.unpack_from(order + "I", data, nxt)[0]
    return n


def check_structure(data: bytes, fmt: str | None, limits: DecodeLimits) -> None:
    """CPU bombs: :class:`BombRefused` for a JPEG with more scans than
    ``limits.max_jpeg_scans`` or a TIFF with more pages than ``limits.max_tiff_pages``."""
    if fmt in ("JPEG", "MPO"):
        scans = count_jpeg_scans(data, limits.max_jpeg_scans)
        if scans > limits.max_jpeg_scans:
            raise BombRefused(
                "jpeg-scans",
                f"refused (rule: JPEG scan limit): the file has more than "
                f"{limits.max_jpeg_scans} scans (progressive JPEGs use about 10; each scan "
                "re-reads every block, so thousands cost minutes of CPU); not decoded")
    elif fmt == "TIFF":
        pages = count_tiff_pages(data, limits.max_tiff_pages)
        if pages > limits.max_tiff_pages:
            raise BombRefused(
                "tiff-pages",
                f"refused (rule: TIFF page limit): the file has more than "
                f"{limits.max_tiff_pages} pages; not decoded")


def decode_cost_bytes(width: int, height: int, mode: str | None) -> int:
    """Memory the decode will hold: Pillow stores RGB as 4 bytes a pixel, and converting
    another mode to RGB briefly holds both images."""
    rgb = max(1, width) * max(1, height) * 4
    return rgb if mode == "RGB" else rgb + declared_bytes(width, height, mode)
