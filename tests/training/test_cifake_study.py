"""The CIFAKE seed study: InceptionV3 and the paper head, freezing, the low-resolution
protocol, the study's metrics, and the app refusing the study's networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from forensics_app.core.detector import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
)
from model_training.checkpoint import load_training_checkpoint
from model_training.cifake import (
    LowResDataset,
    cap_per_class,
    normalise,
    run,
    scores_with_batch_statistics,
    split_samples,
    to_lowres,
    zoom_image,
)
from model_training.config import load_config
from model_training.dataset import Sample, build_loader
from model_training.metrics import paper_metrics
from model_training.models import build_training_model, is_app_arch
from model_training.study_nets import FrozenStatsBatchNorm2d, InceptionDetector, trunk_layers
from model_training.train import evaluate, train_one_epoch

PAPER_R18 = {"name": "resnet18", "num_outputs": 1, "stages": 4, "head": "paper",
             "head_hidden": 1024, "head_dropout": 0.3}


def test_paper_head_and_freeze_are_built_and_recorded():
    model, info = build_training_model(PAPER_R18, "none", train_last_n=4, frozen_bn="eval")
    head = model.fc
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert head[0].out_features == 1024 and head[2].p == 0.3 and head[3].out_features == 1
    rec = info["freeze"]
    layers = trunk_layers(model)
    assert rec["trunk_layers"] == len(layers) and rec["frozen_layers"] == len(layers) - 4
    assert rec["first_trainable"] == layers[-4][0] == "layer4.1.conv1"
    assert all(not p.requires_grad for _, m in layers[:-4] for p in m.parameters())
    assert all(p.requires_grad for _, m in layers[-4:] for p in m.parameters())
    assert all(p.requires_grad for p in model.fc.parameters())
    assert not is_app_arch(PAPER_R18) and is_app_arch({**PAPER_R18, "head": "linear"})


@pytest.mark.parametrize("mode, stats_move", [("eval", False), ("train", True)])
def test_frozen_batchnorm_uses_stored_statistics_only_in_eval_mode(mode, stats_move):
    model, _ = build_training_model(PAPER_R18, "none", train_last_n=2, frozen_bn=mode)
    model.train()
    assert isinstance(model.bn1, FrozenStatsBatchNorm2d) is (mode == "eval")
    assert model.bn1.training is (mode == "train")
    before = model.bn1.running_mean.clone()
    model(torch.rand(2, 3, 32, 32) * 3)
    assert (not torch.equal(before, model.bn1.running_mean)) is stats_move
    # the state dict keeps torchvision's names whatever the class of the frozen BatchNorms
    assert "bn1.running_mean" in model.state_dict()


def test_inception_smallest_input_and_cam_target():
    net = InceptionDetector({"name": "inception_v3", "num_outputs": 1, "head": "linear"})
    assert net.cam_target_layer() is net.Mixed_7c and not hasattr(net, "AuxLogits")
    assert net.eval()(torch.rand(1, 3, 75, 75)).shape == (1, 1)
    with pytest.raises(ValueError, match="at least 75 px"):
        net(torch.rand(1, 3, 74, 74))
    with pytest.raises(ValueError, match="auxiliary"):
        InceptionDetector({"name": "inception_v3", "aux_logits": True})


def test_study_config_is_checked():
    cfg = load_config("cifake_paper", arch="inception_v3")
    assert cfg.arch_dict() == {"name": "inception_v3", "num_outputs": 1, "aux_logits": False,
                               "head": "paper", "head_hidden": 1024, "head_dropout": 0.3}
    assert (cfg.zoom, cfg.batch_size, cfg.max_epochs, cfg.train_last_n) == (0.2, 64, 5, 32)
    with pytest.raises(ValueError, match="crop_size >= 75"):
        load_config("cifake_paper", arch="inception_v3", crop_size=64)
    with pytest.raises(ValueError, match="head must be one of"):
        load_config(head="mlp")
    with pytest.raises(ValueError, match="cifake protocol only"):
        load_config(input_norm="unit")


def test_paper_metrics_count_the_confusion_matrix():
    m = paper_metrics([0, 0, 0, 1, 1, 1, 1], [0.9, 0.1, 0.2, 0.8, 0.7, 0.2, 0.6])
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 3}
    assert m["accuracy"] == pytest.approx(5 / 7) and m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4) and m["specificity"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(3 / 4)
    # the study's ResNet-50 pattern: everything called fake -> specificity 0, no NaN
    everything_fake = paper_metrics([0, 0, 1, 1], [0.9] * 4)
    assert everything_fake["recall"] == 1.0 and everything_fake["specificity"] == 0.0
    nothing_fake = paper_metrics([0, 1], [0.1, 0.2])
    assert nothing_fake["precision"] == 0.0 and nothing_fake["f1"] == 0.0


def test_split_is_stratified_disjoint_and_seeded():
    pool = [Sample(f"r{i}.png", 0) for i in range(50)] + [Sample(f"f{i}.png", 1)
                                                           for i in range(30)]
    parts = split_samples(pool, 0.2, 0.2, seed=3)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [51, 13, 16]
    assert sum(s.label for s in parts["test"]) == 6  # 20% of each class
    paths = [s.path for k in parts for s in parts[k]]
    assert len(set(paths)) == 80
    assert split_samples(pool, 0.2, 0.2, seed=3) == parts != split_samples(pool, 0.2, 0.2, 4)
    capped = cap_per_class(pool, 10)
    assert len(capped) == 20 and sum(s.label for s in capped) == 10


def test_lowres_square_crop_zoom_and_input_scales():
    img = Image.new("RGB", (80, 40), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 40))  # a blue band outside the centre square
    small = to_lowres(img, 8)
    assert small.size == (8, 8) and np.asarray(small)[..., 2].max() < 10  # cropped away
    arr = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(zoom_image(arr, 1.0, 1.0), arr, atol=1e-6)
    zoomed_in = zoom_image(arr, 0.5, 0.5)
    assert zoomed_in.std() < arr.std()  # bilinear up-sampling of the centre smooths it
    chw = np.full((3, 2, 2), 0.5, dtype=np.float32)
    assert normalise(chw, "unit") is chw
    assert np.allclose(normalise(chw, "imagenet")[0], (0.5 - 0.485) / 0.229)
    assert normalise(chw, "caffe_unit").max() < 0.01  # near-zero inputs: the Keras mismatch


def test_lowres_dataset_upsamples_and_augments_training_only():
    images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    samples = [Sample(f"{i}.png", i % 2) for i in range(4)]
    val = LowResDataset(images, samples, crop_size=24, upsample="nearest", input_norm="unit")
    x, y = val[1]
    assert x.shape == (3, 24, 24) and y.item() == 1.0
    np.testing.assert_allclose(x[:, ::3, ::3].permute(1, 2, 0).numpy() * 255, images[1],
                               atol=1e-3)  # nearest: each pixel became a 3x3 block
    train = LowResDataset(images, samples, crop_size=24, train=True, zoom=0.2, seed=5)
    draws = {tuple(train[0][0].flatten()[:50].tolist()) for _ in range(2)}
    assert len(draws) == 1  # seeded per (seed, epoch, index)
    train.set_epoch(1)
    assert not torch.equal(train[0][0], LowResDataset(
        images, samples, crop_size=24, train=True, zoom=0.2, seed=5)[0][0])


def test_inception_trains_through_the_training_loop():
    """A few steps of InceptionV3 (random weights, 75 px, paper head, frozen trunk) through
    ``train_one_epoch``: the head learns, the frozen layers do not move."""
    model, info = build_training_model(
        {"name": "inception_v3", "num_outputs": 1, "head": "paper", "head_hidden": 16},
        "none", train_last_n=6)
    assert info["init"] == "scratch" and info["freeze"]["first_trainable"].startswith("Mixed_7c")
    images = np.random.default_rng(2).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    ds = LowResDataset(images, [Sample(str(i), i % 2) for i in range(4)], crop_size=75,
                       train=True, zoom=0.2)
    frozen = model.Conv2d_1a_3x3.conv.weight.clone()
    head = model.fc[3].weight.clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = train_one_epoch(model, build_loader(ds, 2, train=True), opt, "cpu", max_steps=2)
    assert out["steps"] == 2 and np.isfinite(out["loss"])
    assert torch.equal(frozen, model.Conv2d_1a_3x3.conv.weight)
    assert not torch.equal(head, model.fc[3].weight)


@pytest.fixture
def tiny_pool(tmp_path):
    rng = np.random.default_rng(3)
    for label, folder in ((0, "real"), (1, "fake")):
        (tmp_path / folder).mkdir()
        for i in range(6):
            arr = rng.integers(0, 256, (30 + 10 * label, 40, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / folder / f"{i}.png")
    return tmp_path


def test_cifake_run_end_to_end_records_protocol_and_init(tiny_pool, tmp_path):
    """``--config cifake_paper --set arch=inception_v3`` end to end on 12 generated images
    (random weights, the smallest input InceptionV3 takes, two steps)."""
    cfg = load_config(
        "cifake_paper", arch="inception_v3", crop_size=75, lowres=8, batch_size=4,
        max_epochs=1, workers=0, pretrained="none", train_last_n=4, head_hidden=16,
        progress_bar=False,
        train_real_dirs=[str(tiny_pool / "real")], train_fake_dirs=[str(tiny_pool / "fake")],
        out_dir=str(tmp_path / "run"))
    report = run(cfg, device="cpu")
    proto = report["protocol"]
    assert (proto["train"]["n"], proto["val"]["n"], proto["test"]["n"]) == (8, 2, 2)
    assert proto["lowres"] == 8 and proto["input_norm"] == "unit" and proto["zoom"] == 0.2
    m = report["test"]["at_0.5"]
    assert sum(m["confusion"].values()) == 2 and 0.0 <= m["accuracy"] <= 1.0
    assert sum(report["test"]["batch_stats"]["at_0.5"]["confusion"].values()) == 2
    saved = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert saved["init"]["freeze"]["train_last_n"] == 4
    ckpt = load_training_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["arch"]["name"] == "inception_v3" and ckpt["arch"]["head"] == "paper"
    assert ckpt["meta"]["init"]["init"] == "scratch"
    assert ckpt["meta"]["protocol"]["name"] == "cifake"
    assert any((tmp_path / ".cifake_cache").glob("lowres_8_*.npz"))  # beside the run


def test_batch_statistics_scoring_leaves_the_stored_statistics_alone():
    model, _ = build_training_model(PAPER_R18, "none", train_last_n=4, frozen_bn="eval")
    images = np.random.default_rng(4).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    ds = LowResDataset(images, [Sample(str(i), i % 2) for i in range(4)], crop_size=32)
    loader = build_loader(ds, 4, train=False)
    tail_bn = model.layer4[1].bn2
    tail_bn.running_var.fill_(100.0)  # stored statistics far from the activations
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = scores_with_batch_statistics(model, loader, "cpu")
    assert not model.training and not tail_bn.training and tail_bn.momentum == 0.1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    stored = evaluate(model, loader, "cpu")["scores"]
    assert out["scores"].shape == (4,) and not np.allclose(out["scores"], stored)


def _save(obj, path):
    torch.save(obj, path)
    return path


def test_app_refuses_study_networks_with_the_reason(tmp_path):
    w = torch.zeros(1, 2)
    meta_ckpt = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                 "state_dict": {"fc.weight": w},
                 "meta": {"architecture": {"name": "inception_v3", "num_outputs": 1}}}
    cases = {
        "meta": (_save(meta_ckpt, tmp_path / "a.pt"), "inception_v3 is a study network"),
        "head": (_save({**meta_ckpt, "meta": {"architecture": {"name": "resnet50", "head":
                                                                "paper"}}},
                       tmp_path / "b.pt"), "'paper' head"),
        "bare inception": (_save({"Mixed_7c.branch1x1.conv.weight": w, "fc.weight": w},
                                 tmp_path / "c.pt"), "inception_v3 is a study network"),
        "bare paper head": (_save({"conv1.weight": w, "fc.0.weight": w, "fc.3.weight": w},
                                  tmp_path / "d.pt"), "'paper' head"),
    }
    for name, (path, reason) in cases.items():
        with pytest.raises(CheckpointError, match="refused") as err:
            load_checkpoint(path)
        assert reason in str(err.value), name
        assert "32x32" in str(err.value), name


def test_export_refuses_study_networks_with_the_reason(tmp_path):
    from model_training.export import export_checkpoint

    model, _ = build_training_model(PAPER_R18, "none")
    with pytest.raises(ValueError, match="'paper' head .* 32x32"):
        export_checkpoint(model, PAPER_R18, tmp_path / "x.pt", {})
    assert not (tmp_path / "x.pt").exists()
