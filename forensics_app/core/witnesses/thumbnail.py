"""EXIF thumbnail against the image: do they show the same picture?

Cameras store a small JPEG preview in the EXIF block (IFD1). Many editors change the pixels
and leave the old preview in place, so a thumbnail that shows another picture is a classic
sign of an edited file. Can show: the thumbnail and the picture differ (a different scene,
crop or a large edit). Cannot show: small local edits (the preview is ~160 px wide), or
anything about a file without a thumbnail, or one whose editor rewrote the thumbnail too.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

from forensics_app.core.witnesses.base import Subject, WitnessResult, png_bytes

COMPARE_SIDE = 32
MIN_SIMILARITY = 0.75
MAX_THUMBNAIL_BYTES = 256 * 1024
MAX_THUMBNAIL_PIXELS = 1_000_000
RULE = (f"detected when the EXIF thumbnail and the image, both reduced to {COMPARE_SIDE}x"
        f"{COMPARE_SIDE} grey, correlate under {MIN_SIMILARITY:g} (after removing the "
        "thumbnail's black bars and applying the image's EXIF orientation)")


def read_thumbnail(data: bytes) -> tuple[bytes | None, int]:
    """The IFD1 JPEG preview's bytes (None when there is none) and the EXIF orientation."""
    from forensics_app.core.loading import DECODE_FORMATS

    with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as im:  # header only
        raw = im.info.get("exif")
        exif = im.getexif()
        orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1)
        if not raw:
            return None, orientation
        ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    offset = ifd1.get(ExifTags.Base.JpegIFOffset)
    length = ifd1.get(ExifTags.Base.JpegIFByteCount)
    if not isinstance(offset, int) or not isinstance(length, int) or length <= 0:
        return None, orientation
    if length > MAX_THUMBNAIL_BYTES or offset + length > len(tiff):
        raise ValueError(f"EXIF thumbnail of {length:,} bytes at {offset:,} lies outside the "
                         f"{len(tiff):,}-byte EXIF block or is over the size limit")
    return tiff[offset:offset + length], orientation


def _without_bars(im: Image.Image) -> Image.Image:
    """Crop uniform black rows/columns cameras pad thumbnails with."""
    a = np.asarray(im.convert("L"), np.float32)
    rows, cols = np.nonzero(a.mean(axis=1) > 12)[0], np.nonzero(a.mean(axis=0) > 12)[0]
    if rows.size < 4 or cols.size < 4:
        return im
    return im.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def _small(im: Image.Image) -> np.ndarray:
    v = np.asarray(im.convert("L").resize((COMPARE_SIDE, COMPARE_SIDE),
                                          Image.Resampling.BOX), np.float64).ravel()
    return v - v.mean()


def analyse(subject: Subject) -> WitnessResult:
    if not subject.data:
        return WitnessResult("thumbnail", None, "no file bytes to read a thumbnail from", RULE)
    thumb_bytes, orientation = read_thumbnail(subject.data)
    if thumb_bytes is None:
        return WitnessResult("thumbnail", None, "no EXIF thumbnail in this file", RULE,
                             {"has_thumbnail": False})
    with Image.open(io.BytesIO(thumb_bytes), formats=["JPEG"]) as t:
        if t.width * t.height > MAX_THUMBNAIL_PIXELS:
            raise ValueError(f"EXIF thumbnail of {t.width}x{t.height} is over the "
                             f"{MAX_THUMBNAIL_PIXELS:,}-pixel limit")
        thumb = t.convert("RGB")
    thumb = _oriented(thumb, orientation)
    thumb = _without_bars(thumb)
    image = subject.image.copy()
    image.thumbnail((256, 256), Image.Resampling.BOX)
    a, b = _small(thumb), _small(image)
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    similarity = float((a * b).sum() / denom) if denom > 0 else 0.0
    aspect_t, aspect_i = thumb.width / thumb.height, subject.image.width / subject.image.height
    figures = {"has_thumbnail": True, "thumbnail_size": [thumb.width, thumb.height],
               "similarity": round(similarity, 4),
               "aspect_ratio_thumbnail": round(aspect_t, 3),
               "aspect_ratio_image": round(aspect_i, 3)}
    detected = similarity < MIN_SIMILARITY
    finding = (f"the EXIF thumbnail shows a different picture (similarity {similarity:.2f})"
               if detected else f"the EXIF thumbnail matches the image (similarity "
               f"{similarity:.2f})")
    side = np.concatenate([np.asarray(thumb.resize((128, 128))),
                           np.asarray(image.resize((128, 128)))], axis=1)
    return WitnessResult("thumbnail", detected, finding, RULE, figures,
                         ["map: the thumbnail (left) beside the image (right)"],
                         map_png=png_bytes(side))


def _oriented(im: Image.Image, orientation: int) -> Image.Image:
    """The thumbnail turned as the image was (exif_transpose on the main image)."""
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return im.transpose(method) if method is not None else im


def exif_with_thumbnail(thumbnail_jpeg: bytes, orientation: int = 1) -> bytes:
    """An EXIF block (``Exif\\0\\0`` + little-endian TIFF) holding only an orientation and
    an IFD1 JPEG thumbnail: what tests and the benchmark give ``Image.save(exif=...)`` to
    make files with a known (or swapped) preview."""
    import struct

    ifd1_at = 8 + 2 + 12 + 4
    data_at = ifd1_at + 2 + 3 * 12 + 4
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack("<I", ifd1_at)
    tiff += struct.pack("<H", 3)
    tiff += struct.pack("<HHIHH", 0x0103, 3, 1, 6, 0)
    tiff += struct.pack("<HHII", 0x0201, 4, 1, data_at)
    tiff += struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail_jpeg))
    tiff += struct.pack("<I", 0)
    return b"Exif\x00\x00" + tiff + thumbnail_jpeg
