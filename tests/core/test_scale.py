"""Scale: the bomb guard's rules, the intake memory window, lazy tiles, OOM in the forward."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from forensics_app.core.bomb_guard import (
    BombRefused,
    DecodeLimits,
    check_declared_image,
    declared_bytes,
)
from forensics_app.core.loading import ImageLoadError, decode_image
from forensics_app.core.preprocess import PreprocessConfig, prepare_image
from forensics_app.core.results import Verdict
from forensics_app.core.scan import ScanOptions, _MemoryWindow, is_out_of_memory, scan_files
from helpers import make_image


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` RGB (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ------------------------------------------------------------------ bomb guard rules

def test_1kb_png_declaring_100000_squared_is_refused_by_ratio_even_under_a_raised_cap():
    data = png_declaring(100_000, 100_000)
    assert len(data) < 1024
    limits = DecodeLimits(max_pixels=20_000_000_000)  # the cap raised out of the way
    with pytest.raises(ImageLoadError) as info:
        decode_image(data, "bomb.png", limits=limits)
    assert "rule: compression ratio" in info.value.reason
    assert "--max-compression-ratio" in info.value.reason


def test_bomb_is_refused_by_the_pixel_cap_first_with_how_to_raise_it():
    with pytest.raises(ImageLoadError) as info:
        decode_image(png_declaring(100_000, 100_000), "bomb.png")
    assert "rule: pixel cap" in info.value.reason and "--max-pixels" in info.value.reason


def test_genuine_144_mp_image_compressing_normally_passes_the_rules():
    # 12000 x 12000 RGB photo as PNG: ~432 MB decoded, a few hundred MB on disk (2:1).
    check_declared_image(12_000, 12_000, "RGB", 200_000_000, DecodeLimits())
    # ...and as a camera JPEG (~10:1).
    check_declared_image(12_000, 12_000, "RGB", 40_000_000, DecodeLimits())
    # A flat PNG at deflate's best (~1032:1) still passes: no genuine PNG does better.
    check_declared_image(12_000, 12_000, "RGB", declared_bytes(12_000, 12_000, "RGB") // 1032,
                         DecodeLimits())


def test_rules_name_themselves():
    with pytest.raises(BombRefused) as info:
        check_declared_image(20_000, 20_000, "RGB", 10**9, DecodeLimits())
    assert info.value.rule == "pixel-cap"
    with pytest.raises(BombRefused) as info:
        check_declared_image(10_000, 10_000, "RGB", 1000, DecodeLimits())
    assert info.value.rule == "compression-ratio"
    # Small decoded size: never refused on ratio, however well it compresses.
    check_declared_image(3000, 3000, "L", 100, DecodeLimits())


def test_pillow_limit_is_not_the_real_limit():
    # 100 MP is above Pillow's 89.5 MP warning and below its 179 MP error: the engine's cap
    # decides. Checked on the header only (decode_image would allocate 400 MB).
    assert Image.MAX_IMAGE_PIXELS is None
    img = Image.open(io.BytesIO(png_declaring(12_000, 12_000)))
    assert img.size == (12_000, 12_000)
    check_declared_image(*img.size, img.mode, 40_000_000, DecodeLimits())


def test_real_image_decodes_under_a_low_floor(tmp_path):
    img = make_image((600, 400), 3)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    limits = DecodeLimits(ratio_floor_bytes=1)
    decoded, facts = decode_image(buf.getvalue(), "ok.png", limits=limits)
    assert decoded.size == (600, 400) and facts["width"] == 600


def test_scan_refusal_is_an_error_row(tmp_path, tiny_detector):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50_000, 50_000))
    opts = ScanOptions(limits=DecodeLimits(max_pixels=10**10))
    (r,) = scan_files([bomb], tiny_detector, opts)
    assert r.verdict is Verdict.ERROR and "rule: compression ratio" in r.error
    assert r.sha256 is not None  # the bytes were read and hashed


# ------------------------------------------------------------------ lazy tiles, memory window

def test_tiles_are_cut_lazily_and_the_decode_is_released():
    img = make_image((1100, 700), 2)
    prep = prepare_image(img, PreprocessConfig(mode="tiles", tile_size=256))
    assert prep.source is img and prep.n_tiles == 15
    first = prep.tile(0)
    assert first.shape == (3, 256, 256) and first.dtype == torch.float32
    prep.release()
    with pytest.raises(RuntimeError):
        prep.tile(1)


def test_memory_window_counts_bytes_and_keeps_file_order():
    window = _MemoryWindow(100)
    window.reserve(0, 60)
    order: list[int] = []

    def later(i: int, n: int) -> None:
        window.reserve(i, n)
        order.append(i)

    t2 = threading.Thread(target=later, args=(2, 10))  # must wait for file 1's turn
    t1 = threading.Thread(target=later, args=(1, 60))  # must wait for room
    t2.start()
    t1.start()
    t1.join(0.2)
    assert order == [] and window.starved
    window.release(0)
    t1.join(5)
    t2.join(5)
    assert order == [1, 2] and window.used == 70


def test_image_larger_than_the_window_is_taken_in_alone():
    window = _MemoryWindow(10)
    window.reserve(0, 1000)  # nothing else held: granted
    assert window.used == 1000
    window.pass_turn(1)  # file 1 was unreadable: its turn passes
    window.release(0)
    window.reserve(2, 5)
    assert window.used == 5


def test_scan_with_a_tiny_window_matches_the_default(tmp_path, tiny_detector):
    files = []
    for i, size in enumerate([(700, 500), (90, 90), (600, 650), (120, 80)]):
        p = tmp_path / f"im{i}.png"
        make_image(size, i).save(p)
        files.append(p)
    cfg = PreprocessConfig(max_full_pixels=128 * 128, tile_size=128)
    base = scan_files(files, tiny_detector, ScanOptions(preprocess=cfg))
    small = scan_files(files, tiny_detector, ScanOptions(preprocess=cfg, max_inflight_bytes=1,
                                                         workers=2, batch_size=3))
    np.testing.assert_allclose([r.prob_fake for r in small], [r.prob_fake for r in base],
                               atol=1e-5)
    serial = scan_files(files, tiny_detector, ScanOptions(preprocess=cfg, overlap_decode=False,
                                                          cross_image_batching=False))
    np.testing.assert_allclose([r.prob_fake for r in serial], [r.prob_fake for r in base],
                               atol=1e-5)


# ------------------------------------------------------------------ out of memory

def test_oom_classifier():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:118] . "
                                         "DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_oom_in_a_batch_retries_alone_then_errors_that_image_only(tmp_path, tiny_detector,
                                                                 monkeypatch):
    files = []
    for i, size in enumerate([(100, 100), (300, 300), (100, 100)]):
        p = tmp_path / f"im{i}.png"
        make_image(size, i).save(p)
        files.append(p)
    real = tiny_detector.predict_proba
    calls: list[int] = []

    def flaky(batch):
        calls.append(batch.shape[0])
        if batch.shape[0] > 1 or batch.shape[-1] == 300:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 99999999999 bytes")
        return real(batch)

    monkeypatch.setattr(tiny_detector, "predict_proba", flaky)
    results = scan_files(files, tiny_detector, ScanOptions(batch_size=4))
    assert [r.ok for r in results] == [True, False, True]
    assert "out of memory" in results[1].error and results[1].verdict is Verdict.ERROR
    assert results[1].sha256 is not None
    assert max(calls) > 1 and 1 in calls  # batched first, then alone


def test_a_decode_failing_after_its_reservation_gives_the_room_back(tmp_path, tiny_detector):
    good = tmp_path / "b_good.png"
    make_image((120, 90), 1).save(good)
    data = good.read_bytes()
    broken = tmp_path / "a_broken.png"
    broken.write_bytes(data[: len(data) // 2])  # valid header, truncated pixels
    results = scan_files([broken, good], tiny_detector, ScanOptions(max_inflight_bytes=1))
    assert [r.ok for r in results] == [False, True]  # and no deadlock on the window
