"""EXIF (TIFF IFDs) as Pillow parses them: camera, software, dates, and free text.

Every EXIF string is free text the file's writer chose: Make/Model "name a camera", they do
not prove one. Some generators misuse IFD0 strings (ComfyUI's WebP/JPEG savers write
``workflow:{…}`` / ``prompt:{…}`` into Make, Model and ImageDescription); such values are
handed to the generator parsers as text and never reported as a camera.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from forensics_app.core.provenance.generator_names import match_generator
from forensics_app.core.provenance.limits import (
    EXIF_TEXT_CHARS,
    MAX_TEXT_CHUNK_BYTES,
    STORED_TEXT_CHARS,
)
from forensics_app.core.provenance.records import ExifFindings
from forensics_app.core.provenance.text import reason, utf16_order

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# IFD0 strings that may carry generator text instead of what the tag is for
FREE_TEXT_TAGS = {0x010F: "Make", 0x0110: "Model", 0x010E: "ImageDescription",
                  0x013B: "Artist", 0x8298: "Copyright"}
_XP_TAGS = {0x9C9C: "XPComment", 0x9C9B: "XPTitle", 0x9C9F: "XPSubject", 0x9C9E: "XPKeywords"}
# "workflow: {", "prompt:{", "Prompt: {" or a bare JSON object: generator metadata, not a name
_GENERATOR_LIKE = re.compile(r"^\s*(?:[A-Za-z_ ]{1,24}:\s*)?{")


def exif_string(value: Any, limit: int = EXIF_TEXT_CHARS) -> str | None:
    """An EXIF ASCII value as text: it ends at the first NUL (as the standard says)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("utf-8", "replace")
    text = str(value).split("\x00", 1)[0].strip()
    return text[:limit] or None


def _full_string(value: Any) -> str | None:
    """The whole value (up to a text chunk's size) for the generator parsers."""
    if isinstance(value, bytes):
        value = value[:MAX_TEXT_CHUNK_BYTES].split(b"\x00", 1)[0].decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return value[:MAX_TEXT_CHUNK_BYTES].split("\x00", 1)[0].strip() or None


def user_comment(raw: Any, byte_order: str | None = None) -> str | None:
    """EXIF UserComment: 8-byte charset prefix then text (A1111 writes UTF-16 here).

    ``byte_order``: the TIFF header's ("utf-16-le" for II, "utf-16-be" for MM), used only
    when the text's own bytes do not tell."""
    if isinstance(raw, str):
        return raw.strip("\x00 ") or None
    if not isinstance(raw, bytes) or len(raw) < 8:
        return None
    head, body = raw[:8], raw[8:MAX_TEXT_CHUNK_BYTES]
    if head.startswith(b"UNICODE"):
        # the byte order is not declared: a BOM, else what the bytes themselves say
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            enc, body = ("utf-16-le" if body[:2] == b"\xff\xfe" else "utf-16-be"), body[2:]
        else:
            enc = utf16_order(body, byte_order)
        text = body.decode(enc, "replace")
    else:
        text = body.decode("utf-8", "replace")
    return text.strip("\x00 ") or None


def _byte_order(raw: bytes) -> str | None:
    head = raw[6:8] if raw.startswith(b"Exif\x00\x00") else raw[:2]
    return {b"II": "utf-16-le", b"MM": "utf-16-be"}.get(head)


def _xp_string(value: Any) -> str | None:
    """Windows XP* tags: UTF-16LE bytes (Pillow may hand a tuple of ints)."""
    if isinstance(value, tuple):
        value = bytes(v & 0xFF for v in value if isinstance(v, int))
    if not isinstance(value, bytes):
        return None
    return value[:MAX_TEXT_CHUNK_BYTES].decode("utf-16-le", "replace").split("\x00", 1)[0].strip() \
        or None


def looks_like_generator_text(text: str | None) -> bool:
    return bool(text) and bool(_GENERATOR_LIKE.match(text[:64]))


def read_exif(raw: bytes, notes: list[str]) -> tuple[ExifFindings, list[tuple[str, str]]]:
    """EXIF findings, and the (tag, text) pairs that go to the generator parsers."""
    from PIL import ExifTags, Image

    ex = ExifFindings(present=True)
    texts: list[tuple[str, str]] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = Image.Exif()
            exif.load(raw)
            for tag, name in FREE_TEXT_TAGS.items():
                full = _full_string(exif.get(tag))
                if not full:
                    continue
                if looks_like_generator_text(full):
                    ex.generator_text_in.append(name)
                    texts.append((name, full))
                    continue
                value = full[:EXIF_TEXT_CHARS]
                if name == "ImageDescription":
                    texts.append((name, full))  # Midjourney and others write prompts here
                    ex.image_description = value
                elif name in ("Make", "Model"):
                    setattr(ex, name.lower(), value[:128])
                    if match_generator(value[:128]):  # "OpenAI" / "DALL-E 3": not a camera
                        ex.generator_named_in.append(f"{name}: {value[:128]}")
                elif name == "Artist":
                    ex.artist = value
            ex.software = exif_string(exif.get(0x0131))
            ex.datetime = exif_string(exif.get(0x0132), 64)
            orientation = exif.get(0x0112)
            ex.orientation = orientation if isinstance(orientation, int) else None
            for tag, name in _XP_TAGS.items():
                text = _xp_string(exif.get(tag))
                if text:
                    texts.append((name, text))
            sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
            ex.datetime_original = exif_string(sub.get(0x9003), 64)
            ex.datetime_digitized = exif_string(sub.get(0x9004), 64)
            ex.offset_time = exif_string(sub.get(0x9010), 16)
            ex.offset_time_original = exif_string(sub.get(0x9011), 16)
            ex.offset_time_digitized = exif_string(sub.get(0x9012), 16)
            ex.lens = exif_string(sub.get(0xA434))
            order = _byte_order(raw)
            # UserComment belongs in the Exif IFD; some writers put it in IFD0: read both
            for where, value in (("UserComment", sub.get(0x9286)),
                                 ("IFD0 UserComment", exif.get(0x9286))):
                comment = user_comment(value, order)
                if comment:
                    ex.user_comment = ex.user_comment or comment[:STORED_TEXT_CHARS]
                    texts.append((where, comment))
            ex.gps_present = bool(_GPS_IFD in exif and exif.get_ifd(_GPS_IFD))
            try:
                ex.thumbnail_present = bool(exif.get_ifd(ExifTags.IFD.IFD1))
            except (KeyError, AttributeError):  # no IFD1, or an older Pillow
                ex.thumbnail_present = False
        for w in caught:
            notes.append(f"EXIF partly unreadable: {w.message}")
    except Exception as exc:  # noqa: BLE001 -- bad offsets etc.: a note, never a crash
        ex.error = reason(exc)
        notes.append(f"EXIF present but unreadable: {ex.error}")
    return ex, texts
