"""End to end through the command line: train -> evaluate -> export -> the app loads it."""

import yaml

from forensics_app.core.detector import load_checkpoint
from model_training.__main__ import main


def test_train_evaluate_export(data_root, test_root, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "crop_size": 32, "blur_prob": 0.1, "jpg_prob": 0.1, "batch_size": 8,
        "val_batch_size": 16, "arch": "resnet18", "stages": 1, "pretrained": "none",
        "workers": 0, "lr": 1e-3, "log_every": 0, "device": "cpu",
    }))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--dataroot", str(data_root), "--out-dir",
                 str(run), "--max-epochs", "2", "--classes", "cat,dog", "--quiet"]) == 0
    for name in ("config.yaml", "train.log", "best.pt", "last.pt", "training_curves.png"):
        assert (run / name).is_file(), name
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["classes"] == ["cat", "dog"] and saved["max_epochs"] == 2
    # rerunning resumes: already at max_epochs, nothing more is trained
    assert main(["train", "--config", str(config), "--dataroot", str(data_root), "--out-dir",
                 str(run), "--max-epochs", "2", "--quiet"]) == 0
    assert "resumed from" in (run / "train.log").read_text()

    assert main(["evaluate", "--model", str(run / "best.pt"), "--test-root", str(test_root),
                 "--out", str(tmp_path / "eval"), "--no-curves", "-q"]) == 0
    assert "training checkpoint" in (tmp_path / "eval" / "results.md").read_text()

    out = tmp_path / "export" / "model.pt"
    notes = tmp_path / "levers.md"
    notes.write_text("# What each lever did\n\n| lever | mean AP |\n|--|--|\n| crop 112 | 1 |\n")
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(out),
                 "--card-notes", str(notes),
                 "--calib-root", str(data_root / "val"), "--target-fpr", "0.2",
                 "--test-root", str(test_root), "--version", "0.0-test"]) == 0
    ckpt = load_checkpoint(out)
    meta = ckpt.meta
    assert meta["version"] == "0.0-test" and meta["calibration"]["type"] == "platt"
    assert meta["calibration_report"]["fpr_at_threshold"] <= 0.2
    assert meta["calibration_report"]["n_real"] == meta["calibration_report"]["n_fake"] == 12
    assert meta["training"]["config"]["name"] == "tiny"
    assert meta["training"]["data"]["train"]["n"] == 48
    assert len(meta["training"]["data"]["train"]["manifest_sha256"]) == 64
    assert [r["set"] for r in meta["metrics"]["per_set"]] == ["flat", "multi"]
    card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert "| flat |" in card and "manifest_sha256" in card
    assert "## What each lever did" in card and "| crop 112 | 1 |" in card
    assert "ECE" in card and 0 <= meta["metrics"]["per_set"][0]["ece"] <= 1
    assert (tmp_path / "export" / "model_eval" / "results.md").is_file()
    capsys.readouterr()
