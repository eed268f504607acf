"""Text from evidence (file names, decoder messages) made safe to write and to print.

File names are bytes on POSIX; Python hands undecodable ones over as lone surrogates
(``surrogateescape``), which UTF-8 writers refuse. Two rules, used by every output:

* reports (:func:`escape_undecodable`): a name that is valid UTF-8 is written unchanged; a name
  with bytes that are not is written with each such byte as ``\\xNN`` and every literal
  backslash doubled, so :func:`unescape_undecodable` gives back the exact bytes;
* the terminal (:func:`escape_for_terminal`): additionally every control character (newline,
  ESC, DEL, C1, bidirectional overrides) is shown as ``\\n``/``\\xNN``/``\\uNNNN``, so a file
  name can neither fake a result line nor drive the terminal.
"""

from __future__ import annotations

import os
import re
import unicodedata

_SURROGATE = re.compile("[\udc80-\udcff]")
_ESCAPED_BYTE = re.compile(r"\\(\\|x([0-9a-fA-F]{2}))")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def has_undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not valid UTF-8 (surrogate escapes)."""
    return bool(_SURROGATE.search(text))


def escape_undecodable(text: str) -> str:
    """Undecodable bytes as ``\\xNN`` (backslashes doubled then); other text unchanged."""
    if not has_undecodable(text):
        return text
    text = text.replace("\\", "\\\\")
    return _SURROGATE.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def unescape_undecodable(text: str) -> bytes:
    """The original bytes of a name written by :func:`escape_undecodable` (with escapes)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPED_BYTE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        out += b"\\" if m.group(1) == "\\" else bytes([int(m.group(2), 16)])
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _is_unsafe_for_terminal(ch: str) -> bool:
    # Cc: C0/C1 controls and DEL; Cf: format characters such as RLO (U+202E) that reorder text.
    return unicodedata.category(ch) in ("Cc", "Cf") and ch != "\u200d"


def escape_for_terminal(text: object) -> str:
    """``text`` with undecodable bytes and every control/format character escaped."""
    s = escape_undecodable(str(text))
    if all(not _is_unsafe_for_terminal(ch) for ch in s):
        return s
    return "".join(_escape_char(ch) if _is_unsafe_for_terminal(ch) else ch for ch in s)


def fspath_text(path: os.PathLike | str) -> str:
    """A path as report text (see :func:`escape_undecodable`)."""
    return escape_undecodable(os.fspath(path))
