"""Issue 22 item 16: libtiff's C-level messages name their file (a row note), not stderr."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from forensics_app.core import libtiff_messages
from forensics_app.core.warning_capture import file_warnings


def _corrupt_deflate_tiff(path):
    """A deflate TIFF whose compressed strip is scrambled: libtiff's ZIPDecode complains."""
    img = Image.effect_noise((64, 64), 50).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "TIFF", compression="tiff_deflate")
    data = bytearray(buf.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as probe:
        offset, count = probe.tag_v2[273][0], probe.tag_v2[279][0]
    for i in range(offset + 10, offset + count - 5):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def routed():
    with file_warnings():
        pass  # installs the handlers
    if not libtiff_messages.installed():
        pytest.skip("this Pillow's libtiff exports no message handlers")


def test_libtiff_message_goes_to_the_decoding_threads_sink(routed, tmp_path, capfd):
    path = _corrupt_deflate_tiff(tmp_path / "bad.tif")
    with file_warnings() as caught, pytest.raises(OSError):
        with Image.open(path) as img:
            img.load()
    assert any(m.startswith("libtiff error: ZIPDecode: Decoding error") for m in caught), caught
    assert "ZIPDecode" not in capfd.readouterr().err


def test_each_corrupt_tiff_row_names_its_own_libtiff_error(routed, tiny_detector, tmp_path,
                                                          capfd):
    from forensics_app.core.results import Verdict
    from forensics_app.core.scan import ScanOptions, scan_files
    from helpers import make_images

    files = [_corrupt_deflate_tiff(tmp_path / f"bad_{i}.tif") for i in range(3)]
    files += make_images(tmp_path / "clean", 1)
    results = scan_files(files, tiny_detector, ScanOptions(batch_size=2, workers=2))
    for r in results[:3]:
        assert r.verdict is Verdict.ERROR
        assert any(n.startswith("decoder warning: libtiff error: ZIPDecode:") for n in r.notes), (
            r.notes)
    assert not any("libtiff" in n for n in results[3].notes)
    assert "ZIPDecode" not in capfd.readouterr().err


def test_a_message_outside_any_file_is_logged_not_printed(routed, tmp_path, caplog):
    path = _corrupt_deflate_tiff(tmp_path / "bad.tif")
    with caplog.at_level("WARNING", logger="forensics_app.core.libtiff_messages"):
        with pytest.raises(OSError), Image.open(path) as img:
            img.load()
    assert any("ZIPDecode" in r.getMessage() and "not while reading a file" in r.getMessage()
               for r in caplog.records)


def test_a_second_decode_logs_under_the_files_name(routed, tmp_path, caplog, capfd):
    """Previews, heatmaps and report pictures decode a file again: its libtiff message is
    logged with its (escaped) name, not printed to stderr without one."""
    import logging

    from forensics_app.core.warning_capture import logged_file_warnings

    path = _corrupt_deflate_tiff(tmp_path / "bad\x1b[2J.tif")
    log = logging.getLogger("test.preview")
    with caplog.at_level("DEBUG", logger="test.preview"):
        with pytest.raises(OSError), logged_file_warnings(path, log), Image.open(path) as img:
            img.load()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.preview"]
    assert len(lines) == 1 and "ZIPDecode" in lines[0], lines
    assert "bad\\x1b[2J.tif" in lines[0] and "\x1b" not in lines[0]
    assert "ZIPDecode" not in capfd.readouterr().err
