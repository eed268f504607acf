"""Speed: the triage tile sampler, the thread-count choice, and levers recorded in reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forensics_app.core.preprocess import (
    PreprocessConfig,
    prepare_image,
    sample_tile_boxes,
    tile_boxes,
)
from forensics_app.core.scan import ScanOptions, scan_files
from forensics_app.core.speed import SpeedLevers, ThreadPlan, choose_threads
from helpers import make_image

# ------------------------------------------------------------------ tile sampler


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (6000, 4000), (11547, 8660),
                                  (20000, 600), (1600, 1500)])
def test_sample_is_deterministic_spread_and_from_the_full_grid(size):
    w, h = size
    a = sample_tile_boxes(w, h, 512, 8, seed=0)
    assert a == sample_tile_boxes(w, h, 512, 8, seed=0)  # deterministic
    assert len(a) == 8 and len(set(a)) == 8
    grid = set(tile_boxes(w, h, 512))
    assert set(a) <= grid  # full-resolution tiles of the full-mode grid, never resized
    for x, y, bw, bh in a:
        assert 0 <= x and x + bw <= w and 0 <= y and y + bh <= h
    # Spread: the sample reaches both halves of the long side and spans most of it.
    xs = [x for x, *_ in a]
    ys = [y for _, y, *_ in a]
    long_pos, extent = (xs, w) if w >= h else (ys, h)
    assert min(long_pos) < extent / 2 < max(long_pos) + 512
    assert max(long_pos) + 512 - min(long_pos) >= 0.6 * extent


def test_sample_covers_every_stratum_of_the_image():
    w, h = 8192, 8192  # a 16 x 16 grid, 16 samples: one in each 4 x 4 block of tiles
    boxes = sample_tile_boxes(w, h, 512, 16, seed=3)
    blocks = {(x // 2048, y // 2048) for x, y, *_ in boxes}
    assert blocks == {(i, j) for i in range(4) for j in range(4)}


def test_seed_changes_the_draw_not_the_count():
    a = sample_tile_boxes(6000, 4000, 512, 8, seed=0)
    b = sample_tile_boxes(6000, 4000, 512, 8, seed=1)
    assert a != b and len(b) == 8


def test_sample_mode_is_recorded_on_the_prepared_image():
    img = make_image((2100, 1500), 1)
    prep = prepare_image(img, PreprocessConfig(mode="sample", tile_size=256, sample_tiles=6))
    assert prep.mode_used == "sample-6x256-seed0" and prep.n_tiles == 6
    assert any("triage sample: 6 of 54" in n for n in prep.notes)


def test_small_image_in_sample_mode_is_scored_in_full():
    img = make_image((300, 200), 1)
    prep = prepare_image(img, PreprocessConfig(mode="sample", tile_size=256))
    assert prep.mode_used == "full" and prep.boxes == [(0, 0, 300, 200)]
    assert any("all of it was scored" in n for n in prep.notes)


def test_sample_scan_scores_a_subset_of_the_full_scan_tiles(tmp_path, tiny_detector):
    p = tmp_path / "big.png"
    make_image((1024, 768), 5).save(p)
    tiles = PreprocessConfig(mode="tiles", tile_size=128)
    sample = PreprocessConfig(mode="sample", tile_size=128, sample_tiles=5)
    (full,) = scan_files([p], tiny_detector, ScanOptions(preprocess=tiles))
    (tri,) = scan_files([p], tiny_detector, ScanOptions(preprocess=sample))
    assert tri.preprocessing == "sample-5x128-seed0" and len(tri.tile_boxes) == 5
    assert any("triage sample" in n for n in tri.notes)
    by_box = dict(zip(full.tile_boxes, full.tile_probs, strict=True))
    np.testing.assert_allclose(tri.tile_probs, [by_box[b] for b in tri.tile_boxes], atol=1e-5)


# ------------------------------------------------------------------ threads


@pytest.mark.parametrize("cores,gui,expected", [
    (1, False, ThreadPlan(1, 1)), (1, True, ThreadPlan(1, 1)),
    (2, False, ThreadPlan(2, 2)), (2, True, ThreadPlan(2, 2)),
    (4, True, ThreadPlan(4, 2)), (8, False, ThreadPlan(8, 3)),
    (8, True, ThreadPlan(7, 3)), (64, True, ThreadPlan(63, 6)),
])
def test_thread_choice_from_cores(cores, gui, expected):
    assert choose_threads(cores, gui=gui) == expected


def test_thread_choice_defaults_to_the_affinity_mask():
    plan = choose_threads()
    assert plan.torch_threads >= 1 and plan.intake_workers >= 1


# ------------------------------------------------------------------ levers in the side-car


def test_every_lever_is_an_explicit_setting_recorded_in_the_sidecar(tmp_path, tiny_detector):
    from forensics_app.core.export import write_jsonl
    from forensics_app.core.speed import engine_record

    p = tmp_path / "a.png"
    make_image((100, 90), 0).save(p)
    options = ScanOptions(overlap_decode=False, cross_image_batching=False)
    results = scan_files([p], tiny_detector, options)
    out = tmp_path / "r.jsonl"
    write_jsonl(out, results, {"engine": engine_record(tiny_detector, options)})
    meta = json.loads(out.with_name(out.name + ".meta.json").read_text())
    engine = meta["engine"]
    for lever in ("inference_mode", "channels_last", "fold_batchnorm", "precision", "compile"):
        assert lever in engine["levers"], lever
    # "auto" is resolved before it is recorded: this checkpoint has no int8 ranges -> fp32
    assert engine["levers"] == {**SpeedLevers().record(), "precision": "fp32"}
    scan = engine["scan"]
    assert scan["overlap_decode"] is False and scan["cross_image_batching"] is False
    for key in ("batch_size", "max_batch_pixels", "max_inflight_bytes", "workers"):
        assert key in scan
    assert scan["preprocess"]["tile_size"] == 512 and scan["preprocess"]["mode"] == "full"
    assert scan["decode_limits"]["max_pixels"] >= 250_000_000
    assert engine["threads"]["torch_threads"] >= 1


def test_levers_off_give_the_same_scores(tmp_path, tiny_checkpoint):
    from forensics_app.core.detector import Detector

    p = tmp_path / "a.png"
    make_image((120, 100), 0).save(p)
    on = Detector.from_checkpoint(tiny_checkpoint, "cpu", threads=1)
    off = Detector.from_checkpoint(tiny_checkpoint, "cpu", threads=1, levers=SpeedLevers(
        inference_mode=False, channels_last=False, fold_batchnorm=False))
    (a,) = scan_files([p], on)
    (b,) = scan_files([p], off)
    assert a.prob_fake == pytest.approx(b.prob_fake, abs=1e-5)


def test_bad_precision_is_refused():
    with pytest.raises(ValueError):
        SpeedLevers(precision="fp8")
