"""The paper's early-stopping schedule, driven by scripted validation accuracies."""

import pytest
import torch

import model_training.train as train_mod
from model_training.checkpoint import load_training_checkpoint
from model_training.dataset import build_datasets, build_loader
from model_training.models import build_training_model
from model_training.train import PlateauSchedule, fit, seed_everything


def run(schedule, scores):
    return [schedule.step(s) for s in scores]


def test_flat_accuracy_decays_twice_then_stops():
    s = PlateauSchedule(lr=1e-4)  # paper: patience 5, lr / 10 until below 1e-6
    actions = []
    lrs = []
    while not s.stopped:
        actions.append(s.step(0.9))
        lrs.append(s.lr)
    assert actions == (["improved"] + ["wait"] * 4 + ["decay"] + ["wait"] * 4 + ["decay"]
                       + ["wait"] * 4 + ["stop"])
    assert lrs[5] == pytest.approx(1e-5) and lrs[10] == pytest.approx(1e-6)
    assert s.best_epoch == 0 and s.n_decays == 2
    with pytest.raises(RuntimeError):
        s.step(0.9)


def test_improvements_need_min_delta_and_reset_patience():
    s = PlateauSchedule(lr=1e-4, patience=2)
    assert run(s, [0.80, 0.8005, 0.801, 0.805]) == ["improved", "wait", "improved", "improved"]
    assert run(s, [0.80, 0.80]) == ["wait", "decay"]
    # after a decay an improvement must exceed best + 0.002 (the paper's second delta)
    assert run(s, [0.8065, 0.808]) == ["wait", "improved"]


def test_best_is_kept_over_the_whole_run():
    """The original reset "best" after each decay; a worse later epoch must not replace it."""
    s = PlateauSchedule(lr=1e-4, patience=2)
    assert run(s, [0.95, 0.90, 0.90]) == ["improved", "wait", "decay"]
    assert run(s, [0.93]) == ["wait"]  # the original would have saved this as "best"
    assert s.best_score == 0.95 and s.best_epoch == 0


def test_state_dict_roundtrip_continues_identically():
    scores = [0.5, 0.6, 0.6, 0.6, 0.61, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    a = PlateauSchedule(lr=1e-4, patience=3)
    expected = run(a, scores)
    b = PlateauSchedule(lr=1e-4, patience=3)
    run(b, scores[:4])
    c = PlateauSchedule(lr=1.0)
    c.load_state_dict(b.state_dict())
    assert run(c, scores[4:]) == expected[4:] and c.lr == a.lr


def test_fit_follows_the_schedule_with_fake_metrics(tiny_config, monkeypatch, tmp_path):
    """fit() decays, stops and keeps the best epoch as the schedule says (1 step per epoch)."""
    accs = iter([0.60, 0.70, 0.70, 0.70, 0.65, 0.70, 0.70, 0.70, 0.70, 0.70, 0.70, 0.70])

    def fake_evaluate(model, loader, device, **kwargs):
        return {"loss": 0.5, "acc": next(accs), "ap": 0.9, "real_acc": 0.5, "fake_acc": 0.5}

    monkeypatch.setattr(train_mod, "evaluate", fake_evaluate)
    cfg = tiny_config(patience=2, lr=1e-4, min_lr=1e-6, max_steps_per_epoch=1, max_epochs=50)
    seed_everything(0)
    train_ds, val_ds = build_datasets(cfg)
    model, _ = build_training_model(cfg.arch_dict(), "none")
    summary = fit(cfg, model, build_loader(train_ds, 8, train=True),
                  build_loader(val_ds, 16, train=False), tmp_path / "run")
    actions = [h["action"] for h in summary["history"]]
    assert actions == ["improved", "improved", "wait", "decay", "wait", "decay", "wait", "stop"]
    assert [h["lr"] for h in summary["history"]] == pytest.approx(
        [1e-4] * 4 + [1e-5] * 2 + [1e-6] * 2)
    assert summary["stopped"] == "schedule" and summary["best_epoch"] == 1
    best = load_training_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 1 and best["metrics"]["acc"] == 0.70
    last = load_training_checkpoint(tmp_path / "run" / "last.pt")
    assert last["finished"] and last["global_step"] == 8
    # the returned model holds the best weights
    for k, v in model.state_dict().items():
        assert torch.equal(v, best["model"][k])
    # rerunning a finished run does nothing and reports the same best
    again = fit(cfg, model, build_loader(train_ds, 8, train=True),
                build_loader(val_ds, 16, train=False), tmp_path / "run")
    assert again["epochs_run"] == 8 and again["best_epoch"] == 1
