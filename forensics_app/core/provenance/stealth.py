"""Text hidden in the alpha channel's lowest bits ("stealth" metadata): NovelAI V3/V4 and the
A1111 stealth-pnginfo extension.

Layout: the bits are read column by column (x outer, y inner), one per pixel from the alpha
value's lowest bit, most significant bit first: the 15-byte signature ``stealth_pngcomp``
(gzip payload) or ``stealth_pnginfo`` (UTF-8 payload), the payload's length in bits as a
32-bit big-endian integer, then the payload. It survives the stripping of text chunks, and
only lossless formats with alpha keep it, so only PNG and WebP with an alpha channel are
looked at, through Pillow's allow-listed openers, within a pixel and a text budget.

Most images with alpha carry nothing there, so a PNG is first asked only for the signature:
the first 152 rows of its first column, inflated and unfiltered here (the first pixel of a
row depends only on the first pixel of the row above), which costs a fraction of a decode.
Only a PNG whose first column spells a signature is decoded whole.
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


def _png_signature_present(data: bytes) -> bool | None:
    """Whether the first column's alpha LSBs spell a signature; None when this cheap check
    does not apply (not 8-bit, interlaced, too short an image: decode whole instead)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bpp = {6: 4, 4: 2}.get(colour)
    if bpp is None or depth != 8 or interlace or height < _SIG_BITS or width == 0 \
            or width * height > MAX_STEALTH_PIXELS:
        return None  # the whole-image path applies its pixel budget and says so
    stride = 1 + width * bpp
    need = _SIG_BITS * stride  # at most 152 rows of a 40 MP image: bounded before inflating
    inflate, raw, pos = zlib.decompressobj(), bytearray(), 8
    try:
        while pos + 8 <= len(data) and len(raw) < need:
            length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
            if ctype == b"IDAT":
                raw += inflate.decompress(data[pos + 8:pos + 8 + length], need - len(raw))
                while inflate.unconsumed_tail and len(raw) < need:
                    raw += inflate.decompress(inflate.unconsumed_tail, need - len(raw))
            elif ctype == b"IEND":
                break
            pos += 12 + length
    except zlib.error:
        return None
    if len(raw) < need:
        return None
    alpha_at, bits, prev = bpp - 1, bytearray(), bytes(bpp)
    for row in range(_SIG_BITS):
        f, px = raw[row * stride], bytearray(raw[row * stride + 1:row * stride + 1 + bpp])
        for i in range(bpp):  # the first pixel: left and upper-left are 0
            up = prev[i]
            px[i] = (px[i] + (up if f in (2, 4) else up // 2 if f == 3 else 0)) & 0xFF
        bits.append(px[alpha_at] & 1)
        prev = bytes(px)
    return bytes(int("".join(map(str, bits[i:i + 8])), 2)
                 for i in range(0, _SIG_BITS, 8)) in SIGNATURES


def _bytes_from_bits(bits) -> bytes:
    import numpy as np

    return np.packbits(bits[: len(bits) - len(bits) % 8]).tobytes()


def read_stealth(data: bytes, fmt: str | None, notes: list[str]) -> str | None:
    """The stealth text of a PNG/WebP with alpha, or None when there is none."""
    if not has_alpha(data, fmt):
        return None
    if fmt == "PNG" and _png_signature_present(data) is False:
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
