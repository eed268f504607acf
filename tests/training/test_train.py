"""Training on tiny synthetic data: speed, learning, checkpoints, exact resume."""

import time

import pytest
import torch

from model_training.checkpoint import load_training_checkpoint
from model_training.dataset import build_datasets, build_loader
from model_training.models import build_training_model
from model_training.train import (
    TrainingCancelled,
    evaluate,
    fit,
    seed_everything,
    train_one_epoch,
)


def make(cfg):
    seed_everything(cfg.seed)
    train_ds, val_ds = build_datasets(cfg)
    model, _ = build_training_model(cfg.arch_dict(), cfg.pretrained)
    return (model, build_loader(train_ds, cfg.batch_size, train=True, seed=cfg.seed),
            build_loader(val_ds, cfg.val_batch_size, train=False))


def test_one_epoch_runs_in_seconds_and_loss_falls(tiny_config):
    cfg = tiny_config()
    model, train_loader, val_loader = make(cfg)
    before = evaluate(model, val_loader, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    t0 = time.perf_counter()
    first = train_one_epoch(model, train_loader, opt, "cpu", log_every=0)
    elapsed = time.perf_counter() - t0
    second = train_one_epoch(model, train_loader, opt, "cpu", log_every=0, epoch=1,
                             global_step=first["global_step"])
    after = evaluate(model, val_loader, "cpu")
    assert first["steps"] == 6 and first["images"] == 48  # 48 training images, batch 8
    assert elapsed < 30, f"one tiny epoch took {elapsed:.1f}s"
    assert second["loss"] < first["loss"]
    assert after["loss"] < before["loss"] and after["ap"] > 0.9
    assert second["global_step"] == 12


def test_max_steps_and_cancel(tiny_config):
    cfg = tiny_config()
    model, train_loader, _ = make(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    assert train_one_epoch(model, train_loader, opt, "cpu", max_steps=2)["steps"] == 2
    calls = iter([False, True])
    out = train_one_epoch(model, train_loader, opt, "cpu", should_cancel=lambda: next(calls))
    assert out["cancelled"] and out["steps"] == 2


def test_fit_writes_run_folder(tiny_config, tmp_path):
    cfg = tiny_config(max_epochs=1)
    model, tl, vl = make(cfg)
    summary = fit(cfg, model, tl, vl, tmp_path / "run", init_info={"init": "scratch"})
    run = tmp_path / "run"
    for name in ("config.yaml", "last.pt", "best.pt", "history.csv", "training_curves.png"):
        assert (run / name).is_file(), name
    last = load_training_checkpoint(run / "last.pt")  # weights_only=True inside
    assert last["next_epoch"] == 1 and last["global_step"] == 6
    assert last["meta"]["init"] == {"init": "scratch"} and last["arch"]["name"] == "resnet18"
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 0
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temporaries


def _final_weights(run_dir):
    return load_training_checkpoint(run_dir / "last.pt")["model"]


@pytest.mark.parametrize("cancel_after", [3, 6])  # mid-epoch, and exactly at an epoch end
def test_resume_continues_from_the_saved_step(tiny_config, tmp_path, cancel_after):
    cfg = tiny_config(max_epochs=2, out_dir=None)
    model, tl, vl = make(cfg)
    straight = fit(cfg, model, tl, vl, tmp_path / "straight")

    model, tl, vl = make(cfg)
    steps = {"n": 0}

    def cancel() -> bool:
        steps["n"] += 1
        return steps["n"] == cancel_after

    with pytest.raises(TrainingCancelled) as info:
        fit(cfg, model, tl, vl, tmp_path / "resumed", should_cancel=cancel)
    saved = load_training_checkpoint(info.value.checkpoint)
    assert saved["global_step"] == cancel_after
    assert (saved["next_epoch"], saved["next_step"]) == (0, cancel_after)

    model, tl, vl = make(cfg)  # a fresh process: new model, new loaders
    resumed = fit(cfg, model, tl, vl, tmp_path / "resumed")
    assert resumed["global_step"] == straight["global_step"] == 12
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "resumed")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert resumed["history"][-1]["train_loss"] == pytest.approx(
        straight["history"][-1]["train_loss"], rel=1e-4)


def test_mid_epoch_checkpoints(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(max_epochs=1, save_every_steps=4)
    model, tl, vl = make(cfg)
    seen = []
    orig = torch.save

    def spy(obj, path, *a, **k):
        if isinstance(obj, dict) and obj.get("kind") == "state":
            seen.append((obj["next_epoch"], obj["next_step"], obj["global_step"]))
        return orig(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", spy)
    fit(cfg, model, tl, vl, tmp_path / "run")
    assert seen[0] == (0, 4, 4) and seen[-1] == (1, 0, 6)
