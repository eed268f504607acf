"""Issue 11 item 10: reports are ordinary files (umask mode), strict JSON, warnings per file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from forensics_app.core.export import StreamedReport, write_csv, write_jsonl
from forensics_app.core.results import ScanResult, Verdict

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_reports_get_the_mode_open_would_give_not_0600(tmp_path, umask_027):
    rows = [ScanResult(path="a.png", prob_fake=0.9, verdict=Verdict.AI_GENERATED)]
    for out in (write_csv(tmp_path / "r.csv", rows), write_jsonl(tmp_path / "r.jsonl", rows)):
        assert _mode(out) == 0o640, oct(_mode(out))
        assert _mode(f"{out}.meta.json") == 0o640
    streamed = StreamedReport(tmp_path / "s.jsonl")
    streamed.write(rows)
    streamed.close(completed=True)
    assert _mode(tmp_path / "s.jsonl") == _mode(tmp_path / "s.jsonl.meta.json") == 0o640


def test_non_finite_numbers_never_reach_json_lines(tmp_path):
    nan = float("nan")
    row = ScanResult(path="n.png", prob_fake=nan, tile_probs=[0.2, nan, float("inf")],
                     verdict=Verdict.INCONCLUSIVE)
    assert not row.ok
    for out in (write_jsonl(tmp_path / "n.jsonl", [row]), tmp_path / "s.jsonl"):
        if out.name == "s.jsonl":
            streamed = StreamedReport(out)
            streamed.write([row])
            streamed.close(completed=True)
        text = out.read_text()
        assert "NaN" not in text and "Infinity" not in text, text
        record = json.loads(text)
        assert record["prob_fake"] is None and "non-finite score" in record["error"]
        assert record["verdict"] == "Error"
        assert record["tile_probs"] == [0.2, None, None]


def _corrupt_exif_jpeg(path):
    from PIL import Image

    # An IFD entry that claims 12 bytes of data where the segment ends: Pillow warns.
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06"
    Image.new("RGB", (40, 40), "red").save(path, exif=exif)
    return path


def test_decoder_warnings_go_to_each_files_row(tiny_detector, tmp_path, capfd):
    """Every file's own row says what Pillow warned about, not once per process on stderr."""
    from forensics_app.core.scan import ScanOptions, scan_files
    from helpers import make_images

    files = [_corrupt_exif_jpeg(tmp_path / f"exif_{i}.jpg") for i in range(3)]
    files += make_images(tmp_path / "clean", 1)
    results = scan_files(files, tiny_detector, ScanOptions(batch_size=2, workers=2))
    for r in results[:3]:
        assert any(n.startswith("decoder warning: UserWarning: Corrupt EXIF data") for n in r.notes), r.notes
    assert not any("decoder warning" in n for n in results[3].notes)
    assert "Corrupt EXIF" not in capfd.readouterr().err
