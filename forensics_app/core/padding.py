"""Detect images that the decoder completed with filler because the file's data ran out.

Pillow refuses a file that simply stops (``image file is truncated``): that is an error row.
A JPEG whose entropy-coded data ends early *at a marker* (typically an EOI written too soon,
or a header patched to claim a larger image) is different: libjpeg warns, fills every missing
block with the last DC value and returns success, so a 631-byte file can "decode" to an
81-megapixel flat image. Nothing in Pillow reports it, so this module checks it:

1. cheap: is there a flat band of identical rows at the bottom of the image (the shape the
   filler takes)? Most images have none, and the check stops at the first row that varies;
   it reads the image in bounded chunks of rows, never a copy of the whole image;
2. decisive, only for a JPEG with such a band: decode at 1/8 scale (libjpeg's DCT scaling:
   1/64 of the pixels) twice, as is and with a few bytes of junk inserted before the EOI
   (and before any 0xFF fill bytes that precede it, which would otherwise turn the junk into
   a marker). A complete scan never reads them (the image is unchanged); a scan that ran out
   of data consumes them as image data (the band changes), which proves padding.

:func:`padded_rows_before_decode` runs step 2 (and step 1 on the 1/8-scale image) *before*
the full decode, for JPEGs compressed far beyond what photos reach, so a padded bomb is
refused without ever being decoded at full size.

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


# Declared-bytes-to-file-bytes ratio above which a JPEG is checked for padding before its
# full decode (camera JPEGs are 5-20:1; flat graphics reach ~200:1).
PRECHECK_RATIO = 50.0
_MAX_CHUNK_ROWS = 64
_DRAFT_SCALE = 8


def flat_bottom_rows(img: Image.Image) -> int:
    """Number of rows at the bottom of ``img`` identical to its last row, that row being one
    uniform colour; read in chunks of at most 64 rows from the bottom, so a normal image
    costs one small crop and a fully flat one never more than 64 rows at a time."""
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
        chunk = min(2 * chunk, _MAX_CHUNK_ROWS)
    return rows


def _eoi_offset(data: bytes) -> int | None:
    """Where junk goes: just before the EOI ending the last scan, and before any 0xFF fill
    bytes in front of it (a fill byte followed by junk would read as a marker). None when
    there is no scan or no EOI."""
    sos = data.rfind(b"\xff\xda")
    if sos < 0:
        return None
    eoi = data.find(b"\xff\xd9", sos)
    if eoi < 0:
        return None
    while eoi > sos + 2 and data[eoi - 1] == 0xFF:
        eoi -= 1
    return eoi


def _draft_decode(data: bytes) -> Image.Image | None:
    """The JPEG decoded at 1/8 scale (DCT scaling), or None if it does not decode."""
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            w, h = img.size
            img.draft(img.mode, (max(1, -(-w // _DRAFT_SCALE)), max(1, -(-h // _DRAFT_SCALE))))
            img.load()
            return img.copy() if img.mode in ("RGB", "L") else img.convert("RGB")
    except (OSError, SyntaxError, ValueError):
        return None


def jpeg_scan_ran_out(data: bytes, band_rows: int, height: int,
                      base: Image.Image | None = None) -> bool:
    """True when decoding (at 1/8 scale) with junk before the EOI changes the bottom band:
    the decoder was filling, not decoding, when it met the EOI. ``base``: the 1/8-scale
    decode of ``data`` when the caller has it."""
    eoi = _eoi_offset(data)
    if eoi is None:
        return False
    base = base if base is not None else _draft_decode(data)
    probe = _draft_decode(data[:eoi] + _JUNK + data[eoi:])
    if base is None or probe is None:
        return False
    if base.size != probe.size or base.mode != probe.mode:
        return True
    scale = height / max(1, base.size[1])
    # The junk lands in the blocks where the data stopped: the MCU row(s) just above the band.
    top = max(0, int((height - band_rows - 2 * _MAX_MCU_ROWS) / scale))
    box = (0, top, base.size[0], base.size[1])
    return not np.array_equal(np.asarray(probe.crop(box)), np.asarray(base.crop(box)))


def padded_rows(img: Image.Image, data: bytes, fmt: str | None) -> int:
    """Rows (from the bottom, in stored orientation) that the decoder filled in; 0 if none."""
    if fmt not in ("JPEG", "MPO"):
        return 0
    band = flat_bottom_rows(img)
    if band < MIN_PADDED_ROWS:
        return 0
    return band if jpeg_scan_ran_out(data, band, img.size[1]) else 0


def padded_rows_before_decode(data: bytes, width: int, height: int, declared: int) -> int | None:
    """For a JPEG whose declared decoded size is over :data:`PRECHECK_RATIO` times the file:
    the padded rows, estimated at 1/8 scale without the full decode. None: not checked here
    (an ordinary compression ratio; the full decode is checked afterwards)."""
    if declared < PRECHECK_RATIO * max(1, len(data)):
        return None
    small = _draft_decode(data)
    if small is None:
        return None
    scale = height / max(1, small.size[1])
    band = min(height, int(flat_bottom_rows(small) * scale))
    if band < MIN_PADDED_ROWS:
        return 0
    return band if jpeg_scan_ran_out(data, band, height, base=small) else 0


def padding_note(rows: int, height: int) -> str:
    pct = 100.0 * rows / max(1, height)
    return (f"decoder padding: the file's image data ends early (corrupt or truncated JPEG); "
            f"the bottom {rows} of {height} rows ({pct:.0f}%) are filler, not image data")
