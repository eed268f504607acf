"""Error rows in the analyst's language: what is wrong with the file, not a Python traceback.

A decoder handed bytes that contradict their own header fails deep inside its parser with
whatever Python raises there -- ``struct.error: unpack_from requires a buffer of at least 8
bytes``, ``TypeError: '>' not supported between instances of 'bytes' and 'int'``,
``IndexError``... Those say nothing to an examiner. Such failures are put in plain words
first; the decoder and its own message follow in brackets, for whoever reports the file.
"""

from __future__ import annotations

import struct

# What a parser raises when the structure it reads is not the one declared: truncated
# tables (struct.error, IndexError), a field of the wrong type (TypeError), a missing entry
# (KeyError), a zero count or scale (ZeroDivisionError), an absurd value (OverflowError),
# a self-referencing structure (RecursionError), a missing attribute of a half-read object.
DAMAGED_STRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    struct.error, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError,
    RecursionError, AttributeError, UnicodeError, ValueError, EOFError, SyntaxError)

DAMAGED_STRUCTURE = "the file's structure is damaged or not what its header declares"


def _detail(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def damaged_structure(decoder: str | None, exc: BaseException) -> str:
    """``the file's structure is damaged or not what its header declares (decoder: TIFF
    reader; struct.error: ...)``; not scored."""
    who = f"{decoder} reader" if decoder else "image reader"
    return f"{DAMAGED_STRUCTURE} (decoder: {who}; {_detail(exc)}); not scored"


def unexpected_failure(exc: BaseException) -> str:
    """A failure no rule explains: said as such, with the detail to report it."""
    if isinstance(exc, DAMAGED_STRUCTURE_ERRORS):
        return damaged_structure(None, exc)
    return (f"this file could not be processed: an unexpected failure while reading it "
            f"({_detail(exc)}); not scored -- please report this file")
