"""Text hidden in the alpha channel's lowest bits ("stealth" metadata): NovelAI V3/V4 and the
A1111 stealth-pnginfo extension.

Layout: the bits are read column by column (x outer, y inner), one per pixel from the alpha
value's lowest bit, most significant bit first: the 15-byte signature ``stealth_pngcomp``
(gzip payload) or ``stealth_pnginfo`` (UTF-8 payload), the payload's length in bits as a
32-bit big-endian integer, then the payload. It survives the stripping of text chunks, and
only lossless formats with alpha keep it, so only PNG and WebP with an alpha channel are
looked at, through Pillow's allow-listed openers, within a pixel and a text budget.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

from forensics_app.core.provenance.limits import MAX_TEXT_CHUNK_BYTES
from forensics_app.core.provenance.text import reason

SIGNATURES = {b"stealth_pngcomp": True, b"stealth_pnginfo": False}  # -> compressed
MAX_STEALTH_PIXELS = 40_000_000  # larger images are not decoded for this (a note says so)
_SIG_BITS = 15 * 8


def has_alpha(data: bytes, fmt: str | None) -> bool:
    """Whether the header announces an alpha channel (no decode)."""
    if fmt == "PNG":
        return len(data) > 25 and data[12:16] == b"IHDR" and data[25] in (4, 6)
    if fmt == "WEBP" and data[12:16] == b"VP8X" and len(data) > 20:
        return bool(data[20] & 0x10)
    if fmt == "WEBP" and data[12:16] == b"VP8L" and len(data) > 24:
        return bool((int.from_bytes(data[21:25], "little") >> 28) & 1)
    return False


def _bytes_from_bits(bits) -> bytes:
    import numpy as np

    return np.packbits(bits[: len(bits) - len(bits) % 8]).tobytes()


def read_stealth(data: bytes, fmt: str | None, notes: list[str]) -> str | None:
    """The stealth text of a PNG/WebP with alpha, or None when there is none."""
    if not has_alpha(data, fmt):
        return None
    import numpy as np
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=(fmt,)) as img:
                w, h = img.size
                if w * h > MAX_STEALTH_PIXELS:
                    notes.append(f"alpha-channel metadata not looked for: {w}x{h} is over "
                                 f"{MAX_STEALTH_PIXELS:,} pixels")
                    return None
                if "A" not in img.getbands():
                    img = img.convert("RGBA")
                alpha = np.asarray(img.getchannel("A"))
    except Exception as exc:  # noqa: BLE001 -- an undecodable image has no stealth text here
        notes.append(f"alpha-channel metadata not read: {reason(exc)}")
        return None
    bits = (alpha.T & 1).ravel()  # column by column: x outer, y inner
    compressed = SIGNATURES.get(_bytes_from_bits(bits[:_SIG_BITS]))
    if compressed is None or len(bits) < _SIG_BITS + 32:
        return None
    (n_bits,) = struct.unpack(">I", _bytes_from_bits(bits[_SIG_BITS:_SIG_BITS + 32]))
    start = _SIG_BITS + 32
    if n_bits > len(bits) - start or n_bits > 8 * MAX_TEXT_CHUNK_BYTES * 4:
        notes.append("alpha-channel metadata signature found, but its length is impossible")
        return None
    payload = _bytes_from_bits(bits[start:start + n_bits])
    if compressed:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip
        try:
            payload = d.decompress(payload, MAX_TEXT_CHUNK_BYTES)
        except zlib.error as exc:
            notes.append(f"alpha-channel metadata unreadable: {reason(exc)}")
            return None
        if d.unconsumed_tail:
            notes.append(f"alpha-channel metadata larger than {MAX_TEXT_CHUNK_BYTES:,} bytes: "
                         "only the first part read")
    return payload.decode("utf-8", "replace") or None
