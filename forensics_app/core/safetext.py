"""Text that evidence controls (file names, metadata, decoder messages), made safe to show.

The one escaping module for every output: terminal, CSV/JSONL, HTML, PDF and the GUI.

File names are bytes on POSIX; Python hands undecodable ones over as lone surrogates
(``surrogateescape``), which UTF-8 writers refuse. A name may also hold characters that
change how the text *around* it is drawn or interpreted: C0/C1 controls (newline, ESC, BEL),
bidirectional overrides and isolates (U+202E makes "gpj.exe" read "exe.jpg" and can mirror
a verdict or a SHA-256 printed after it), line/paragraph separators (U+2028/2029).

One rule, :func:`escape_text`, used by every output:

* text with none of those is returned unchanged (the common case costs nothing);
* otherwise every backslash is doubled, each undecodable byte is written ``\\xNN``, each
  unsafe character ``\\n``/``\\r``/``\\t``, ``\\xNN`` (ASCII controls) or ``\\uNNNN``, so
  the escape is *visible* and :func:`unescape_text` gives back the exact bytes.

Whether a text was escaped is told by :func:`needs_escape` on the original (exports add a
note to such rows), so a literal ``\\x41`` in a plain name is never mistaken for an escape.
:func:`html_text` additionally marks each escape so a reader sees it, and :func:`isolate`
keeps right-to-left letters in a name from reordering the text beside it.
:func:`spreadsheet_safe` is the CSV formula guard.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from collections.abc import Iterator

_SURROGATE = re.compile("[\udc80-\udcff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NAMED_BACK = {"n": "\n", "r": "\r", "t": "\t"}
_ESCAPE = re.compile(r"\\(\\|[nrt]|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")
# Joiners shape scripts (Persian, Indic) and emoji; they reorder nothing.
_KEEP_FORMAT = {"\u200c", "\u200d"}
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
# Characters a spreadsheet may treat as the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def _is_unsafe(ch: str) -> bool:
    if ch.isprintable() and ch not in "\u2028\u2029":
        return False  # fast path: letters, digits, spaces, symbols
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in _KEEP_FORMAT


def has_undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not valid UTF-8 (surrogate escapes)."""
    return bool(_SURROGATE.search(text))


def needs_escape(text: str) -> bool:
    """True when :func:`escape_text` would change ``text``."""
    return any(_is_unsafe(ch) for ch in text)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _segments(text: str) -> Iterator[tuple[bool, str]]:
    """``(is_escape, text)`` pieces of the escaped form of ``text`` (which needs escaping)."""
    plain: list[str] = []
    for ch in text:
        if _is_unsafe(ch):
            if plain:
                yield False, "".join(plain)
                plain.clear()
            yield True, _escape_char(ch)
        else:
            plain.append("\\\\" if ch == "\\" else ch)
    if plain:
        yield False, "".join(plain)


def escape_text(text: object) -> str:
    """``text`` unchanged when safe; otherwise with every unsafe character visibly escaped."""
    s = "" if text is None else str(text)
    if not needs_escape(s):
        return s
    return "".join(piece for _esc, piece in _segments(s))


def unescape_text(text: str) -> bytes:
    """The exact bytes (UTF-8, undecodable bytes as they were) of an escaped text."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        token = m.group(1)
        if token == "\\":
            out += b"\\"
        elif token in _NAMED_BACK:
            out += _NAMED_BACK[token].encode()
        elif m.group(2):
            out += bytes([int(m.group(2), 16)])
        else:
            out += chr(int(m.group(3) or m.group(4), 16)).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


def escape_for_terminal(text: object) -> str:
    """What a terminal may print: :func:`escape_text` (no ESC, no reordering, one line)."""
    return escape_text(text)


def isolate(text: str) -> str:
    """Already-escaped text wrapped in a first-strong isolate (U+2068 … U+2069).

    A name of right-to-left letters then cannot reorder the verdict or the hash next to it;
    used where markup has no ``<bdi>`` (Qt's rich text, plain text in the GUI). Text with
    no right-to-left letter is returned as it is (nothing to isolate, nothing invisible
    added to what is copied).
    """
    if not any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        return text
    return f"\u2068{text}\u2069"


def html_text(text: object) -> str:
    """HTML for evidence text: escaped, each escape shown in a marked span.

    The caller wraps names in ``<bdi>`` (browsers) so right-to-left letters stay in place.
    """
    s = "" if text is None else str(text)
    if not needs_escape(s):
        return html.escape(s, quote=True)
    return "".join(f"<span class='ctl'>{html.escape(piece)}</span>" if esc
                   else html.escape(piece, quote=True) for esc, piece in _segments(s))


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet cannot run: formula-like text (also after leading whitespace or
    a line break) gets a leading apostrophe."""
    stripped = value.lstrip(" \u00a0\u3000\t\r\n\v\f")
    if value.startswith(_FORMULA_START) or (stripped != value
                                            and stripped.startswith(_FORMULA_START)):
        return "'" + value
    return value


# -- compatibility names (the rule above covers them) -------------------------------------
def escape_undecodable(text: str) -> str:
    """Undecodable bytes as ``\\xNN`` (backslashes doubled then); other text unchanged.

    Kept for callers that must keep control characters (none should: prefer
    :func:`escape_text`).
    """
    if not has_undecodable(text):
        return text
    text = text.replace("\\", "\\\\")
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def unescape_undecodable(text: str) -> bytes:
    """The original bytes of a name written escaped (see :func:`unescape_text`)."""
    return unescape_text(text)


def fspath_text(path: os.PathLike | str) -> str:
    """A path as report text (see :func:`escape_text`)."""
    return escape_text(os.fspath(path))
