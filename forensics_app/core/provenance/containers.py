"""Find the raw metadata blocks in a file's bytes: one walker per container format.

Walkers only slice the bytes already read at intake; they decode nothing but the headers
(TIFF, HEIF and AVIF headers through Pillow's allow-listed openers, which decode no pixels
until asked). Every length is checked against what is there: a truncated or lying block
becomes a note.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, field

from forensics_app.core.provenance.limits import (
    MAX_BOXES,
    MAX_IIM_BYTES,
    MAX_TEXT_CHUNK_BYTES,
    MAX_TEXT_CHUNKS,
    MAX_TEXT_TOTAL_BYTES,
    MAX_XMP_BYTES,
    STORED_TEXT_CHARS,
)
from forensics_app.core.provenance.records import TextEntry
from forensics_app.core.provenance.text import decode_text, reason


@dataclass
class Blocks:
    """Raw metadata blocks found by walking the container."""

    format: str | None = None
    exif: bytes | None = None
    xmp: list[bytes] = field(default_factory=list)
    xmp_extended: list[bytes] = field(default_factory=list)  # JPEG extended XMP, reassembled
    iim: bytes = b""  # IPTC-IIM datasets (JPEG APP13 Photoshop resource 0x0404)
    c2pa: bool = False
    jumbf_label: str | None = None  # label of the first JUMBF description box seen
    texts: list[TextEntry] = field(default_factory=list)
    full_texts: list[tuple[str, str, str]] = field(default_factory=list)  # (source, key, text)
    dqt: list[tuple[int, list[int]]] = field(default_factory=list)  # (table id, 64 values zigzag)
    comments: int = 0


def sniff(data: bytes) -> str | None:
    """The container the first bytes announce (the ISOBMFF brands named: HEIC, AVIF, ...)."""
    from forensics_app.core.image_formats import container_kind

    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return container_kind(data[:64])


def bounded_inflate(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """zlib-decompress at most ``limit`` bytes; True when there was more (a possible bomb)."""
    d = zlib.decompressobj()
    out = d.decompress(raw, limit)
    return out, bool(d.unconsumed_tail)


class _TextBudget:
    def __init__(self) -> None:
        self.used = 0
        self.chunks = 0


def add_text(blocks: Blocks, source: str, key: str, text: str, budget: _TextBudget | None = None
             ) -> None:
    if budget is not None:
        budget.used += len(text)
    blocks.full_texts.append((source, key, text))
    blocks.texts.append(TextEntry(source, key, len(text), text[:STORED_TEXT_CHARS],
                                  len(text) > STORED_TEXT_CHARS))


# ----------------------------------------------------------------------------- PNG
def _walk_png(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    pos, n = 8, len(data)
    budget = _TextBudget()
    while pos + 8 <= n:
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            notes.append(f"PNG chunk {ctype!r} truncated ({len(body)} of {length} bytes)")
        pos += 12 + length
        if ctype == b"IEND":
            break
        if ctype == b"caBX":
            blocks.c2pa = True
            _jumbf_label(body, blocks)
        elif ctype == b"eXIf":
            blocks.exif = body
        elif ctype in (b"tEXt", b"zTXt", b"iTXt"):
            budget.chunks += 1
            if budget.chunks > MAX_TEXT_CHUNKS:
                if budget.chunks == MAX_TEXT_CHUNKS + 1:
                    notes.append(f"more than {MAX_TEXT_CHUNKS} PNG text chunks; the rest ignored")
                continue
            if budget.used >= MAX_TEXT_TOTAL_BYTES:
                notes.append("PNG text over the per-file budget; remaining chunks ignored")
                budget.chunks = MAX_TEXT_CHUNKS + 1
                continue
            _png_text(ctype, body, blocks, notes, budget)


def _png_text(ctype: bytes, body: bytes, blocks: Blocks, notes: list[str],
              budget: _TextBudget) -> None:
    kind = ctype.decode()
    key_raw, sep, rest = body.partition(b"\x00")
    key = key_raw[:79].decode("latin-1", "replace")
    if not sep:
        notes.append(f"PNG {kind} chunk without a keyword separator; ignored")
        return
    limit = min(MAX_TEXT_CHUNK_BYTES, MAX_TEXT_TOTAL_BYTES - budget.used)
    try:
        if kind == "tEXt":
            raw, more = rest[:limit], len(rest) > limit
            encoding = "latin-1"
        elif kind == "zTXt":
            raw, more = bounded_inflate(rest[1:], limit)
            encoding = "latin-1"
        else:  # iTXt: flag, method, language\0, translated keyword\0, text
            flag = rest[0] if rest else 0
            _lang, _, rest2 = rest[2:].partition(b"\x00")
            _tkey, _, text = rest2.partition(b"\x00")
            raw, more = bounded_inflate(text, limit) if flag else (text[:limit], len(text) > limit)
            encoding = "utf-8"
    except (zlib.error, IndexError) as exc:
        notes.append(f"PNG {kind} '{key}' unreadable: {reason(exc)}")
        return
    if more:
        notes.append(f"PNG {kind} '{key}' larger than {limit:,} bytes: only the first "
                     f"{limit:,} read (oversized or a compression bomb)")
    if key == "XML:com.adobe.xmp":
        blocks.xmp.append(raw)
        return
    if key.startswith("Raw profile type"):  # ImageMagick hex dumps (exif/xmp/iptc)
        return
    add_text(blocks, f"PNG {kind}", key, raw.decode(encoding, "replace"), budget)


# ----------------------------------------------------------------------------- JPEG
_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"
_PHOTOSHOP = b"Photoshop 3.0\x00"


def _walk_jpeg(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    pos, n = 2, len(data)
    budget = _TextBudget()
    extended: dict[bytes, tuple[int, dict[int, bytes]]] = {}
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            notes.append(f"JPEG marker structure broken at byte {pos}; metadata after it not read")
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: metadata precedes it
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        body = data[pos + 4:pos + 2 + length]
        if length < 2 or len(body) < length - 2:
            notes.append(f"JPEG segment 0x{marker:02X} truncated at byte {pos}")
            break
        pos += 2 + length
        if marker == 0xE1:
            if body.startswith(b"Exif\x00\x00") and blocks.exif is None:
                blocks.exif = body
            elif body.startswith(_JPEG_XMP):
                blocks.xmp.append(body[len(_JPEG_XMP):])
            elif body.startswith(_JPEG_XMP_EXT):
                _extended_xmp_part(body[len(_JPEG_XMP_EXT):], extended, notes)
        elif marker == 0xED and body.startswith(_PHOTOSHOP):
            _photoshop_iim(body[len(_PHOTOSHOP):], blocks, notes)
        elif marker == 0xEB:  # APP11: JUMBF boxes (C2PA, or the pre-C2PA CAI format)
            if body[:2] == b"JP" and b"jumb" in body[:64]:
                blocks.c2pa = True
                _jumbf_label(body, blocks)
        elif marker == 0xFE:
            blocks.comments += 1
            if blocks.comments <= MAX_TEXT_CHUNKS and budget.used < MAX_TEXT_TOTAL_BYTES:
                text = body[:MAX_TEXT_CHUNK_BYTES]
                add_text(blocks, "JPEG COM", "comment", decode_text(text), budget)
        elif marker == 0xDB:
            _parse_dqt(body, blocks, notes)
    for guid, (total, parts) in extended.items():
        merged = _merge_extended(total, parts)
        if merged is None:
            notes.append(f"extended XMP {guid.decode('latin-1')[:32]} incomplete "
                         f"({sum(map(len, parts.values())):,} of {total:,} bytes); not merged")
        else:
            blocks.xmp_extended.append(merged)


def _extended_xmp_part(body: bytes, extended: dict, notes: list[str]) -> None:
    """One extended-XMP segment: 32-byte GUID, full length, this part's offset, data."""
    if len(body) < 40:
        notes.append("extended XMP segment too short; ignored")
        return
    guid = body[:32]
    total, offset = struct.unpack(">II", body[32:40])
    if total > MAX_XMP_BYTES:
        if guid not in extended:
            notes.append(f"extended XMP of {total:,} bytes over the {MAX_XMP_BYTES:,}-byte "
                         "limit; not merged")
        extended.setdefault(guid, (0, {}))
        return
    entry = extended.setdefault(guid, (total, {}))
    if entry[0] == total and offset + len(body) - 40 <= total:
        entry[1][offset] = body[40:]


def _merge_extended(total: int, parts: dict[int, bytes]) -> bytes | None:
    if not total:
        return None
    out, pos = bytearray(), 0
    for offset in sorted(parts):
        if offset != pos:
            return None
        out += parts[offset]
        pos += len(parts[offset])
    return bytes(out) if pos == total else None


def _photoshop_iim(body: bytes, blocks: Blocks, notes: list[str]) -> None:
    """Photoshop image resources (8BIM): keep resource 0x0404, the IPTC-IIM records."""
    pos, n = 0, len(body)
    while pos + 12 <= n and body[pos:pos + 4] == b"8BIM":
        (rid,) = struct.unpack(">H", body[pos + 4:pos + 6])
        name_len = body[pos + 6]
        name_total = name_len + 1 + ((name_len + 1) & 1)  # Pascal string padded to even
        p = pos + 6 + name_total
        if p + 4 > n:
            break
        (size,) = struct.unpack(">I", body[p:p + 4])
        data = body[p + 4:p + 4 + size]
        if len(data) < size:
            notes.append("IPTC-IIM (APP13) resource truncated")
        if rid == 0x0404 and len(blocks.iim) < MAX_IIM_BYTES:
            blocks.iim += data[:MAX_IIM_BYTES - len(blocks.iim)]
        pos = p + 4 + size + (size & 1)


def _parse_dqt(body: bytes, blocks: Blocks, notes: list[str]) -> None:
    i = 0
    while i < len(body):
        pq, tq = body[i] >> 4, body[i] & 0x0F
        size = 128 if pq else 64
        values = body[i + 1:i + 1 + size]
        if len(values) < size:
            notes.append("JPEG quantisation table truncated")
            return
        table = list(struct.unpack(">64H", values)) if pq else list(values)
        blocks.dqt.append((tq, table))
        i += 1 + size


def _jumbf_label(body: bytes, blocks: Blocks) -> None:
    """The first JUMBF description box's type and label: C2PA ("c2pa") or pre-C2PA CAI."""
    if blocks.jumbf_label is not None:
        return
    at = body.find(b"jumd", 0, 256)
    if at < 0:
        return
    box_type = body[at + 4:at + 20]
    label = body[at + 21:at + 21 + 64].split(b"\x00", 1)[0].decode("latin-1", "replace")
    blocks.jumbf_label = label or box_type[:4].decode("latin-1", "replace")
    if box_type[:4] == b"c2pa":
        blocks.jumbf_label = "c2pa"


# ----------------------------------------------------------------------------- WebP
def _walk_webp(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    pos, n = 12, len(data)
    while pos + 8 <= n:
        ctype, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            notes.append(f"WebP chunk {ctype!r} truncated")
        pos += 8 + length + (length & 1)
        if ctype == b"EXIF":
            blocks.exif = body
        elif ctype == b"XMP ":
            blocks.xmp.append(body)
        elif ctype == b"C2PA":
            blocks.c2pa = True
            _jumbf_label(body, blocks)


# ----------------------------------------------------------------------------- GIF
def _walk_gif(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    """GIF blocks up to the first image: the XMP application extension and comments."""
    if len(data) < 13:
        return
    flags = data[10]
    pos = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    budget = _TextBudget()
    while pos < len(data) and data[pos] == 0x21:  # extensions before the first image
        label = data[pos + 1] if pos + 1 < len(data) else 0
        start = pos + 2
        if label == 0xFF and data[start:start + 12] == b"\x0bXMP DataXMP":
            start += 12
        end = start
        while end < len(data) and data[end] != 0:  # sub-blocks: a length byte, then data
            end += data[end] + 1
        if end >= len(data):
            notes.append("GIF extension block truncated")
            return
        raw = data[start:end]
        if label == 0xFF and data[pos + 2:pos + 14] == b"\x0bXMP DataXMP":
            # XMP is stored raw (its bytes read as sub-block lengths), ending in a 258-byte
            # "magic trailer"; the packet reader cuts at the packet's end
            blocks.xmp.append(raw[:MAX_XMP_BYTES])
        elif label == 0xFE and budget.chunks < MAX_TEXT_CHUNKS:
            budget.chunks += 1
            add_text(blocks, "GIF comment", "comment", decode_text(_sub_blocks(raw)), budget)
        pos = end + 1


def _sub_blocks(raw: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(raw) and len(out) < MAX_TEXT_CHUNK_BYTES:
        size = raw[i]
        out += raw[i + 1:i + 1 + size]
        i += size + 1
    return bytes(out)


# ----------------------------------------------------------------------------- ISOBMFF / JXL
def _iter_boxes(data: bytes, notes: list[str], what: str):
    """Top-level (size, type, body) boxes of an ISOBMFF-style file (HEIF, AVIF, JPEG XL)."""
    pos, n, count = 0, len(data), 0
    while pos + 8 <= n and count < MAX_BOXES:
        count += 1
        size, btype = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > n:
                break
            (size,) = struct.unpack(">Q", data[pos + 8:pos + 16])
            header = 16
        elif size == 0:
            size = n - pos
        if size < header:
            notes.append(f"{what} box {btype!r} with impossible size {size}; walk stopped")
            return
        yield btype, data[pos + header:pos + size]
        if pos + size > n:
            notes.append(f"{what} box {btype!r} truncated")
            return
        pos += size


def _walk_jxl(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    if data[:2] == b"\xff\x0a":
        return  # a bare codestream: no boxes, so no metadata
    for btype, body in _iter_boxes(data, notes, "JPEG XL"):
        if btype == b"Exif" and len(body) > 4:  # 4-byte offset to the TIFF header
            (skip,) = struct.unpack(">I", body[:4])
            blocks.exif = body[4 + skip:]
        elif btype == b"xml ":
            blocks.xmp.append(body[:MAX_XMP_BYTES])
        elif btype == b"jumb":
            blocks.c2pa = True
            _jumbf_label(body, blocks)
        elif btype == b"brob" and body[:4] in (b"Exif", b"xml ", b"jumb"):
            notes.append(f"JPEG XL {body[:4].decode().strip()} box is Brotli-compressed "
                         "(brob); not read")


def _walk_isobmff(data: bytes, blocks: Blocks, notes: list[str]) -> None:
    """HEIC/HEIF/AVIF: C2PA is a top-level box; EXIF/XMP are items of the ``meta`` box,
    read from its item tables (no decoder needed); Pillow's opener is the fallback."""
    from forensics_app.core.provenance.isobmff import metadata_items

    for btype, body in _iter_boxes(data, notes, blocks.format or "ISOBMFF"):
        if btype == b"uuid" and b"jumb" in body[:128]:
            blocks.c2pa = True
            _jumbf_label(body, blocks)
    blocks.exif, blocks.xmp = metadata_items(data, notes)
    if blocks.exif is None and not blocks.xmp:
        _pil_blocks(data, blocks, notes, quiet=True)


# ----------------------------------------------------------------------------- via Pillow
def _pil_blocks(data: bytes, blocks: Blocks, notes: list[str], quiet: bool = False) -> None:
    """TIFF/HEIF/AVIF: let the allow-listed opener parse the header (no pixel decode).

    ``quiet``: a fallback whose absence loses nothing more (no note without a decoder)."""
    from PIL import Image

    from forensics_app.core.image_formats import (
        missing_decoder_reason,
        pillow_format,
        structure_error,
    )
    from forensics_app.core.loading import DECODE_FORMATS

    pil_name = pillow_format(blocks.format)
    if pil_name not in DECODE_FORMATS:
        if not quiet:
            notes.append(f"{missing_decoder_reason(blocks.format)}: its metadata was not read")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=(pil_name,)) as img:
                exif = img.info.get("exif")
                if isinstance(exif, bytes) and exif:
                    blocks.exif = exif
                elif blocks.format == "TIFF":
                    tags = img.getexif()
                    blocks.exif = tags.tobytes() if len(tags) else None
                xmp = img.info.get("xmp")
                if isinstance(xmp, bytes | str) and xmp:
                    blocks.xmp.append(xmp.encode() if isinstance(xmp, str) else xmp)
    except Exception as exc:  # noqa: BLE001 -- metadata of an unreadable file is a note
        why = (structure_error(data, pil_name or "") if isinstance(exc, Image.UnidentifiedImageError)
               else None)
        notes.append(f"{blocks.format} metadata unreadable: {why or reason(exc)}")


def find_blocks(data: bytes, notes: list[str]) -> Blocks:
    fmt = sniff(data)
    blocks = Blocks(format=fmt)
    walker = {"PNG": _walk_png, "JPEG": _walk_jpeg, "WEBP": _walk_webp, "GIF": _walk_gif,
              "JXL": _walk_jxl, "HEIC": _walk_isobmff, "HEIF": _walk_isobmff,
              "AVIF": _walk_isobmff, "TIFF": _pil_blocks}.get(fmt or "")
    if walker is not None:
        walker(data, blocks, notes)
    if fmt in (None, "TIFF", "GIF") and b"jumb" in data and b"c2pa" in data:
        blocks.c2pa = True
    return blocks
