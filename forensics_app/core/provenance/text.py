"""Text helpers shared by the readers: decoding, capping, and error wording."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from forensics_app.core.provenance.limits import MAX_JSON_DEPTH, SUMMARY_FIELD_CHARS

_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def decode_text(raw: bytes) -> str:
    """UTF-16 when the bytes are (a BOM, or NULs on alternate bytes), else UTF-8 when it is,
    else Latin-1 (every byte maps; nothing is lost)."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw[2:].decode("utf-16-le" if raw[:2] == b"\xff\xfe" else "utf-16-be", "replace")
    if len(raw) >= 4 and _alternate_nuls(raw[:4096]):
        return raw.decode(utf16_order(raw), "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1", "replace")


def _alternate_nuls(sample: bytes) -> bool:
    """Text with NULs on (nearly) every other byte and nowhere else: UTF-16 of Latin script."""
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    return max(even, odd) >= 0.4 * (len(sample) // 2) and min(even, odd) <= 0.05 * len(sample)


# blocks where real text lives: Latin, Greek, Cyrillic, CJK, kana, Hangul, their punctuation
_COMMON = ((0x20, 0x24F), (0x370, 0x52F), (0x2000, 0x206F), (0x3000, 0x30FF),
           (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xFF00, 0xFFEF))


def _common_chars(text: str) -> int:
    return sum(1 for ch in text if any(lo <= ord(ch) <= hi for lo, hi in _COMMON))


def utf16_order(body: bytes, hint: str | None = None) -> str:
    """The byte order of BOM-less UTF-16, read from the bytes themselves.

    NULs tell first (Latin text has them on the high byte: even offsets for big-endian);
    without them (CJK text) the order whose reading falls in the blocks real text uses; a
    tie goes to ``hint`` (the container's own byte order), else big-endian (the default of
    the Unicode standard for unmarked UTF-16).
    """
    sample = body[:4096]
    sample = sample[:len(sample) & ~1]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if even != odd:
        return "utf-16-be" if even > odd else "utf-16-le"
    be = _common_chars(sample.decode("utf-16-be", "replace"))
    le = _common_chars(sample.decode("utf-16-le", "replace"))
    if be != le:
        return "utf-16-be" if be > le else "utf-16-le"
    return hint or "utf-16-be"


def cap(text: str | None, limit: int = SUMMARY_FIELD_CHARS) -> str:
    """At most ``limit`` characters, an ellipsis marking a cut."""
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str) -> str:
    """Metadata is attacker-controlled: no newlines, controls or bidi overrides in a summary."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                   for ch in text)


def reason(exc: BaseException) -> str:
    """An exception as words an analyst can use: its message, never an object's repr."""
    text = _REPR.sub("the file's bytes", str(exc)).strip()
    if not text:
        return type(exc).__name__
    return text[:300]


def _depth(value: Any, limit: int) -> int:
    stack, deepest = [(value, 1)], 1
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def load_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it holds none (not JSON, not an object).

    Raises ValueError only for text that starts like a JSON object but is not one, so the
    caller can say "looks like generator metadata but is unreadable".
    """
    body = text.strip().strip("\x00").strip()
    if not body.startswith("{"):
        return None
    try:
        value = json.loads(body)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at character {exc.pos})") from exc
    if not isinstance(value, dict):
        return None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels")
    return value


def scalar(value: Any, limit: int = 200) -> str | None:
    """A JSON scalar as text (numbers, strings), None for anything else or empty."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text[:limit] or None
    return None
