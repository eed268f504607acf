"""The preprocessing preset's memory guards: slivers are not blown up, tiles are crops."""

from __future__ import annotations

import torch
from PIL import Image

from forensics_app.core.preprocess import (
    PreprocessConfig,
    prepare_image,
    tile_boxes,
    to_normalized_tensor,
)
from forensics_app.core.scan import ScanOptions, scan_files
from helpers import make_image


def _pixels(prepared) -> int:
    return sum(t.shape[-1] * t.shape[-2] for t in prepared.tensors)


def test_sliver_upscale_is_capped_by_the_pixel_budget():
    sliver = Image.new("RGB", (20_000, 1), (128, 64, 32))
    cfg = PreprocessConfig()
    prep = prepare_image(sliver, cfg)
    # Uncapped, the 64 px minimum side would mean 1,280,000 x 64 = 82 million pixels.
    assert _pixels(prep) <= cfg.max_full_pixels
    assert prep.mode_used == "full" and len(prep.tensors) == 1
    assert any("capped by the 4,194,304-pixel budget" in n for n in prep.notes), prep.notes


def test_sliver_beyond_the_budget_is_tiled_as_is():
    cfg = PreprocessConfig(max_full_pixels=10_000, tile_size=512)
    prep = prepare_image(Image.new("RGB", (20_000, 1)), cfg)
    assert prep.scored_size == (20_000, 1)
    assert prep.mode_used == "tiles-512" and len(prep.tensors) == len(tile_boxes(20_000, 1, 512))
    assert any("too elongated to upscale" in n for n in prep.notes)


def test_small_image_upscale_is_uncapped_when_it_fits():
    prep = prepare_image(make_image((32, 16), 0), PreprocessConfig())
    assert prep.tensors[0].shape == (3, 64, 128)
    assert prep.notes == ["upscaled 32x16 -> 128x64 (below 64px minimum)"]


def test_tiles_equal_slices_of_the_whole_image():
    img = make_image((150, 100), 4)
    prep = prepare_image(img, PreprocessConfig(mode="tiles", tile_size=64))
    whole = to_normalized_tensor(img)
    assert len(prep.tensors) == len(prep.boxes) == 6
    for t, (x, y, w, h) in zip(prep.tensors, prep.boxes, strict=True):
        assert torch.equal(t, whole[:, y : y + h, x : x + w])


def test_thin_image_scans(tmp_path, tiny_detector):
    path = tmp_path / "line.png"
    make_image((300, 1), 0).save(path)
    cfg = PreprocessConfig(max_full_pixels=64 * 64 * 4)
    (r,) = scan_files([path], tiny_detector, ScanOptions(preprocess=cfg))
    assert r.ok and 0.0 <= r.prob_fake <= 1.0
    assert any("capped" in n for n in r.notes), r.notes
