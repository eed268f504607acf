"""IPTC-IIM records (JPEG APP13 "Photoshop 3.0", resource 0x0404): captions, credit, program.

IIM is the binary predecessor of IPTC XMP: a run of datasets ``0x1C record dataset length
value``. Only record 2 (application) is reported; like XMP it is unsigned free text.
Midjourney, among others, writes its prompt and "Job ID" into the caption here.
"""

from __future__ import annotations

import struct

from forensics_app.core.provenance.limits import STORED_TEXT_CHARS
from forensics_app.core.provenance.records import IptcIimFindings

DATASETS = {
    5: "ObjectName", 25: "Keywords", 55: "DateCreated", 60: "TimeCreated",
    65: "OriginatingProgram", 70: "ProgramVersion", 80: "By-line", 85: "By-lineTitle",
    105: "Headline", 110: "Credit", 115: "Source", 116: "CopyrightNotice",
    120: "Caption-Abstract", 122: "Writer-Editor",
}
_UTF8_ESCAPES = (b"\x1b%G", b"\x1b%/I")


def read_iim(raw: bytes, notes: list[str], full: dict[str, str] | None = None
             ) -> IptcIimFindings:
    """The IIM findings; ``full``, when given, receives every value uncut (for the parsers).

    The records are bounded by ``MAX_IIM_BYTES`` at intake; values are parsed whole and the
    record keeps ``STORED_TEXT_CHARS`` of each."""
    found = IptcIimFindings(present=True)
    values: dict[str, list[str]] = {}
    utf8 = False
    pos, n = 0, len(raw)
    while pos + 5 <= n:
        if raw[pos] != 0x1C:
            if raw[pos] == 0:  # padding after the last dataset
                break
            found.error = f"IPTC-IIM dataset marker missing at byte {pos}; the rest not read"
            notes.append(found.error)
            break
        record, dataset = raw[pos + 1], raw[pos + 2]
        (size,) = struct.unpack(">H", raw[pos + 3:pos + 5])
        pos += 5
        if size & 0x8000:  # extended length: the next (size & 0x7FFF) bytes hold it
            count = size & 0x7FFF
            if count > 4 or pos + count > n:
                found.error = "IPTC-IIM extended dataset length not readable"
                notes.append(found.error)
                break
            size = int.from_bytes(raw[pos:pos + count], "big")
            pos += count
        value = raw[pos:pos + size]
        if len(value) < size:
            notes.append("IPTC-IIM dataset truncated")
        pos += size
        if record == 1 and dataset == 90:
            utf8 = value in _UTF8_ESCAPES
        elif record == 2 and dataset in DATASETS:
            text = _decode(value, utf8)
            if text:
                values.setdefault(DATASETS[dataset], []).append(text)
    joined = {k: "; ".join(dict.fromkeys(v)) for k, v in values.items()}
    if full is not None:
        full.update(joined)
    found.fields = {k: v[:STORED_TEXT_CHARS] for k, v in joined.items()}
    return found


def _decode(value: bytes, utf8: bool) -> str:
    value = value.split(b"\x00", 1)[0]
    if utf8:
        return value.decode("utf-8", "replace").strip()
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return value.decode("latin-1").strip()
