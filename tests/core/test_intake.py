"""Evidence intake: awkward and hostile files become error rows; evidence is never touched."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from forensics_app.core.loading import ImageLoadError, decode_image, load_evidence, sniff_format
from forensics_app.core.results import Verdict
from forensics_app.core.scan import discover_files, scan_files
from helpers import make_image, make_images


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, with a token IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _scan_one(path: Path, detector) -> object:
    (result,) = scan_files([path], detector)
    return result


def _assert_error(result, fragment: str) -> None:
    assert not result.ok
    assert result.verdict is Verdict.ERROR and result.prob_fake is None
    assert fragment in result.error, result.error


def test_zero_byte_file(tmp_path, tiny_detector):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    result = _scan_one(path, tiny_detector)
    _assert_error(result, "empty file")
    assert result.bytes == 0 and result.sha256 == hashlib.sha256(b"").hexdigest()


def test_truncated_jpeg(tmp_path, tiny_detector):
    whole = tmp_path / "whole.jpg"
    make_image((128, 128), 1).save(whole, quality=95)
    data = whole.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    result = _scan_one(path, tiny_detector)
    _assert_error(result, "truncated")
    assert result.format == "JPEG"  # sniffed from the bytes that are there
    assert result.sha256 == hashlib.sha256(data[: len(data) // 2]).hexdigest()


def test_text_renamed_to_jpg(tmp_path, tiny_detector):
    path = tmp_path / "notes.jpg"
    path.write_text("this is a shopping list, not a photo\n" * 5)
    _assert_error(_scan_one(path, tiny_detector), "not an image")


def test_one_pixel_image_is_upscaled_and_noted(tmp_path, tiny_detector):
    path = tmp_path / "dot.png"
    make_image((1, 1), 0).save(path)
    result = _scan_one(path, tiny_detector)
    assert result.ok and 0.0 <= result.prob_fake <= 1.0
    assert (result.width, result.height) == (1, 1)
    assert any("upscaled 1x1 -> 64x64" in n for n in result.notes), result.notes


def test_decompression_bomb_header_is_refused_without_decoding(tmp_path, tiny_detector):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 30 GB if decoded as RGB
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = _scan_one(path, tiny_detector)
    elapsed = time.perf_counter() - t0
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    _assert_error(result, "decompression bomb")
    assert result.format == "PNG" and result.bytes == path.stat().st_size
    assert elapsed < 5.0 and rss_growth_mib < 200


def test_own_pixel_limit_is_applied_before_decoding(tmp_path):
    data = _png_header_only(400, 300)
    with pytest.raises(ImageLoadError, match=r"400x300 = 120,000 pixels, over the 100,000"):
        decode_image(data, "big.png", max_pixels=100_000)


def test_animated_gif_scores_the_first_frame(tmp_path, tiny_detector):
    frames = [make_image((80, 72), seed).convert("P", palette=1) for seed in (10, 11, 12)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    first = tmp_path / "first_frame.png"
    frames[0].convert("RGB").save(first)

    anim, still = scan_files([gif, first], tiny_detector)
    assert anim.ok and anim.format == "GIF"
    assert any("3 frames" in n and "first frame" in n for n in anim.notes), anim.notes
    assert anim.prob_fake == pytest.approx(still.prob_fake, abs=1e-6)


def test_directory_named_like_an_image(tmp_path, tiny_detector):
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    _assert_error(_scan_one(folder, tiny_detector), "is a directory")
    assert discover_files([tmp_path]) == []  # not picked up when listing the parent


def test_missing_path(tmp_path, tiny_detector):
    _assert_error(_scan_one(tmp_path / "gone.png", tiny_detector), "not found")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path, tiny_detector):
    path = tmp_path / "locked.png"
    make_image((64, 64), 0).save(path)
    path.chmod(0)
    try:
        _assert_error(_scan_one(path, tiny_detector), "permission denied")
    finally:
        path.chmod(0o644)


def test_bad_files_do_not_stop_the_scan(tmp_path, tiny_detector):
    good = make_images(tmp_path / "good", 3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files = [good[0], bad, good[1], tmp_path / "missing.jpg", good[2]]
    results = scan_files(files, tiny_detector, None)
    assert [r.path for r in results] == [str(f) for f in files]
    assert [r.ok for r in results] == [True, False, True, False, True]


def test_unicode_paths(tmp_path, tiny_detector):
    folder = tmp_path / "證據 ✓ Beweisstück"
    folder.mkdir()
    path = folder / "фото_😀 (1).png"
    make_image((72, 64), 5).save(path)
    (result,) = scan_files(discover_files([folder]), tiny_detector)
    assert result.ok and result.path == str(path) and result.file_name == "фото_😀 (1).png"


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_hashes_equal_sha256sum(tmp_path, tiny_detector):
    files = make_images(tmp_path / "imgs", 4)
    empty = tmp_path / "imgs" / "empty.jpg"
    empty.write_bytes(b"")
    files.append(empty)
    out = subprocess.run(["sha256sum", *map(str, files)], capture_output=True, text=True,
                         check=True).stdout
    expected = {line.split(None, 1)[1].strip(): line.split()[0] for line in out.splitlines()}
    results = scan_files(files, tiny_detector)
    assert {r.path: r.sha256 for r in results} == expected
    assert all(r.bytes == Path(r.path).stat().st_size for r in results)


def test_scanned_files_are_not_modified(tmp_path, tiny_detector):
    folder = tmp_path / "evidence"
    make_images(folder, 6)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    old = 1_500_000_000_000_000_000  # 2017: a recognisable, non-current mtime
    for f in folder.iterdir():
        os.utime(f, ns=(old, old))
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns, f.stat().st_size, f.stat().st_mode)
              for f in folder.iterdir()}

    results = scan_files(discover_files([folder]), tiny_detector)
    assert len(results) == 7 and sum(r.ok for r in results) == 6

    after = {f: (f.read_bytes(), f.stat().st_mtime_ns, f.stat().st_size, f.stat().st_mode)
             for f in folder.iterdir()}
    assert after == before  # same files (nothing added), same bytes, same mtimes


def test_evidence_records_file_facts(tmp_path):
    path = tmp_path / "photo.jpg"
    make_image((120, 90), 2).convert("L").save(path, quality=90)
    evidence, img, err = load_evidence(path)
    assert err is None and img.mode == "RGB"
    assert (evidence.format, evidence.width, evidence.height, evidence.mode) == ("JPEG", 120, 90, "L")
    assert evidence.n_bytes == path.stat().st_size
    assert evidence.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_discovery_by_content_recursion_and_dedup(tmp_path):
    root = tmp_path / "case"
    (root / "sub").mkdir(parents=True)
    make_image((64, 64), 0).save(root / "a.png")
    make_image((64, 64), 1).save(root / "no_extension", format="PNG")  # found by its bytes
    make_image((64, 64), 2).save(root / "sub" / "b.jpg")
    make_image((64, 64), 3).save(root / ".hidden.png")
    (root / "notes.txt").write_text("not an image")

    flat = discover_files([root])
    assert [p.name for p in flat] == ["a.png", "no_extension"]
    deep = discover_files([root], recursive=True)
    assert [p.name for p in deep] == ["a.png", "no_extension", "b.jpg"]
    again = discover_files([root / "a.png", root, root / "a.png"])
    assert [p.name for p in again] == ["a.png", "no_extension"]
    # A file named explicitly is kept even if it is not an image: it becomes an error row.
    assert discover_files([root / "notes.txt"]) == [root / "notes.txt"]


def test_sniff_format():
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + b"\0" * 8) == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0" + b"\0" * 12) == "JPEG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert sniff_format(np.zeros(16, np.uint8).tobytes()) is None
