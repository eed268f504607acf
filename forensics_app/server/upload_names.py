"""An upload's file name, read the way the CLI reads a name on disk.

A multipart ``filename`` is raw bytes. Starlette decodes them as UTF-8 and, when they are
not, as Latin-1 -- so bytes ``FF FE`` came back as ``ÿþ``, a name the examiner cannot tell
from a real ``ÿþ`` and cannot map back to the bytes the client sent. Here the raw bytes are
decoded as a file name on disk is (UTF-8, undecodable bytes kept as surrogates,
``os.fsdecode`` on POSIX), so every answer, row and report escapes them reversibly as
``\\xff\\xfe`` (core.safetext), exactly as ``forensics-scan`` does.
"""

from __future__ import annotations


def upload_name(content_disposition: bytes, fallback: str) -> str:
    """The part's ``filename`` parameter, UTF-8 with undecodable bytes kept (surrogates);
    ``fallback`` (Starlette's decoding) when the header cannot be read again."""
    try:
        from python_multipart.multipart import parse_options_header
    except ImportError:  # pragma: no cover - older python-multipart
        try:
            from multipart.multipart import parse_options_header
        except ImportError:
            return fallback
    try:
        _disposition, options = parse_options_header(content_disposition)
    except Exception:  # noqa: BLE001 -- Starlette already parsed it once; keep its answer
        return fallback
    raw = options.get(b"filename")
    if not isinstance(raw, bytes | bytearray):
        return fallback
    return bytes(raw).decode("utf-8", "surrogateescape")
