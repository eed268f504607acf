"""Exported checkpoints load in forensics_app.core and score like the training network."""

import numpy as np
import pytest
import torch

from forensics_app.core.detector import CHECKPOINT_FORMAT, Detector, load_checkpoint
from model_training.checkpoint import load_torch_file, plain_data
from model_training.evaluate import evaluate_sets, score_folder_sets
from model_training.export import calibrate, export_checkpoint, write_model_card
from model_training.metrics import apply_platt, false_positive_rate, logit
from model_training.models import build_network


@pytest.fixture
def trained_like(tiny_arch):
    torch.manual_seed(1)
    net = build_network(tiny_arch)
    torch.nn.init.normal_(net.fc.weight, 0.0, 0.5)  # spread-out scores
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_export_loads_in_the_app_and_scores_the_same(trained_like, tiny_arch, test_root,
                                                     tmp_path):
    path = export_checkpoint(trained_like, tiny_arch, tmp_path / "m.pt",
                             {"threshold": 0.4, "version": "t1", "training": {"recipe": "x"}})
    raw = load_torch_file(path)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["format_version"] == 1
    assert raw["state_dict"]["conv1.weight"].dtype == torch.float16
    assert raw["meta"]["architecture"]["stages"] == 1 and raw["meta"]["version"] == "t1"
    loaded = load_checkpoint(path)
    assert loaded.kind == CHECKPOINT_FORMAT and loaded.threshold == 0.4
    det = Detector.from_loaded(loaded, device="cpu", threads=1)
    ours = score_folder_sets(trained_like, test_root)
    app = score_folder_sets(det, test_root)
    for a, b in zip(ours, app, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, atol=5e-3)  # fp16 weights
    rows_ours = evaluate_sets(trained_like, test_root, threshold=0.4)
    rows_app = evaluate_sets(det, test_root)
    for a, b in zip(rows_ours, rows_app, strict=True):
        assert a["ap"] == pytest.approx(b["ap"], abs=0.02)
        assert a["threshold"] == b["threshold"] == 0.4


def test_only_app_architectures_and_plain_meta(trained_like, tiny_arch, tmp_path):
    with pytest.raises(ValueError, match="ResNets only"):
        export_checkpoint(trained_like, {"name": "efficientnet_b0"}, tmp_path / "e.pt", {})
    with pytest.raises(TypeError, match="not plain data"):
        export_checkpoint(trained_like, tiny_arch, tmp_path / "o.pt", {"x": object()})
    assert plain_data({"p": tmp_path, "t": (1, np.float32(2.5))}) == {
        "p": str(tmp_path), "t": [1, 2.5]}


def test_calibration_round_trips_through_the_detector(trained_like, tiny_arch, tmp_path):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(-1, 1.5, 400), rng.normal(2, 1.5, 400)
    result = calibrate(real, fake, method="fpr", target_fpr=0.05)
    a, b = result["calibration"]["a"], result["calibration"]["b"]
    probs_real = apply_platt(real, a, b)
    assert false_positive_rate(probs_real, result["threshold"]) <= 0.05
    assert result["report"]["ece"] <= result["report"]["ece_uncalibrated"] + 1e-9
    path = export_checkpoint(trained_like, tiny_arch, tmp_path / "c.pt",
                             {"threshold": result["threshold"],
                              "calibration": result["calibration"]})
    det = Detector.from_checkpoint(path, device="cpu", threads=1)
    z = torch.tensor([[-3.0], [0.0], [1.7]])
    np.testing.assert_allclose(det.logits_to_proba(z), apply_platt(z[:, 0].numpy(), a, b),
                               rtol=1e-6)
    eer = calibrate(real, fake, method="eer", platt=False)
    assert eer["calibration"] is None and 0.1 < eer["report"]["eer"] < 0.2
    reals_only = calibrate(real, None, target_fpr=0.1)
    assert reals_only["calibration"] is None and reals_only["report"]["fpr_at_threshold"] <= 0.1
    assert logit(0.5) == 0


def test_model_card(trained_like, tiny_arch, tmp_path):
    meta = {"threshold": 0.3, "calibration": {"type": "platt", "a": 1.2, "b": -0.1},
            "calibration_report": {"method": "fpr", "target_fpr": 0.05},
            "training": {"config": {"name": "tiny", "blur_prob": 0.5, "crop_size": 32},
                         "init": {"init": "scratch"}, "best_epoch": 3,
                         "data": {"train": {"n": 10, "manifest_sha256": "ab"}}}}
    path = export_checkpoint(trained_like, tiny_arch, tmp_path / "m.pt", meta)
    rows = [{"set": "flat", "ap": 0.91, "acc": 0.8, "real_acc": 0.9, "fake_acc": 0.7,
             "n_real": 6, "n_fake": 6}]
    card = write_model_card(tmp_path / "MODEL_CARD.md", load_checkpoint(path).meta,
                            {"dev_test": rows}, checkpoint=path,
                            sections={"Intended use": "Tests only."})
    text = card.read_text()
    for needle in ("sha256", "threshold on P(generated): **0.3**", "platt", "blur_prob",
                   "| flat | 91.0 | 80.0 | 90.0 | 70.0 | 6 | 6 |", "## Intended use"):
        assert needle in text, needle
