"""Issue 22, items 5-10 and 16: every decode has a budget, checked before it starts, and a
refusal names the budget. Each test builds its own hostile file (tiny: limits are lowered
where the real attack would need megabytes)."""

from __future__ import annotations

import io
import struct
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from forensics_app.core import read_budget
from forensics_app.core.bomb_guard import DecodeLimits, count_jpeg_scans, count_tiff_pages
from forensics_app.core.discovery import discover
from forensics_app.core.loading import ImageLoadError, decode_image, load_evidence
from forensics_app.core.padding import _eoi_offset
from forensics_app.core.png_chunks import make_chunk


def _noise_jpeg(side: int = 8, progressive: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(
        buf, "JPEG", progressive=progressive)
    return buf.getvalue()


def _claiming(data: bytes, side: int) -> bytes:
    """The JPEG with its frame header patched to claim ``side`` x ``side``."""
    out = bytearray(data)
    sof = max(out.find(b"\xff\xc0"), out.find(b"\xff\xc2"))
    struct.pack_into(">HH", out, sof + 5, side, side)
    return bytes(out)


# ------------------------------------------------------------------ 5. padding, 0xFF before EOI
@pytest.mark.parametrize("fill", [b"", b"\xff", b"\xff\xff\xff"])
def test_padded_jpeg_is_refused_whatever_fill_precedes_the_eoi(fill):
    data = _claiming(_noise_jpeg(), 1024)
    data = data[:-2] + fill + data[-2:]
    with pytest.raises(ImageLoadError, match="mostly decoder padding"):
        decode_image(data, "padded.jpg")


def test_junk_goes_before_the_fill_bytes():
    data = b"\xff\xd8\xff\xda\x00\x02\x11\x22\xff\xff\xff\xd9"
    assert _eoi_offset(data) == 8


def test_partly_padded_jpeg_is_scored_with_a_note():
    """Ordinary compression ratio: checked after the decode, at 1/8 scale."""
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    cut = data[: int(len(data) * 0.8)] + b"\xff\xd9"  # entropy data ends early, at an EOI
    img, facts = decode_image(cut, "cut.jpg")
    assert img.size == (256, 256)
    assert any("decoder padding" in n for n in facts["notes"]), facts["notes"]


def test_an_intact_jpeg_has_no_padding_note():
    img, facts = decode_image(_noise_jpeg(64), "ok.jpg")
    assert facts["notes"] == () and img.size == (64, 64)


# ------------------------------------------------------------------ 6. memory per decode
def test_decode_over_the_memory_budget_is_refused_before_decoding():
    data = _claiming(_noise_jpeg(), 2000)  # 2000^2 RGB: 16 MB held
    limits = DecodeLimits(max_decode_bytes=4 * 1024 * 1024)
    reserved = []
    with pytest.raises(ImageLoadError, match=r"rule: memory budget.*one decode may use"):
        decode_image(data, "big.jpg", limits=limits, reserve=reserved.append)
    assert reserved == []  # refused before anything was reserved or decoded


# ------------------------------------------------------------------ 7. stuck reads
def test_a_stuck_read_is_abandoned_at_the_time_budget(tmp_path, monkeypatch):
    path = tmp_path / "stuck.jpg"
    path.write_bytes(_noise_jpeg())
    never = threading.Event()
    real_read = read_budget.os.read

    def blocked_read(fd, n):  # a FUSE/network read that never returns
        never.wait(30)
        return real_read(fd, n)

    monkeypatch.setattr(read_budget.os, "read", blocked_read)
    t0 = time.monotonic()
    with pytest.raises(ImageLoadError, match=r"per-file time budget.*--max-seconds-per-file"):
        load_evidence(path, limits=DecodeLimits(max_seconds_per_file=0.2))
    assert time.monotonic() - t0 < 25  # returned at the budget, not when the read did
    never.set()
    stuck = [t for t in threading.enumerate() if t.name == "intake-read"]
    assert all(t.daemon for t in stuck)


def test_a_never_ending_file_stops_at_the_byte_limit(monkeypatch):
    chunks = iter([b"\xff\xd8\xff" + b"\0" * 61] + [b"\0" * 64] * 1000)
    monkeypatch.setattr(read_budget.os, "read", lambda fd, n: next(chunks))
    monkeypatch.setattr(read_budget.os, "close", lambda fd: None)
    monkeypatch.setattr(read_budget, "CHUNK_BYTES", 64)
    with pytest.raises(read_budget.ReadTooLarge):
        read_budget.read_fd_within(-1, 0, 1000, 5.0)


def test_the_time_budget_is_checked_between_stages():
    with pytest.raises(ImageLoadError, match="over the per-file time budget before decoding"):
        decode_image(_noise_jpeg(), "slow.jpg", deadline=time.monotonic() - 1)


# ------------------------------------------------------------------ 8. CPU bombs
def test_progressive_jpeg_with_thousands_of_scans_is_refused():
    data = _noise_jpeg(16, progressive=True)
    last_sos, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    bomb = data[:eoi] + data[last_sos:eoi] * 500 + data[eoi:]
    assert count_jpeg_scans(bomb, 100) == 101  # counting stops past the limit
    with pytest.raises(ImageLoadError, match=r"rule: JPEG scan limit.*more than 100 scans"):
        decode_image(bomb, "scans.jpg")
    img, _ = decode_image(data, "ok.jpg")  # an ordinary progressive JPEG is fine
    assert img.size == (16, 16)


def test_tiff_with_too_many_pages_is_refused_and_pages_are_counted():
    buf = io.BytesIO()
    frames = [Image.new("L", (4, 4), i * 20) for i in range(6)]
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    data = buf.getvalue()
    assert count_tiff_pages(data, 1024) == 6
    with pytest.raises(ImageLoadError, match=r"rule: TIFF page limit.*more than 5 pages"):
        decode_image(data, "pages.tif", limits=DecodeLimits(max_tiff_pages=5))
    _, facts = decode_image(data, "pages.tif")
    assert facts["n_frames"] == 6


def test_a_looping_tiff_page_chain_ends_the_count():
    head = b"II*\x00" + struct.pack("<I", 8)
    ifd = struct.pack("<H", 0) + struct.pack("<I", 8)  # no entries, next IFD is itself
    assert count_tiff_pages(head + ifd, 1024) == 1


# ------------------------------------------------------------------ 9. zlib bombs in metadata
@pytest.mark.parametrize("chunk", [b"zTXt", b"iTXt", b"iCCP"])
def test_zlib_bomb_in_png_metadata_drops_only_the_metadata(chunk):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, "PNG")
    data = buf.getvalue()
    big = zlib.compress(b"\0" * (4 * 1024 * 1024), 9)  # 4 MB of text in ~4 KB
    payload = {b"zTXt": b"Comment\0\0", b"iTXt": b"Comment\0\1\0\0\0",
               b"iCCP": b"icc\0\0"}[chunk] + big
    bomb = data[:33] + make_chunk(chunk, payload) + data[33:]
    img, facts = decode_image(bomb, "bomb.png")
    assert img.size == (40, 30) and img.getpixel((5, 5)) == (255, 0, 0)
    assert any("PNG metadata not read" in n and chunk.decode() in n for n in facts["notes"])


# ------------------------------------------------------------------ 10. deep folders
def test_deep_folders_are_walked_iteratively_with_a_reported_depth_limit(tmp_path):
    from forensics_app.core import discovery

    deep = tmp_path
    for _ in range(12):
        deep = deep / "d"
    deep.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(deep / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "top.png")
    found = discover([tmp_path], recursive=True, max_depth=5)
    assert [p.name for p in found.files] == ["top.png"]
    (skip,) = [s for s in found.skipped if s.kind == "too-deep"]
    assert "depth limit of 5" in skip.reason
    assert discovery.DEFAULT_MAX_DEPTH >= 64
    all_found = discover([tmp_path], recursive=True)
    assert sorted(p.name for p in all_found.files) == ["top.png", "x.png"]


def test_a_thousand_levels_do_not_crash_discovery(tmp_path):
    import os

    home = os.getcwd()
    os.chdir(tmp_path)  # relative mkdirs keep each path short
    try:
        for _ in range(1100):
            os.mkdir("d")
            os.chdir("d")
        with open("x.png", "wb") as fh:
            Image.new("RGB", (8, 8)).save(fh, "PNG")
    finally:
        os.chdir(home)
    try:
        found = discover([tmp_path], recursive=True)
        assert any(s.kind == "too-deep" for s in found.skipped)
    finally:  # removed bottom-up here: shutil.rmtree itself recurses once per level
        os.chdir(tmp_path)
        for _ in range(1100):
            os.chdir("d")
        os.unlink("x.png")
        for _ in range(1100):
            os.chdir("..")
            os.rmdir("d")
        os.chdir(home)


# ------------------------------------------------------------------ 16. real reasons
def test_corrupt_tiff_and_bm_text_name_the_real_reason():
    with pytest.raises(ImageLoadError, match="TIFF structure not readable"):
        decode_image(b"II*\x00" + b"\x00" * 40, "bad.tif")
    with pytest.raises(ImageLoadError, match="text file that happens to start with 'BM'"):
        decode_image(b"BMW service notes, 2024\nOil change.\n" * 3, "notes.bmp")


def test_apng_frame_count_is_counted_not_claimed():
    buf = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    data = bytearray(buf.getvalue())
    actl = data.find(b"acTL")
    struct.pack_into(">I", data, actl + 4, 0x80000000)  # the header now claims 2^31 frames
    crc = zlib.crc32(bytes(data[actl:actl + 12])) & 0xFFFFFFFF
    struct.pack_into(">I", data, actl + 12, crc)
    _, facts = decode_image(bytes(data), "anim.png")
    assert facts["n_frames"] == 2


@pytest.mark.skipif(sys.platform == "win32", reason="byte file names")
def test_sidecar_tells_an_escaped_byte_from_a_literal_backslash_x(tmp_path):
    import os

    os.mkfifo(tmp_path / "\\xff.txt")  # a literal backslash-x-f-f (FIFOs are listed skipped)
    os.mkfifo(os.fsencode(tmp_path) + b"/\xff.txt")  # the byte 0xFF
    records = [s.record() for s in discover([tmp_path]).skipped]
    escaped = [r for r in records if r.get("path_escaped")]
    literal = [r for r in records if not r.get("path_escaped")]
    assert len(escaped) == 1 and len(literal) == 1
    assert escaped[0]["path"].endswith("\\xff.txt") and literal[0]["path"].endswith("\\xff.txt")


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs")
def test_case_summary_counts_the_rows_actually_stored(tmp_path, tiny_checkpoint, capsys):
    import os

    from forensics_app.cli import main

    Image.new("RGB", (48, 48), "red").save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")  # an error row (no hash), retried by every resume
    argv = [str(tmp_path / "a.png"), str(tmp_path / "pipe.png"), "--model",
            str(tiny_checkpoint), "--case", str(tmp_path / "case"), "-q"]
    main(argv)
    assert "2 new rows stored" in capsys.readouterr().err
    main(argv)  # the error row is scanned again but is no new row
    assert "0 new rows stored" in capsys.readouterr().err


def test_per_file_elapsed_time_excludes_queueing_for_memory(tiny_detector, tmp_path,
                                                            monkeypatch):
    """A file that waits in the memory window is not charged for the wait (a fake clock
    jumps 100 s while the file queues)."""
    from forensics_app.core import scan as scan_module
    from forensics_app.core.scan import ScanOptions, scan_files

    Image.new("RGB", (48, 48), "red").save(tmp_path / "a.png")
    clock = {"now": 1000.0}
    monkeypatch.setattr(scan_module.time, "perf_counter", lambda: clock["now"])
    real_reserve = scan_module._MemoryWindow.reserve

    def slow_reserve(self, index, n):
        clock["now"] += 100.0  # queued behind other images
        real_reserve(self, index, n)

    monkeypatch.setattr(scan_module._MemoryWindow, "reserve", slow_reserve)
    (row,) = scan_files([tmp_path / "a.png"], tiny_detector, ScanOptions(workers=1))
    assert row.ok and row.elapsed_ms < 1000.0, row.elapsed_ms


_STUCK_SCAN = r"""
import os, sys, threading
sys.path.insert(0, sys.argv[1])
from forensics_app.core import read_budget
real_read, never = read_budget.os.read, threading.Event()

def read(fd, n):  # the file named 'stuck' behaves like a FUSE file whose read never returns
    if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "stuck.png":
        never.wait()
    return real_read(fd, n)

read_budget.os.read = read
from forensics_app.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd, SIGTERM")
def test_sigterm_ends_a_scan_stuck_in_a_read_with_its_rows_written(tmp_path, tiny_checkpoint):
    import json
    import signal
    import subprocess
    from pathlib import Path

    folder = tmp_path / "ev"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 60, 0, 0)).save(folder / f"a{i}.png")
    Image.new("RGB", (40, 40)).save(folder / "stuck.png")  # sorted last
    out = tmp_path / "r.jsonl"
    tests_dir = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK_SCAN, tests_dir, str(folder), "--model",
         str(tiny_checkpoint), "--jsonl", str(out), "--batch-size", "1", "--workers", "1",
         "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the three readable files are in the report
            if out.exists() and len(out.read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # the read budget is 120 s: this is SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["file_name"] for r in rows)[:3] == ["a0.png", "a1.png", "a2.png"]
    meta = json.loads((tmp_path / "r.jsonl.meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["completed"] is False
    assert "interrupted" in err and "Traceback" not in err
