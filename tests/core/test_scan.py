"""The scan pipeline: batching, preprocessing modes, progress, cancellation, result records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forensics_app.core.preprocess import (
    PreprocessConfig,
    PreprocessMode,
    prepare_image,
    tile_boxes,
    to_normalized_tensor,
)
from forensics_app.core.results import Verdict
from forensics_app.core.scan import (
    ScanCancelled,
    ScanOptions,
    aggregate_tiles,
    scan_files,
    scan_paths,
)
from helpers import make_image, make_images


@pytest.fixture
def mixed_files(tmp_path):
    """Twelve images of four different sizes, interleaved so batches must regroup them."""
    return make_images(tmp_path / "mixed", 12)


def test_result_record_fields(tiny_detector, mixed_files):
    results = scan_files(mixed_files[:2], tiny_detector)
    for r, f in zip(results, mixed_files[:2], strict=True):
        assert r.path == str(f) and r.ok and r.error is None
        assert len(r.sha256) == 64 and r.bytes == f.stat().st_size
        assert r.format in ("PNG", "JPEG") and r.width > 0 and r.height > 0
        assert r.verdict in (Verdict.AI_GENERATED, Verdict.REAL, Verdict.INCONCLUSIVE)
        assert r.threshold == 0.5 and r.inconclusive_band == 0.05
        assert r.model_id == tiny_detector.model_id and r.model_id.startswith("tiny.pt@")
        assert r.device.startswith("cpu") and r.preprocessing == "full"
        assert r.elapsed_ms > 0 and r.notes == [] and r.tile_probs == []


def test_mixed_sizes_batched_equal_batch_size_one(tiny_detector, mixed_files):
    one = scan_files(mixed_files, tiny_detector, ScanOptions(batch_size=1, workers=1))
    many = scan_files(mixed_files, tiny_detector, ScanOptions(batch_size=8, workers=2))
    assert [r.path for r in many] == [str(f) for f in mixed_files]
    np.testing.assert_allclose([r.prob_fake for r in many], [r.prob_fake for r in one], atol=1e-4)


def test_scores_match_a_direct_forward_pass(tiny_detector, mixed_files):
    results = scan_files(mixed_files[:3], tiny_detector)
    from PIL import Image

    for r in results:
        with Image.open(r.path) as img:
            x = to_normalized_tensor(img.convert("RGB")).unsqueeze(0)
        with torch.inference_mode():
            logit = tiny_detector.model.float()(x)[0, 0]
        assert r.prob_fake == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)


def test_progress_reaches_total_monotonically(tiny_detector, mixed_files):
    calls: list[tuple[int, int]] = []
    seen = []
    scan_files(mixed_files, tiny_detector, ScanOptions(batch_size=4),
               progress=lambda done, total: calls.append((done, total)),
               on_result=seen.append)
    assert calls[-1] == (12, 12)
    assert [d for d, _ in calls] == list(range(1, 13))
    assert {t for _, t in calls} == {12}
    assert sorted(r.index for r in seen) == list(range(12))


def test_cancel_mid_scan_keeps_finished_rows(tiny_detector, tmp_path):
    files = make_images(tmp_path / "many", 24, size=(64, 64))
    finished = []

    def should_cancel() -> bool:
        return len(finished) >= 5

    with pytest.raises(ScanCancelled) as info:
        scan_files(files, tiny_detector, ScanOptions(batch_size=4, workers=2),
                   should_cancel=should_cancel, on_result=finished.append)
    kept = info.value.results
    assert 5 <= len(kept) < len(files)
    assert all(r.ok for r in kept)
    assert {r.path for r in kept} == {r.path for r in finished}
    assert "cancelled" in str(info.value)


def test_cancel_before_start_returns_nothing(tiny_detector, mixed_files):
    with pytest.raises(ScanCancelled) as info:
        scan_files(mixed_files, tiny_detector, should_cancel=lambda: True)
    assert len(info.value.results) <= 1  # at most the first file, taken in before the check


def test_tiles_mode_keeps_per_tile_scores(tiny_detector, tmp_path):
    path = tmp_path / "wide.png"
    make_image((160, 100), 7).save(path)
    options = ScanOptions(preprocess=PreprocessConfig(mode="tiles", tile_size=64))
    (r,) = scan_files([path], tiny_detector, options)
    expected_boxes = tile_boxes(160, 100, 64)
    assert len(expected_boxes) == 3 * 2
    assert r.preprocessing == "tiles-64"
    assert r.tile_boxes == expected_boxes
    assert len(r.tile_probs) == len(expected_boxes)
    assert all(0.0 <= p <= 1.0 for p in r.tile_probs)
    assert r.prob_fake == pytest.approx(aggregate_tiles(r.tile_probs))
    # Each tile scored as its own crop gives the same number.
    img = make_image((160, 100), 7)
    x0, y0, w, h = expected_boxes[-1]
    crop = to_normalized_tensor(img.crop((x0, y0, x0 + w, y0 + h))).unsqueeze(0)
    assert r.tile_probs[-1] == pytest.approx(float(tiny_detector.predict_proba(crop)[0]), abs=1e-5)


def test_full_mode_tiles_beyond_pixel_budget(tiny_detector, tmp_path):
    path = tmp_path / "big.png"
    make_image((200, 150), 8).save(path)
    cfg = PreprocessConfig(mode="full", tile_size=96, max_full_pixels=100 * 100)
    (r,) = scan_files([path], tiny_detector, ScanOptions(preprocess=cfg))
    assert r.ok and r.preprocessing == "tiles-96"
    assert len(r.tile_probs) == len(tile_boxes(200, 150, 96)) == 3 * 2
    assert any("pixel full-image budget; tiled" in n for n in r.notes)


def test_center_crop_mode(tiny_detector, tmp_path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    make_image((300, 260), 1).save(big)
    make_image((100, 90), 2).save(small)
    options = ScanOptions(preprocess=PreprocessConfig(mode=PreprocessMode.CENTER_CROP))
    r_big, r_small = scan_files([big, small], tiny_detector, options)
    assert r_big.preprocessing == r_small.preprocessing == "center-crop-224"
    assert r_big.notes == []
    assert any("smaller than crop 224" in n for n in r_small.notes)
    prep = prepare_image(make_image((300, 260), 1), PreprocessConfig(mode="center-crop"))
    assert prep.tensors[0].shape == (3, 224, 224) and prep.boxes == [(38, 18, 224, 224)]
    assert r_big.prob_fake == pytest.approx(
        float(tiny_detector.predict_proba(prep.tensors[0].unsqueeze(0))[0]), abs=1e-5)


def test_full_mode_is_not_resized():
    prep = prepare_image(make_image((123, 77), 0), PreprocessConfig())
    assert prep.mode_used == "full" and prep.tensors[0].shape == (3, 77, 123)
    assert prep.boxes == [(0, 0, 123, 77)] and prep.notes == []


def test_tile_boxes_cover_the_image():
    boxes = tile_boxes(1000, 700, 512)
    assert boxes == [(0, 0, 512, 512), (488, 0, 512, 512), (0, 188, 512, 512), (488, 188, 512, 512)]
    assert tile_boxes(100, 50, 512) == [(0, 0, 100, 50)]


def test_aggregate_tiles_is_mean_logit():
    assert aggregate_tiles([0.5, 0.5]) == pytest.approx(0.5)
    p = [0.9, 0.2, 0.6]
    mean_logit = sum(math.log(x / (1 - x)) for x in p) / 3
    assert aggregate_tiles(p) == pytest.approx(1 / (1 + math.exp(-mean_logit)))
    assert 0.0 < aggregate_tiles([0.0, 1.0]) < 1.0  # clipped, no infinities


def test_threshold_and_band_override(tiny_detector, mixed_files):
    results = scan_files(mixed_files, tiny_detector, ScanOptions(threshold=0.0, inconclusive_band=0.0))
    assert all(r.verdict is Verdict.AI_GENERATED and r.threshold == 0.0 for r in results)
    results = scan_files(mixed_files, tiny_detector, ScanOptions(threshold=1.0, inconclusive_band=0.0))
    assert all(r.verdict is Verdict.REAL for r in results)


def test_scan_paths_discovers_then_scans(tiny_detector, image_folder):
    (image_folder / "sub").mkdir()
    make_image((64, 64), 99).save(image_folder / "sub" / "deep.png")
    assert len(scan_paths([image_folder], tiny_detector)) == 8
    assert len(scan_paths([image_folder], tiny_detector, recursive=True)) == 9


def test_empty_input(tiny_detector):
    calls = []
    assert scan_files([], tiny_detector, progress=lambda *a: calls.append(a)) == []
    assert calls == []
