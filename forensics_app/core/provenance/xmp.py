"""XMP packets (RDF/XML): IPTC digital source type, creator tool, descriptions, provenance URL.

Packets may be UTF-8, UTF-16 (BE/LE, with or without a BOM) or UTF-32; the encoding is
detected from the first bytes, so the NUL that starts a UTF-16BE packet is not stripped. The
XML is parsed by defusedxml with DTDs and entities refused (no entity bombs, no external
fetches). Everything here is unsigned free text.

Values are parsed whole (the packet is bounded by ``MAX_XMP_BYTES``): the generator parsers
get every character through ``full``; the record keeps ``STORED_TEXT_CHARS`` of each value,
and front ends shorten further only for display.
"""

from __future__ import annotations

import re

from forensics_app.core.provenance.generator_names import source_type_code
from forensics_app.core.provenance.limits import MAX_XMP_BYTES, STORED_TEXT_CHARS
from forensics_app.core.provenance.records import XmpFindings
from forensics_app.core.provenance.text import reason

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "dcterms": "http://purl.org/dc/terms/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
    "xmpNote": "http://ns.adobe.com/xmp/note/",
}
# XMP properties worth reporting (prefix:name); values of rdf:Alt/Seq/Bag are joined.
XMP_FIELDS = (
    "Iptc4xmpExt:DigitalSourceType", "Iptc4xmpExt:DigitalSourceFileType", "xmp:CreatorTool",
    "xmp:CreateDate", "xmp:ModifyDate", "photoshop:Credit", "photoshop:Source",
    "photoshop:DateCreated", "dc:creator", "dc:title", "dc:description", "dc:rights",
    "tiff:Make", "tiff:Model", "exif:DateTimeOriginal", "stEvt:softwareAgent",
    "dcterms:provenance", "plus:DataMining", "xmpNote:HasExtendedXMP", "exif:UserComment",
    "tiff:ImageDescription", "tiff:Software",
)
_XMP_KEYS = {f"{{{NS[k.split(':')[0]]}}}{k.split(':')[1]}": k for k in XMP_FIELDS}
# free-text fields the generator parsers also read (Midjourney's "Job ID" description, ...)
TEXT_FIELDS = ("dc:description", "dc:title", "photoshop:Credit", "xmp:CreatorTool",
               "exif:UserComment", "tiff:ImageDescription")


def packet_encoding(raw: bytes) -> str:
    """The encoding of an XMP packet from its first bytes (XMP spec part 3, 1.1.1)."""
    if raw[:4] in (b"\x00\x00\xfe\xff", b"\x00\x00\x00<"):
        return "utf-32-be"
    if raw[:4] in (b"\xff\xfe\x00\x00", b"<\x00\x00\x00"):
        return "utf-32-le"
    if raw[:2] == b"\xfe\xff" or raw[:2] == b"\x00<":
        return "utf-16-be"
    if raw[:2] == b"\xff\xfe" or raw[:2] == b"<\x00":
        return "utf-16-le"
    return "utf-8"


def packet_text(raw: bytes) -> tuple[str, str]:
    """(XML text of the packet, its encoding); trailing padding and junk cut off."""
    raw = raw.lstrip(b" \t\r\n") if raw[:1] != b"\x00" else raw
    enc = packet_encoding(raw)
    text = raw.decode(enc, "replace").lstrip("\ufeff")
    if enc == "utf-8":
        text = text.strip("\x00 \t\r\n")
    end = None
    for m in re.finditer(r"<\?xpacket\s+end=[^>]*\?>|</x:xmpmeta>", text):
        end = m.end()
    if end is not None:
        text = text[:end]
    start = text.find("<")
    return text[start:] if start > 0 else text, enc


def read_xmp(packets: list[bytes], notes: list[str], extended: list[bytes] | None = None,
             full: dict[str, str] | None = None) -> XmpFindings:
    """The XMP findings; ``full``, when given, receives every value uncut (for the parsers)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    xmp = XmpFindings(present=True)
    full = {} if full is None else full
    for i, raw in enumerate(list(packets) + list(extended or [])):
        is_extended = i >= len(packets)
        if len(raw) > MAX_XMP_BYTES:
            notes.append(f"XMP packet of {len(raw):,} bytes over the {MAX_XMP_BYTES:,}-byte limit; "
                         "not parsed")
            continue
        text, enc = packet_text(raw)
        if xmp.encoding is None and not is_extended:
            xmp.encoding = enc
        # an XML declaration naming another encoding would contradict the decoded text
        text = re.sub(r"^<\?xml[^>]*\?>", "", text)
        try:
            root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            xmp.error = f"{type(exc).__name__}: {reason(exc)}"
            notes.append(f"{'extended ' if is_extended else ''}XMP present but unreadable: "
                         f"{xmp.error}")
            continue
        if is_extended:
            xmp.extended_merged = True
        for el in root.iter():
            for attr, value in el.attrib.items():
                key = _XMP_KEYS.get(attr)
                if key:
                    _put(full, key, value)
            key = _XMP_KEYS.get(el.tag) if isinstance(el.tag, str) else None
            if key:
                items = [li.text.strip() for li in el.iter(f"{{{NS['rdf']}}}li")
                         if li.text and li.text.strip()]
                value = "; ".join(items) if items else (el.text or "").strip()
                resource = el.attrib.get(f"{{{NS['rdf']}}}resource")
                _put(full, key, value or resource or "")
    xmp.fields = {k: v[:STORED_TEXT_CHARS] for k, v in full.items()}
    xmp.digital_source_type = source_type_code(xmp.fields.get("Iptc4xmpExt:DigitalSourceType"))
    return xmp


def _put(fields: dict[str, str], key: str, value: str) -> None:
    """Add a value whole; a repeated property's values are joined (the packet bounds them)."""
    value = value.strip()
    if not value:
        return
    old = fields.get(key)
    if old is None:
        fields[key] = value
    elif value not in old.split("; "):
        fields[key] = f"{old}; {value}"


def remote_provenance(xmp: XmpFindings) -> str | None:
    """The dcterms:provenance URL: where a C2PA manifest stored elsewhere can be fetched."""
    value = xmp.fields.get("dcterms:provenance", "")
    for part in value.split("; "):
        if part.startswith(("http://", "https://")):
            return part[:500]
    return None
