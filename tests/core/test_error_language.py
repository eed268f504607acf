"""Error rows say what is wrong with the file, not which Python exception a parser raised;
a float TIFF of NaNs gets a verdict with a note that says how its samples were treated."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from forensics_app.core.failure_text import DAMAGED_STRUCTURE, unexpected_failure
from forensics_app.core.results import Verdict
from forensics_app.core.scan import scan_files

STRIP_OFFSETS = 273
TIFF_ASCII = 2


def _tiff_with_strip_offsets_as_text() -> bytes:
    """A TIFF whose StripOffsets entry claims to be text: Pillow's reader raises
    ``TypeError: 'str' object cannot be interpreted as an integer``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for e in range(struct.unpack_from("<H", data, ifd)[0]):
        pos = ifd + 2 + 12 * e
        if struct.unpack_from("<H", data, pos)[0] == STRIP_OFFSETS:
            struct.pack_into("<H", data, pos + 2, TIFF_ASCII)
    return bytes(data)


def test_a_decoder_tripping_over_its_tables_is_said_in_plain_words(tmp_path, tiny_detector):
    bad = tmp_path / "retyped.tif"
    bad.write_bytes(_tiff_with_strip_offsets_as_text())
    (row,) = scan_files([bad], tiny_detector)
    assert row.verdict is Verdict.ERROR
    assert row.error.startswith(f"{DAMAGED_STRUCTURE} (decoder: TIFF reader; TypeError: ")
    assert row.error.endswith("not scored")


def test_an_unexplained_failure_says_so():
    text = unexpected_failure(RuntimeError("boom"))
    assert text.startswith("this file could not be processed: an unexpected failure")
    assert "RuntimeError: boom" in text
    assert unexpected_failure(struct.error("unpack_from requires a buffer of at least 8 "
                                           "bytes")).startswith(DAMAGED_STRUCTURE)


def test_all_nan_float_tiff_gets_a_verdict_and_a_note(tmp_path, tiny_detector):
    nan = tmp_path / "nan.tif"
    Image.fromarray(np.full((64, 64), np.nan, np.float32), mode="F").save(nan)
    mixed = tmp_path / "mixed.tif"
    arr = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    arr[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    Image.fromarray(arr, mode="F").save(mixed)
    rows = scan_files([nan, mixed], tiny_detector)
    assert all(r.ok and r.verdict is not Verdict.ERROR for r in rows)
    assert ("float image: 4,096 NaN of 4,096 samples are not numbers; scored with NaN and "
            "-inf as black, +inf as white (the whole image is black)") in rows[0].notes
    assert any(n.startswith("float image: 2 NaN and 2 infinite of 4,096") for n in rows[1].notes)
    assert not any("RuntimeWarning" in n for r in rows for n in r.notes)
