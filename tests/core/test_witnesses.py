"""Second witnesses (core.witnesses) on images each test makes: a manipulation is found, the
untouched image is not, and a witness that does not apply says so."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from forensics_app.core import witnesses
from forensics_app.core.witnesses import (
    Subject,
    analyse_bytes,
    csv_cells,
    parse_witness_names,
    run_witnesses,
)
from forensics_app.core.witnesses.thumbnail import exif_with_thumbnail


def photo(w: int = 320, h: int = 240, seed: int = 0, fine: float = 60) -> Image.Image:
    """A textured, photo-like RGB image: blurred noise at several scales plus a gradient."""
    import cv2

    rng = np.random.default_rng(seed)
    amount, layers = fine, []
    for c in range(3):
        fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        coarse = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 8)
        layers.append(amount * fine / fine.std() + 40 * coarse / coarse.std()
                      + np.linspace(60, 180, w)[None, :] + 10 * c)
    return Image.fromarray(np.clip(np.dstack(layers), 0, 255).astype(np.uint8))


def jpeg(im: Image.Image, quality: int, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def one(data: bytes, name: str):
    (result,) = analyse_bytes(data, [name])
    assert result.error is None, result.error
    return result


def test_names_all_and_unknown():
    assert parse_witness_names("all") == ("ela", "noise", "jpeg", "thumbnail", "clone")
    assert parse_witness_names(" clone,ELA ") == ("ela", "clone")
    with pytest.raises(ValueError, match="unknown witness bogus"):
        parse_witness_names("ela,bogus")


def test_copy_move_pasted_region_found_untouched_not():
    im = photo(seed=1)
    untouched = one(jpeg(im, 92), "clone")
    assert untouched.detected is False
    moved = im.copy()
    moved.paste(im.crop((20, 30, 120, 130)), (200, 110))
    found = one(jpeg(moved, 92), "clone")
    assert found.detected is True, found.figures
    (sx, sy, _, _), (tx, ty, _, _) = sorted(found.figures["boxes"])
    assert abs(sx - 20) < 40 and abs(sy - 30) < 40 and abs(tx - 200) < 40 and abs(ty - 110) < 40
    assert found.map_png.startswith(b"\x89PNG")
    assert "RANSAC" in found.rule


def test_double_jpeg_detected_single_not():
    im = photo(seed=2)
    single = one(jpeg(im, 90), "jpeg")
    assert single.detected is False
    assert single.figures["estimated_quality"] == 90 and single.figures["standard_tables"]
    first = Image.open(io.BytesIO(jpeg(im, 60))).convert("RGB")
    double = one(jpeg(first, 90), "jpeg")
    assert double.detected is True, double.figures
    assert double.figures["periodicity"] > single.figures["periodicity"]


def test_not_a_jpeg_is_stated():
    result = one(png(photo(seed=3)), "jpeg")
    assert result.detected is None
    assert result.finding.startswith("not a JPEG (PNG)")


def test_swapped_thumbnail_detected_own_not_none_absent():
    im, other = photo(seed=4), photo(seed=5).transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def with_thumb(source: Image.Image) -> bytes:
        t = source.copy()
        t.thumbnail((160, 160))
        return jpeg(im, 95, exif=exif_with_thumbnail(jpeg(t, 80)))

    own = one(with_thumb(im), "thumbnail")
    assert own.detected is False and own.figures["similarity"] > 0.9
    swapped = one(with_thumb(other), "thumbnail")
    assert swapped.detected is True and swapped.figures["similarity"] < 0.75
    absent = one(jpeg(im, 95), "thumbnail")
    assert absent.detected is None and "no EXIF thumbnail" in absent.finding


def test_ela_region_with_another_history_detected_untouched_not():
    base = Image.open(io.BytesIO(jpeg(photo(seed=6, fine=10), 75))).convert("RGB")
    assert one(jpeg(base, 75), "ela").detected is False
    pasted = base.copy()
    pasted.paste(photo(seed=7, fine=10).crop((0, 0, 96, 96)), (150, 80))  # never compressed
    found = one(jpeg(pasted, 75), "ela")
    assert found.figures["quality"] == 75  # re-saved at the file's own quality
    assert found.detected is True, found.figures
    assert found.figures["largest_outlier_cluster"] >= 6


def test_noise_region_with_other_noise_detected_untouched_not():
    rng = np.random.default_rng(8)
    smooth = np.linspace(50, 200, 320)[None, :, None] + np.zeros((240, 320, 3))
    clean = smooth + rng.normal(0, 2, smooth.shape)
    assert one(png(Image.fromarray(np.clip(clean, 0, 255).astype(np.uint8))),
               "noise").detected is False
    noisy = clean.copy()
    noisy[64:160, 96:224] = smooth[64:160, 96:224] + rng.normal(0, 12, (96, 128, 3))
    found = one(png(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))), "noise")
    assert found.detected is True, found.figures


def test_deterministic_and_large_images_downscaled_with_a_note():
    im = photo(2400, 1800, seed=9)
    data = jpeg(im, 90)
    first = analyse_bytes(data, ["ela", "clone"])
    again = analyse_bytes(data, ["ela", "clone"])
    assert [r.record() | {"elapsed_ms": 0} for r in first] == \
        [r.record() | {"elapsed_ms": 0} for r in again]
    assert all(any("downscaled" in n for n in r.notes) for r in first)


def test_a_failing_witness_is_an_error_result_not_a_crash(monkeypatch):
    def broken(subject):
        raise RuntimeError("boom")

    monkeypatch.setitem(witnesses.WITNESSES, "noise", broken)
    results = run_witnesses(Subject(photo(64, 64), b"", "PNG"), ["noise", "jpeg"])
    assert results[0].detected is None and "RuntimeError: boom" in results[0].error
    assert results[1].finding.startswith("not a JPEG")
    assert csv_cells({r.name: r.record() for r in results}, ["noise", "jpeg"]) == {
        "witness_noise_detected": "", "witness_jpeg_detected": ""}


def _run_cli(argv) -> int:
    from forensics_app.cli import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cli_witnesses_in_jsonl_csv_and_maps_only_in_witness_dir(tmp_path, tiny_checkpoint):
    import csv
    import json

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    im = photo(seed=10)
    moved = im.copy()
    moved.paste(im.crop((20, 30, 120, 130)), (200, 110))
    (evidence / "moved.jpg").write_bytes(jpeg(moved, 92))
    (evidence / "plain.png").write_bytes(png(photo(seed=11)))
    before = _snapshot(evidence)
    maps = tmp_path / "maps"
    code = _run_cli([evidence, "--model", tiny_checkpoint, "-q", "--device", "cpu",
                     "--jsonl", tmp_path / "r.jsonl", "--csv", tmp_path / "r.csv",
                     "--witness", "all", "--witness-dir", maps])
    assert code == 0
    assert _snapshot(evidence) == before  # nothing written beside (or over) the evidence
    rows = {json.loads(x)["file_name"]: json.loads(x)
            for x in (tmp_path / "r.jsonl").read_text().splitlines()}
    moved_w = rows["moved.jpg"]["witnesses"]
    assert set(moved_w) == {"ela", "noise", "jpeg", "thumbnail", "clone"}
    assert moved_w["clone"]["detected"] is True
    assert rows["plain.png"]["witnesses"]["jpeg"]["detected"] is None
    assert rows["plain.png"]["witnesses"]["clone"]["detected"] is False
    map_file = moved_w["clone"]["map_file"]
    assert map_file.startswith(rows["moved.jpg"]["sha256"][:16]) and (maps / map_file).is_file()
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as fh:
        cells = {r["file_name"]: r for r in csv.DictReader(fh)}
    assert cells["moved.jpg"]["witness_clone_detected"] == "yes"
    assert cells["plain.png"]["witness_jpeg_detected"] == ""
    assert cells["plain.png"]["witness_clone_detected"] == "no"


def test_cli_witness_dir_guarded_and_names_checked(tmp_path, tiny_checkpoint):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.png").write_bytes(png(photo(64, 64)))
    base = [evidence, "--model", tiny_checkpoint, "-q", "--device", "cpu"]
    assert _run_cli(base + ["--witness", "ela", "--witness-dir", evidence / "maps"]) == 2
    assert not (evidence / "maps").exists()
    assert _run_cli(base + ["--witness", "ela,nope"]) == 2
    assert _run_cli(base + ["--witness-dir", tmp_path / "maps"]) == 2


def test_hostile_thumbnail_is_an_error_result(tmp_path):
    data = jpeg(photo(64, 64), 90, exif=exif_with_thumbnail(b"\xff\xd8\xff\xe0 not a jpeg"))
    (result,) = analyse_bytes(data, ["thumbnail"])
    assert result.detected is None and result.error and "could not run" in result.finding


def test_case_stores_witnesses_and_the_report_shows_their_findings(tmp_path, tiny_checkpoint):
    from forensics_app.core.case import Case

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "p.png").write_bytes(png(photo(seed=12)))
    case, report = tmp_path / "case", tmp_path / "report.html"
    code = _run_cli([evidence, "--model", tiny_checkpoint, "-q", "--device", "cpu",
                     "--threshold", "0", "--case", case, "--report", report,
                     "--witness", "jpeg,clone"])
    assert code == 0
    with Case.open(case) as c:
        (row,) = c.results()
    assert row.witnesses["jpeg"]["finding"].startswith("not a JPEG (PNG)")
    html = report.read_text(encoding="utf-8")
    assert "Second witnesses (none is proof)" in html and "not a JPEG (PNG)" in html


def test_map_added_to_case_as_audited_exhibit_and_shown_in_report(tmp_path):
    from forensics_app.core.case import Case
    from forensics_app.core.report import build_report, render_html
    from forensics_app.core.witnesses.exhibits import ACTION, add_exhibit, case_exhibits

    im = photo(seed=13)
    moved = im.copy()
    moved.paste(im.crop((20, 30, 120, 130)), (200, 110))
    (clone_result,) = analyse_bytes(jpeg(moved, 92), ["clone"])
    with Case.create(tmp_path / "case") as case:
        x = add_exhibit(case, "/ev/moved<b>.jpg", "ab" * 32, clone_result)
        entry = case.audit_entries()[-1]
        assert entry.action == ACTION and entry.params["sha256"] == x.sha256
        png_bytes, problem = x.read(case.folder)
        assert problem is None and png_bytes == clone_result.map_png
        assert case.verify().ok
        html = render_html(build_report(case, gradcam=False))
        assert "Witness exhibits" in html and clone_result.finding in html
        assert "moved&lt;b&gt;.jpg" in html and "data:image/jpeg;base64," in html
        (case.folder / "exhibits" / x.file).write_bytes(b"changed")
        assert "no longer matches" in render_html(build_report(case, gradcam=False))
        assert [e.file for e in case_exhibits(case.audit_entries())] == [x.file]
    with pytest.raises(ValueError, match="no map"):
        add_exhibit(None, "p", "s", witnesses.WitnessResult("jpeg", None, "", ""))
