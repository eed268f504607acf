"""The one scan session: its settings record, its engine options, one scan into a case."""

from __future__ import annotations

import json

import pytest

from forensics_app.core.case import Case
from forensics_app.core.preprocess import PreprocessMode
from forensics_app.core.report import _preprocess_for
from forensics_app.core.session import ScanSession, ScanSettings
from helpers import make_image


def test_settings_record_round_trips_every_field():
    s = ScanSettings(mode="sample", tile_size=256, crop_size=200, sample_tiles=4,
                     sample_seed=7, batch_size=3, workers=1, threshold=0.4,
                     inconclusive_band=0.1, max_pixels=10_000_000, max_compression_ratio=500.0,
                     max_inflight_bytes=1 << 20, cross_image_batching=False,
                     overlap_decode=False, provenance=False)
    record = s.to_record()
    assert json.loads(json.dumps(record)) == record  # plain data
    assert ScanSettings.from_record(record) == s
    assert record["sample_tiles"] == 4 and record["sample_seed"] == 7


def test_older_records_read_with_defaults():
    old_gui = {"preprocess_mode": "tiles", "tile_size": 128, "threshold": None}
    assert ScanSettings.from_record(old_gui) == ScanSettings(mode="tiles", tile_size=128)
    old_cli = {"mode": "center-crop", "fake_index": 1, "unknown": "ignored"}
    assert ScanSettings.from_record(old_cli).mode == "center-crop"
    assert ScanSettings.from_record(None) == ScanSettings()


@pytest.mark.parametrize("bad", [{"mode": "zoom"}, {"batch_size": 0}, {"threshold": 1.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ScanSettings(**bad)


def test_one_place_makes_the_engine_options():
    s = ScanSettings(mode="sample", tile_size=256, sample_tiles=4, sample_seed=3, batch_size=5,
                     threshold=0.3, max_pixels=1000, overlap_decode=False)
    o = s.scan_options()
    assert o.preprocess.mode is PreprocessMode.SAMPLE
    assert (o.preprocess.tile_size, o.preprocess.sample_tiles, o.preprocess.sample_seed) == (
        256, 4, 3)
    assert (o.batch_size, o.threshold, o.overlap_decode) == (5, 0.3, False)
    assert o.decode_limits.max_pixels == 1000


def test_session_scans_into_a_case_and_streams_reports(tiny_detector, image_folder, tmp_path):
    settings = ScanSettings(mode="sample", tile_size=64, sample_tiles=2, sample_seed=5,
                            batch_size=3, workers=1)
    seen = []
    session = ScanSession(tiny_detector, settings, [image_folder], case=tmp_path / "case",
                          csv=tmp_path / "out.csv", jsonl=tmp_path / "out.jsonl",
                          on_result=seen.append)
    outcome = session.run()
    assert outcome.status == "finished" and len(outcome.results) == 8 == len(seen)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 8
    meta = json.loads((tmp_path / "out.jsonl.meta.json").read_text())
    assert meta["completed"] is True and meta["settings"]["sample_tiles"] == 2
    with Case.open(tmp_path / "case", read_only=True) as case:
        (scan,) = case.scans()
        assert scan.status == "finished"
        # The case keeps the whole record: a report recomputes Grad-CAM on the same tiles.
        assert ScanSettings.from_record(scan.settings) == settings
        cfg = _preprocess_for(case.results()[0], scan)
        assert (cfg.mode, cfg.sample_tiles, cfg.sample_seed, cfg.tile_size) == (
            PreprocessMode.SAMPLE, 2, 5, 64)
    # Again: the case holds every file, nothing is scored; the report is still the union.
    again = ScanSession(tiny_detector, settings, [image_folder], case=tmp_path / "case",
                        jsonl=tmp_path / "again.jsonl").run()
    assert again.status == "finished" and again.results == [] and again.n_already == 8
    assert len((tmp_path / "again.jsonl").read_text().splitlines()) == 8


def test_session_cancel_is_an_outcome_recorded_in_the_case(tiny_detector, image_folder,
                                                           tmp_path):
    session = ScanSession(tiny_detector, ScanSettings(batch_size=1, workers=1), [image_folder],
                          case=tmp_path / "case")
    outcome = session.run(should_cancel=lambda: True)
    assert outcome.status == "cancelled" and outcome.interrupted
    with Case.open(tmp_path / "case", read_only=True) as case:
        assert [s.status for s in case.scans()] == ["cancelled"]
        assert case.count_results() == len(outcome.results)


def test_claim_has_the_last_word_and_skips_are_collected(tiny_detector, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        make_image((64, 64), i).save(folder / f"{i}.png")
    (folder / "notes").write_bytes(b"plain text, no image")  # sniffed: skipped, no row
    session = ScanSession(tiny_detector, ScanSettings(workers=1), [folder],
                          claim=lambda files: [f for f in files if f.name != "1.png"])
    outcome = session.run()
    assert sorted(r.file_name for r in outcome.results) == ["0.png", "2.png"]
    assert [s.kind for s in session.skipped] == ["not-image"]


def test_images_in_memory_score_as_their_files_and_touch_no_disk(tiny_detector, image_folder,
                                                                  tmp_path):
    from forensics_app.core.loading import InMemoryImage

    files = sorted(image_folder.iterdir())[:3]
    from_disk = ScanSession(tiny_detector, ScanSettings(workers=1), files).run().results
    uploads = [InMemoryImage(f"upload-{i}", f.read_bytes()) for i, f in enumerate(files)]
    uploads.append(InMemoryImage("upload-3", b"%PDF-1.4 not an image"))
    in_memory = ScanSession(tiny_detector, ScanSettings(workers=1), uploads).run().results
    assert [r.sha256 for r in in_memory[:3]] == [r.sha256 for r in from_disk]
    assert [r.prob_fake for r in in_memory[:3]] == pytest.approx([r.prob_fake for r in from_disk])
    assert in_memory[0].path == "upload-0"
    bad = in_memory[3]
    assert bad.verdict.value == "Error" and "PDF" in bad.error and bad.sha256
    assert not (tmp_path / "upload-0").exists() and not list(tmp_path.glob("upload-*"))


def test_both_side_cars_list_files_skipped_at_intake(tiny_detector, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_image((64, 64), 0).save(folder / "a.png")
    (folder / "readme").write_bytes(b"plain text, no image")  # skipped when its bytes are read
    ScanSession(tiny_detector, ScanSettings(workers=1), [folder], csv=tmp_path / "r.csv",
                jsonl=tmp_path / "r.jsonl").run()
    for name in ("r.csv.meta.json", "r.jsonl.meta.json"):
        meta = json.loads((tmp_path / name).read_text())
        assert [s["kind"] for s in meta["skipped"]] == ["not-image"], name
