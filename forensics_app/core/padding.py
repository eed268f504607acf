"""Detect images that the decoder completed with filler because the file's data ran out.

Pillow refuses a file that simply stops (``image file is truncated``): that is an error row.
A JPEG whose entropy-coded data ends early *at a marker* (typically an EOI written too soon,
or a header patched to claim a larger image) is different: libjpeg warns, fills every missing
block with the last DC value and returns success, so a 631-byte file can "decode" to an
81-megapixel flat image. Nothing in Pillow reports it, so this module checks it:

1. cheap: is there a flat band of identical rows at the bottom of the decoded image (the
   shape the filler takes)? Most images have none, and the check stops at the first row that
   varies;
2. decisive, only for a JPEG with such a band: decode again with a few bytes of junk inserted
   before the EOI. A complete scan never reads them (the image is unchanged); a scan that ran
   out of data consumes them as image data (the band changes), which proves padding.

Other formats are not padded here: their decoders (zlib, LZW, libwebp, libtiff, OpenJPEG)
raise on missing data under ``LOAD_TRUNCATED_IMAGES = False``, which makes an error row.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# A band shorter than this is within one JPEG MCU row and is not checked.
MIN_PADDED_ROWS = 8
# Above this fraction of filler rows the file is an error, not a score.
MAX_PADDED_FRACTION = 0.5
_MAX_MCU_ROWS = 16
_JUNK = bytes([0x5A, 0xA5, 0x3C, 0xC3]) * 16  # varied bits, never 0xFF (not a marker)


def flat_bottom_rows(img: Image.Image) -> int:
    """Number of rows at the bottom of ``img`` identical to its last row, that row being one
    uniform colour; read in chunks from the bottom so a normal image costs one small crop."""
    width, height = img.size
    if width == 0 or height == 0:
        return 0
    last = np.asarray(img.crop((0, height - 1, width, height)))
    if last.size == 0 or not (last == last.reshape(-1, *last.shape[2:])[0]).all():
        return 0
    value = last.reshape(-1, *last.shape[2:])[0]
    rows, chunk = 0, 16
    while rows < height:
        top = max(0, height - rows - chunk)
        block = np.asarray(img.crop((0, top, width, height - rows)))
        same = (block == value).reshape(block.shape[0], -1).all(axis=1)
        if not same.all():
            return rows + int(np.argmin(same[::-1]))
        rows += block.shape[0]
        chunk *= 2
    return rows


def _eoi_offset(data: bytes) -> int | None:
    """Offset of the EOI marker ending the last scan, or None."""
    sos = data.rfind(b"\xff\xda")
    if sos < 0:
        return None
    eoi = data.find(b"\xff\xd9", sos)
    return eoi if eoi >= 0 else None


def jpeg_scan_ran_out(data: bytes, img: Image.Image, band_rows: int) -> bool:
    """True when decoding with junk before the EOI changes the flat band: the decoder was
    filling, not decoding, when it met the EOI."""
    eoi = _eoi_offset(data)
    if eoi is None:
        return False
    probe = data[:eoi] + _JUNK + data[eoi:]
    width, height = img.size
    # The junk lands in the blocks where the data stopped: the MCU row(s) just above the band.
    box = (0, max(0, height - band_rows - 2 * _MAX_MCU_ROWS), width, height)
    try:
        with Image.open(io.BytesIO(probe), formats=["JPEG"]) as other:
            other.load()
            if other.size != img.size or other.mode != img.mode:
                return True
            return not np.array_equal(np.asarray(other.crop(box)), np.asarray(img.crop(box)))
    except (OSError, SyntaxError, ValueError):
        return False


def padded_rows(img: Image.Image, data: bytes, fmt: str | None) -> int:
    """Rows (from the bottom, in stored orientation) that the decoder filled in; 0 if none."""
    if fmt not in ("JPEG", "MPO"):
        return 0
    band = flat_bottom_rows(img)
    if band < MIN_PADDED_ROWS:
        return 0
    return band if jpeg_scan_ran_out(data, img, band) else 0


def padding_note(rows: int, height: int) -> str:
    pct = 100.0 * rows / max(1, height)
    return (f"decoder padding: the file's image data ends early (corrupt or truncated JPEG); "
            f"the bottom {rows} of {height} rows ({pct:.0f}%) are filler, not image data")
