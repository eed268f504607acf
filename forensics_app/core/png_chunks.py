"""Walk a PNG's chunks without decoding anything: count a chunk type, or drop some types.

Used at intake to keep a PNG's pixels scoreable when its metadata is hostile (a zlib bomb in
a zTXt, iTXt or iCCP chunk makes Pillow refuse the whole file), and to count an APNG's real
frames instead of trusting its acTL header. Linear in the number of chunks; a malformed
chain simply ends the walk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that only carry metadata (text, ICC profile, EXIF): the pixels never need them.
METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf"})


def iter_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each chunk (start at its length field, end after its CRC)."""
    if not data.startswith(PNG_SIGNATURE):
        return
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end


def count_png_chunks(data: bytes, kind: bytes) -> int:
    return sum(1 for k, _, _ in iter_chunks(data) if k == kind)


def strip_png_chunks(data: bytes, kinds: frozenset[bytes]) -> tuple[bytes, list[str]]:
    """The PNG without chunks of ``kinds`` (CRCs of the kept chunks are untouched), and the
    names of the dropped chunks."""
    kept, dropped = [PNG_SIGNATURE], []
    for kind, start, end in iter_chunks(data):
        if kind in kinds:
            dropped.append(kind.decode("latin-1"))
        else:
            kept.append(data[start:end])
    return b"".join(kept), dropped


def make_chunk(kind: bytes, payload: bytes) -> bytes:
    """A well-formed chunk (for tests and tools that build PNGs)."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
