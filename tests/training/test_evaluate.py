"""Evaluation through forensics_app.core on a synthetic test root."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from forensics_app.core.detector import Detector
from forensics_app.core.preprocess import PreprocessConfig, prepare_image
from model_training.dataset import load_rgb
from model_training.evaluate import (
    baseline_rows,
    discover_sets,
    evaluate_sets,
    main,
    markdown_table,
    robustness_sweep,
    score_folder_sets,
    smoothness_score,
    with_mean_row,
    write_robustness,
)
from model_training.metrics import average_precision


@pytest.fixture
def detector(tiny_checkpoint):
    return Detector.from_checkpoint(tiny_checkpoint, device="cpu", threads=1)


def test_discover_flat_and_multiclass_sets(test_root):
    sets = discover_sets(test_root)
    assert [s.name for s in sets] == ["flat", "multi"]
    assert (len(sets[0].real), len(sets[0].fake)) == (6, 6)
    assert (len(sets[1].real), len(sets[1].fake)) == (6, 6)  # pooled over classes a and b
    assert [s.name for s in discover_sets(test_root / "flat")] == ["flat"]
    with pytest.raises(FileNotFoundError, match="nope"):
        discover_sets(test_root, ["flat", "nope"])


def test_scores_match_the_detector_image_by_image(test_root, detector):
    """Batching by size must return every image's own score (mixed sizes in 'multi')."""
    scored = score_folder_sets(detector, test_root, batch_size=4, workers=2)
    for ss in scored:
        for path, score in zip(ss.paths, ss.scores, strict=True):
            single = detector.predict_proba(prepare_image(load_rgb(path), PreprocessConfig())
                                            .tensors[0].unsqueeze(0))[0]
            assert score == pytest.approx(single, abs=1e-5)
    rows = evaluate_sets(detector, test_root)
    assert [r["set"] for r in rows] == ["flat", "multi"]
    for row, ss in zip(rows, scored, strict=True):
        assert (row["n_real"], row["n_fake"]) == (6, 6)
        assert row["ap"] == pytest.approx(average_precision(ss.labels, ss.scores))
        assert row["threshold"] == detector.checkpoint.threshold
        assert 0 <= row["acc"] <= 1


def test_networks_and_callables_score_too(test_root, tiny_arch):
    from model_training.models import build_network

    torch.manual_seed(0)
    net = build_network(tiny_arch)
    a = evaluate_sets(net, test_root, sets=["flat"])[0]
    b = evaluate_sets(lambda x: torch.sigmoid(net(x)[:, 0]).double().numpy(), test_root,
                      sets=["flat"])[0]
    assert a["ap"] == pytest.approx(b["ap"])


def test_smoothness_cue_and_baselines(test_root):
    arr = np.zeros((5, 5, 3), np.uint8)
    arr[2, 2] = 255  # one bright pixel: |lap| = 4*255 at it, 255 at its 4 neighbours
    grey = np.asarray(Image.fromarray(arr).convert("L"), dtype=float)[2, 2]
    assert smoothness_score(Image.fromarray(arr)) == pytest.approx(-(4 * grey + 4 * grey) / 9)
    scored = score_folder_sets(None, test_root)  # no model: cues only
    assert scored[0].scores is None
    rows = baseline_rows(scored, seed=0)
    assert [r["method"] for r in rows[:3]] == ["random", "majority", "smoothness"]
    majority = [r for r in rows if r["method"] == "majority"]
    assert all(r["ap"] == 0.5 and r["acc"] == 0.5 for r in majority)
    smooth = [r for r in rows if r["method"] == "smoothness"]
    # nearest-up-sampled copies are blockier than their originals: the cue calls the reals
    # generated, ranking every fake last (AP at its minimum) -- it measures smoothness only
    assert all(r["ap"] < 0.5 for r in smooth)
    assert all(r["threshold_note"] == "oracle EER" for r in smooth)


def test_tables():
    rows = [{"set": "a", "ap": 0.9, "acc": 0.8, "real_acc": 0.7, "fake_acc": 0.9, "n_real": 2,
             "n_fake": 3}, {"set": "b", "ap": 0.5, "acc": 0.6, "real_acc": 0.5, "fake_acc": 0.7,
                            "n_real": 1, "n_fake": 1}]
    md = markdown_table(with_mean_row(rows))
    assert "| mean | 70.0 | 70.0 | 60.0 | 80.0 | 3 | 4 |" in md


def test_robustness_sweep(test_root, detector, tmp_path):
    rows = robustness_sweep(detector, test_root, blur_sigmas=(0, 2), jpeg_qualities=(50,),
                            max_per_class=3)
    assert [(r["perturbation"], r["level"], r["set"]) for r in rows] == [
        ("blur", 0, "flat"), ("blur", 0, "multi"), ("blur", 2, "flat"), ("blur", 2, "multi"),
        ("jpeg", 50, "flat"), ("jpeg", 50, "multi")]
    assert all(r["n_real"] == 3 == r["n_fake"] for r in rows)
    write_robustness(rows, tmp_path)
    for name in ("robustness.csv", "robustness_blur.png", "robustness_jpeg.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_unreadable_files_are_counted_not_fatal(test_root, detector, tmp_path):
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(test_root / "flat", root / "flat")
    (root / "flat" / "1_fake" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    row = evaluate_sets(detector, root)[0]
    assert row["n_errors"] == 1 and row["n_fake"] == 6


def test_cli_writes_the_report(test_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["--model", str(tiny_checkpoint), "--test-root", str(test_root), "--out",
                 str(out), "--robustness", "--blur-sigmas", "0,3", "--jpeg-qualities", "90",
                 "--sweep-max-per-class", "2", "--workers", "1", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "| flat |" in printed and "smoothness" in printed
    for name in ("results.md", "results.csv", "baselines.csv", "scores.csv", "summary.json",
                 "curves/flat.png", "curves/multi.png", "robustness.csv",
                 "robustness_blur.png", "robustness_jpeg.png"):
        assert (out / name).is_file(), name
    with open(out / "results.csv") as fh:
        assert [r["set"] for r in csv.DictReader(fh)] == ["flat", "multi"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "full image, no resize" and len(summary["baselines"]) == 6
    # centre-crop protocol
    assert main(["--model", str(tiny_checkpoint), "--test-root", str(test_root), "--out",
                 str(tmp_path / "crop"), "--crop", "32", "--no-baselines", "--no-curves",
                 "-q"]) == 0
    assert "centre crop 32" in (tmp_path / "crop" / "results.md").read_text()
