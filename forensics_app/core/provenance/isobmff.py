"""EXIF and XMP items of a HEIF/HEIC/AVIF file, found without any image decoder.

HEIF keeps metadata as *items*: the ``meta`` box lists them (``iinf``: an ``Exif`` item, or a
``mime`` item of type ``application/rdf+xml`` for XMP) and says where their bytes lie
(``iloc``: extents in the file, or in the ``idat`` box). Reading those two tables is enough
to hand the EXIF and XMP to the usual readers, so a phone photo's provenance is read even
where its pixels cannot be decoded. Every count and offset is bounded by the bytes present.
"""

from __future__ import annotations

import struct

from forensics_app.core.provenance.limits import MAX_BOXES, MAX_XMP_BYTES

MAX_ITEMS = 4096
MAX_EXIF_BYTES = 4 << 20


def _boxes(data: bytes, start: int, end: int):
    pos, count = start, 0
    while pos + 8 <= end and count < MAX_BOXES:
        count += 1
        size, btype = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack(">Q", data[pos + 8:pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield btype, pos + header, pos + size
        pos += size


def _uint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    if size == 0:
        return 0, pos
    if pos + size > len(data):
        raise ValueError("iloc entry runs past the box")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def _iinf(data: bytes, start: int, end: int) -> dict[int, tuple[str, str]]:
    """item id -> (item type, content type) from the item information box."""
    version = data[start]
    pos = start + 4 + (2 if version == 0 else 4)
    items: dict[int, tuple[str, str]] = {}
    for btype, s, e in _boxes(data, pos, end):
        if btype != b"infe" or len(items) >= MAX_ITEMS:
            continue
        v = data[s]
        if v < 2:
            continue
        p = s + 4
        if v == 2:
            (item_id,) = struct.unpack(">H", data[p:p + 2])
            p += 2
        else:
            (item_id,) = struct.unpack(">I", data[p:p + 4])
            p += 4
        p += 2  # protection index
        item_type = data[p:p + 4].decode("latin-1")
        p += 4
        name_end = data.find(b"\x00", p, e)
        p = e if name_end < 0 else name_end + 1
        content_type = ""
        if item_type == "mime":
            ct_end = data.find(b"\x00", p, e)
            content_type = data[p:ct_end if ct_end >= 0 else e].decode("latin-1")
        items[item_id] = (item_type, content_type)
    return items


def _iloc(data: bytes, start: int, end: int) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """item id -> (construction method, [(offset, length), ...])."""
    version = data[start]
    pos = start + 4
    sizes = data[pos:pos + 2]
    offset_size, length_size = sizes[0] >> 4, sizes[0] & 15
    base_size, index_size = sizes[1] >> 4, (sizes[1] & 15 if version in (1, 2) else 0)
    pos += 2
    count, pos = _uint(data, pos, 2 if version < 2 else 4)
    out: dict[int, tuple[int, list[tuple[int, int]]]] = {}
    for _ in range(min(count, MAX_ITEMS)):
        item_id, pos = _uint(data, pos, 2 if version < 2 else 4)
        method = 0
        if version in (1, 2):
            flags, pos = _uint(data, pos, 2)
            method = flags & 15
        pos += 2  # data reference index
        base, pos = _uint(data, pos, base_size)
        n_extents, pos = _uint(data, pos, 2)
        extents = []
        for _ in range(min(n_extents, 64)):
            _index, pos = _uint(data, pos, index_size)
            off, pos = _uint(data, pos, offset_size)
            length, pos = _uint(data, pos, length_size)
            extents.append((base + off, length))
        if pos > end:
            break
        out[item_id] = (method, extents)
    return out


def metadata_items(data: bytes, notes: list[str]) -> tuple[bytes | None, list[bytes]]:
    """(EXIF TIFF bytes or None, XMP packets) of the file's ``meta`` box."""
    meta = next(((s, e) for t, s, e in _boxes(data, 0, len(data)) if t == b"meta"), None)
    if meta is None:
        return None, []
    start, end = meta[0] + 4, meta[1]  # meta is a FullBox
    children = {t: (s, e) for t, s, e in _boxes(data, start, end)}
    if b"iinf" not in children or b"iloc" not in children:
        return None, []
    try:
        items = _iinf(data, *children[b"iinf"])
        locations = _iloc(data, *children[b"iloc"])
    except (ValueError, IndexError, struct.error) as exc:
        notes.append(f"HEIF item tables unreadable: {exc}")
        return None, []
    idat = children.get(b"idat")
    exif, xmp = None, []
    for item_id, (item_type, content_type) in items.items():
        wanted = item_type == "Exif" or (item_type == "mime" and "rdf+xml" in content_type)
        if not wanted or item_id not in locations:
            continue
        method, extents = locations[item_id]
        limit = MAX_EXIF_BYTES if item_type == "Exif" else MAX_XMP_BYTES
        base = 0 if method == 0 else idat[0] if (method == 1 and idat) else None
        if base is None:
            notes.append(f"HEIF {item_type} item stored by reference; not read")
            continue
        body = b"".join(data[base + off:base + off + length] for off, length in extents)[:limit]
        if item_type == "Exif" and len(body) > 4:
            (skip,) = struct.unpack(">I", body[:4])
            exif = exif or body[4 + skip:]
        elif item_type == "mime":
            xmp.append(body)
    return exif, xmp
