"""Training loop: ``train_one_epoch``, ``evaluate``, the paper's plateau schedule and ``fit``.

``fit`` reproduces Wang et al.'s schedule: after every epoch the model is validated; when
validation accuracy has not improved (by ``min_delta``) for ``patience`` epochs the learning
rate is divided by 10, and training stops once it would fall below 1e-6. Unlike the original
code, whose "best" model was reset after each decay, the best model over the whole run is kept.

Every epoch (and optionally every ``save_every_steps`` steps) the full state is written
atomically to ``last.pt``; a rerun with the same output folder resumes from it, replaying the
exact remaining batches (the sampling order depends only on seed and epoch).

CLI: ``python -m model_training train --config blur_jpg_prob0.5 --dataroot DATA``;
multi-GPU: ``torchrun --nproc_per_node=N -m model_training train ...``.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_training.checkpoint import (
    TRAINING_FORMAT,
    TRAINING_FORMAT_VERSION,
    atomic_torch_save,
    atomic_write_text,
    load_training_checkpoint,
    plain_data,
)
from model_training.config import TrainConfig, load_config, parse_override, save_config
from model_training.metrics import binary_summary

log = logging.getLogger(__name__)

CancelFn = Callable[[], bool]


class TrainingCancelled(Exception):
    """Raised by :func:`fit` when ``should_cancel()`` returned True; state was saved first."""

    def __init__(self, checkpoint: Path):
        super().__init__(f"training cancelled; resume from {checkpoint}")
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------- set-up helpers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[DistContext, torch.device]:
    """Read torchrun's environment; start the process group when there is more than one rank."""
    from forensics_app.core.detector import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local), dev


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


def _to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device,
               channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True).float().view(-1)


# --------------------------------------------------------------------------- one epoch


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    scaler: torch.amp.GradScaler | None = None,
    log_every: int = 400,
    max_steps: int | None = None,
    *,
    loss_fn: nn.Module | None = None,
    epoch: int = 0,
    start_step: int = 0,
    global_step: int = 0,
    skip_batches: int = 0,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    should_cancel: CancelFn | None = None,
    progress_bar: bool = False,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Train over ``loader`` once (or up to ``max_steps`` steps of this epoch).

    ``loader`` yields ``(images, labels)``: normalised (B, 3, H, W) and 0 = real / 1 = fake.
    ``start_step`` is the step within the epoch the loader starts at (mid-epoch resume);
    ``skip_batches`` batches are drawn and discarded first, for loaders that cannot skip
    by themselves. ``on_step(step_in_epoch, global_step, totals)`` runs after every optimizer
    step (``totals``: loss_sum, images, seconds so far in this call).
    Returns mean loss, steps and images done, throughput, and whether it was cancelled.
    """
    device = torch.device(device)
    loss_fn = loss_fn or nn.BCEWithLogitsLoss()
    amp = scaler is not None and scaler.is_enabled()
    model.train()
    loss_sum, n_images, steps = 0.0, 0, 0
    step = start_step
    cancelled = False
    batches = iter(loader)
    if skip_batches:
        batches = itertools.islice(batches, skip_batches, None)
    try:
        total: int | None = max(0, len(loader) - skip_batches)
    except TypeError:  # an iterable without a length
        total = None
    if max_steps is not None and total is not None:
        total = min(total, max(0, max_steps - start_step))
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for images, labels in batches:
            if max_steps is not None and step >= max_steps:
                break
            images, labels = _to_device(images, labels, device, channels_last)
            with _autocast(device, amp):
                logits = model(images)
                loss = loss_fn(logits.float().view(-1), labels)
            optimizer.zero_grad(set_to_none=True)
            if amp:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at epoch {epoch} step {step}")
            batch = int(labels.numel())
            loss_sum += value * batch
            n_images += batch
            steps += 1
            step += 1
            global_step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
            if log_every and global_step % log_every == 0:
                log.info("epoch %d step %d (global %d): train loss %.4f", epoch, step,
                         global_step, value)
            if on_step is not None:
                on_step(step, global_step, {"loss_sum": loss_sum, "images": n_images,
                                            "seconds": time.perf_counter() - t0})
            if should_cancel is not None and should_cancel():
                cancelled = True
                break
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    return {
        "loss": loss_sum / n_images if n_images else float("nan"),
        "loss_sum": loss_sum, "images": n_images, "steps": steps, "step_in_epoch": step,
        "global_step": global_step, "seconds": seconds,
        "images_per_s": n_images / seconds if seconds > 0 else float("nan"),
        "cancelled": cancelled,
    }


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader,
    device: torch.device | str,
    *,
    loss_fn: nn.Module | None = None,
    threshold: float = 0.5,
    max_batches: int | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Validation metrics (loss, AP, accuracy on all/real/fake) plus the raw logits."""
    device = torch.device(device)
    loss_fn = loss_fn or nn.BCEWithLogitsLoss(reduction="sum")
    model.eval()
    logits_all, labels_all = [], []
    loss_sum = 0.0
    for i, (images, labels) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        images, labels = _to_device(images, labels, device, channels_last)
        with _autocast(device, amp and device.type == "cuda"):
            logits = model(images).float().view(-1)
        loss_sum += float(nn.functional.binary_cross_entropy_with_logits(
            logits, labels, reduction="sum"))
        logits_all.append(logits.cpu())
        labels_all.append(labels.cpu())
    logits = torch.cat(logits_all).double().numpy() if logits_all else np.zeros(0)
    labels = torch.cat(labels_all).long().numpy() if labels_all else np.zeros(0, dtype=np.int64)
    scores = 1.0 / (1.0 + np.exp(-logits))
    out: dict[str, Any] = binary_summary(labels, scores, threshold) if labels.size else {}
    out["loss"] = loss_sum / labels.size if labels.size else float("nan")
    out.update(logits=logits, labels=labels, scores=scores)
    return out


# --------------------------------------------------------------------------- schedule


class PlateauSchedule:
    """Wang et al.'s early stopping + lr decay on validation accuracy, best kept over the run.

    ``step(score)`` returns ``"improved"`` (a new best), ``"wait"``, ``"decay"`` (lr divided by
    ``decay``; patience restarts) or ``"stop"`` (the next lr would be below ``min_lr``). An
    improvement means ``score >= best + min_delta`` (``min_delta_after_decay`` once the lr has
    been decayed, as the paper's second EarlyStopping used), always against the best of the
    *whole run* -- the original reset its best after each decay and could "save as best" a
    model worse than an earlier one.
    """

    def __init__(self, lr: float, patience: int = 5, min_delta: float = 0.001,
                 min_delta_after_decay: float = 0.002, decay: float = 10.0,
                 min_lr: float = 1e-6):
        self.lr = lr
        self.patience = patience
        self.min_delta = min_delta
        self.min_delta_after_decay = min_delta_after_decay
        self.decay = decay
        self.min_lr = min_lr
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.n_decays = 0
        self.stopped = False
        self.epochs_seen = 0

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> PlateauSchedule:
        return cls(cfg.lr, cfg.patience, cfg.min_delta, cfg.min_delta_after_decay,
                   cfg.lr_decay, cfg.min_lr)

    def step(self, score: float, epoch: int | None = None) -> str:
        if self.stopped:
            raise RuntimeError("the schedule has already stopped")
        epoch = self.epochs_seen if epoch is None else epoch
        self.epochs_seen += 1
        delta = self.min_delta if self.n_decays == 0 else self.min_delta_after_decay
        if self.best_score is None or score >= self.best_score + delta:
            self.best_score, self.best_epoch, self.bad_epochs = float(score), epoch, 0
            return "improved"
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return "wait"
        new_lr = self.lr / self.decay
        if new_lr < self.min_lr * (1 - 1e-6):  # tolerance: 1e-4 / 10 / 10 != 1e-6 exactly
            self.stopped = True
            return "stop"
        self.lr, self.bad_epochs = new_lr, 0
        self.n_decays += 1
        return "decay"

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if key in vars(self):
                setattr(self, key, value)


# --------------------------------------------------------------------------- fit


def _position_loader(loader, epoch: int, start_step: int) -> int:
    """Set the loader's epoch and start; return batches the loop must still skip itself."""
    sampler = getattr(loader, "sampler", None)
    if sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    if start_step and sampler is not None and hasattr(sampler, "set_start"):
        sampler.set_start(start_step * (loader.batch_size or 1))
        return 0
    return start_step


def _write_history(history: list[dict[str, Any]], out_dir: Path) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for h in history for k in h))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "history.csv", buf.getvalue())
    try:
        from model_training.plots import plot_training_curves

        plot_training_curves(history, out_dir / "training_curves.png")
    except Exception as exc:  # noqa: BLE001 -- a figure must never stop training
        log.warning("could not draw training curves: %s", exc)


def fit(
    cfg: TrainConfig,
    model: nn.Module,
    train_loader,
    val_loader,
    out_dir: Path | str,
    *,
    device: torch.device | str | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    resume: bool = True,
    init_info: dict[str, Any] | None = None,
    extra_meta: dict[str, Any] | None = None,
    dist_ctx: DistContext | None = None,
    should_cancel: CancelFn | None = None,
    restore_best: bool = True,
) -> dict[str, Any]:
    """Train until the plateau schedule stops (or ``cfg.max_epochs``); return a summary.

    Writes into ``out_dir``: ``config.yaml`` (resolved), ``last.pt`` (full state, every epoch),
    ``best.pt`` (best validation accuracy over the run), ``history.csv`` and
    ``training_curves.png``. With ``resume`` and an existing ``last.pt`` it continues from the
    saved step. On return the model holds the best weights (``restore_best``).
    """
    from forensics_app.core.detector import resolve_device

    out_dir = Path(out_dir)
    dist_ctx = dist_ctx or DistContext()
    device = torch.device(device) if device is not None else resolve_device(cfg.device)
    net = unwrap(model)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    arch = dict(getattr(net, "arch", None) or cfg.arch_dict())
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                     weight_decay=cfg.weight_decay)
    if scaler is None:
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    schedule = PlateauSchedule.from_config(cfg)
    history: list[dict[str, Any]] = []
    meta = plain_data({"init": init_info or {}, **(extra_meta or {})})
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    next_epoch, next_step, global_step = 0, 0, 0
    partial = {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
    finished = False

    if dist_ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    if resume and last_path.is_file():
        state = load_training_checkpoint(last_path)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        schedule.load_state_dict(state["schedule"])
        history = list(state["history"])
        next_epoch, next_step = int(state["next_epoch"]), int(state["next_step"])
        global_step = int(state["global_step"])
        partial = dict(state.get("partial") or partial)
        finished = bool(state.get("finished"))
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s: epoch %d, step %d (global step %d), lr %.2e",
                 last_path, next_epoch, next_step, global_step, schedule.lr)

    def state_dict(finished_: bool = False) -> dict[str, Any]:
        return {
            "format": TRAINING_FORMAT, "format_version": TRAINING_FORMAT_VERSION, "kind": "state",
            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "schedule": schedule.state_dict(), "next_epoch": next_epoch, "next_step": next_step,
            "global_step": global_step, "partial": dict(partial), "history": history,
            "finished": finished_, "config": cfg.to_dict(), "arch": arch, "meta": meta,
            "torch_rng": torch.get_rng_state(),
        }

    def save_state(finished_: bool = False) -> None:
        if dist_ctx.is_main:
            atomic_torch_save(state_dict(finished_), last_path)

    epoch = next_epoch
    while not finished and epoch < cfg.max_epochs:
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr
        skip = _position_loader(train_loader, epoch, next_step)
        start_step = next_step

        carried = dict(partial)

        def on_step(step: int, gstep: int, totals: dict[str, float], _epoch: int = epoch,
                    _carried: dict[str, float] = carried) -> None:
            nonlocal next_epoch, next_step, global_step, partial
            if gstep % cfg.save_every_steps:
                return
            next_epoch, next_step, global_step = _epoch, step, gstep
            partial = {k: _carried[k] + totals[k] for k in ("loss_sum", "images", "seconds")}
            save_state()

        result = train_one_epoch(
            model, train_loader, optimizer, device, scaler, cfg.log_every,
            cfg.max_steps_per_epoch, epoch=epoch, start_step=start_step, global_step=global_step,
            skip_batches=skip, on_step=on_step if cfg.save_every_steps else None,
            should_cancel=should_cancel, progress_bar=cfg.progress_bar and dist_ctx.is_main,
            channels_last=cfg.channels_last,
        )
        loss_sum = carried["loss_sum"] + result["loss_sum"]
        images = carried["images"] + result["images"]
        seconds = carried["seconds"] + result["seconds"]
        global_step = result["global_step"]
        if result["cancelled"]:
            next_epoch, next_step = epoch, result["step_in_epoch"]
            partial = {"loss_sum": loss_sum, "images": images, "seconds": seconds}
            save_state()
            log.info("cancelled at epoch %d step %d; state saved to %s", epoch, next_step,
                     last_path)
            raise TrainingCancelled(last_path)

        metrics: dict[str, Any] = {}
        if dist_ctx.is_main:
            t_val = time.perf_counter()
            val = evaluate(net, val_loader, device, amp=cfg.amp, channels_last=cfg.channels_last)
            metrics = {k: val[k] for k in ("loss", "acc", "ap", "real_acc", "fake_acc")}
            metrics["seconds"] = time.perf_counter() - t_val
        if dist_ctx.distributed:
            import torch.distributed as dist

            box = [metrics]
            dist.broadcast_object_list(box, src=0)
            metrics = box[0]
        action = schedule.step(metrics["acc"], epoch)
        record = {
            "epoch": epoch, "global_step": global_step, "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / images if images else float("nan"),
            "train_images_per_s": images / seconds if seconds else float("nan"),
            "val_loss": metrics["loss"], "val_acc": metrics["acc"], "val_ap": metrics["ap"],
            "val_real_acc": metrics["real_acc"], "val_fake_acc": metrics["fake_acc"],
            "action": action, "best_val_acc": schedule.best_score,
            "train_seconds": seconds, "val_seconds": metrics["seconds"],
        }
        history.append(plain_data(record))
        log.info("epoch %d: train loss %.4f | val loss %.4f acc %.2f%% AP %.2f%% "
                 "(real %.1f%%, fake %.1f%%) | %s, lr %.1e | %.0f img/s",
                 epoch, record["train_loss"], metrics["loss"], 100 * metrics["acc"],
                 100 * metrics["ap"], 100 * metrics["real_acc"], 100 * metrics["fake_acc"],
                 action, schedule.lr, record["train_images_per_s"])
        next_epoch, next_step = epoch + 1, 0
        partial = {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
        finished = action == "stop"
        if dist_ctx.is_main:
            if action == "improved":
                atomic_torch_save({
                    "format": TRAINING_FORMAT, "format_version": TRAINING_FORMAT_VERSION,
                    "kind": "best", "model": net.state_dict(), "arch": arch,
                    "config": cfg.to_dict(), "meta": meta, "epoch": epoch,
                    "global_step": global_step, "metrics": plain_data(metrics),
                }, best_path)
            save_state(finished)
            if cfg.keep_epoch_checkpoints:
                atomic_torch_save(state_dict(), out_dir / f"epoch_{epoch:03d}.pt")
            _write_history(history, out_dir)
        if action == "decay":
            log.info("validation accuracy stalled for %d epochs: lr -> %.1e",
                     cfg.patience, schedule.lr)
        elif action == "stop":
            log.info("lr would fall below %.0e: stopping (best epoch %s, val acc %.2f%%)",
                     cfg.min_lr, schedule.best_epoch, 100 * (schedule.best_score or 0))
        epoch += 1

    if dist_ctx.distributed:
        import torch.distributed as dist

        dist.barrier()
    if restore_best and best_path.is_file():
        net.load_state_dict(load_training_checkpoint(best_path)["model"])
    best = next((h for h in history if h["epoch"] == schedule.best_epoch), {})
    return {
        "best_epoch": schedule.best_epoch, "best_val_acc": schedule.best_score,
        "best_val_ap": best.get("val_ap"), "best_path": str(best_path),
        "last_path": str(last_path), "epochs_run": len(history), "global_step": global_step,
        "stopped": "schedule" if schedule.stopped else "max_epochs", "history": history,
    }


# --------------------------------------------------------------------------- CLI


def setup_logging(out_dir: Path | None = None, rank: int = 0,
                  quiet: bool = False) -> logging.Handler | None:
    """Console logging (rank 0) plus ``train.log`` in the run folder (handler returned so
    the caller can close it)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        console = logging.StreamHandler()
        console.setFormatter(fmt)
        console.setLevel(logging.WARNING if (quiet or rank) else logging.INFO)
        root.addHandler(console)
    if out_dir is not None and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
        handler.setFormatter(fmt)
        root.addHandler(handler)
        return handler
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model_training train",
        description="Train a detector (Wang et al. 2020 recipe). Rerun the same command to "
                    "resume from the run folder's last.pt.",
    )
    p.add_argument("--config", required=True,
                   help="preset name (model_training/presets) or YAML path")
    p.add_argument("--dataroot", help="ForenSynths root holding train/ and val/")
    p.add_argument("--classes", help="comma-separated class subset, e.g. chair,horse")
    p.add_argument("--out-dir", help="run folder (default runs/<name>)")
    p.add_argument("--name", help="run name")
    p.add_argument("--arch", help="resnet50 (default), resnet18, resnet34, resnet101, "
                                  "efficientnet_b0, inception_v3")
    p.add_argument("--pretrained", help="auto | none | path to a torchvision state dict")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--crop-size", type=int)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field (value parsed as YAML); repeatable")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, Any] = {
        "dataroot": args.dataroot, "out_dir": args.out_dir, "name": args.name,
        "arch": args.arch, "pretrained": args.pretrained, "device": args.device,
        "workers": args.workers, "batch_size": args.batch_size, "crop_size": args.crop_size,
        "max_epochs": args.max_epochs, "seed": args.seed,
        "classes": [c for c in args.classes.split(",") if c] if args.classes else None,
    }
    for item in args.set:
        key, value = parse_override(item)
        overrides[key] = value
    if args.quiet:
        overrides["progress_bar"] = False
    return load_config(args.config, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    dist_ctx, device = init_distributed(cfg.device)
    out_dir = cfg.resolved_out_dir()
    handler = setup_logging(out_dir, dist_ctx.rank, args.quiet)
    try:
        return _train(cfg, args, dist_ctx, device, out_dir)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        if dist_ctx.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(cfg: TrainConfig, args: argparse.Namespace, dist_ctx: DistContext,
           device: torch.device, out_dir: Path) -> int:
    from model_training.dataset import build_datasets, build_loader, manifest_sha256
    from model_training.models import build_training_model

    if dist_ctx.world_size > 1 and cfg.batch_size % dist_ctx.world_size:
        raise SystemExit(f"batch_size {cfg.batch_size} is not divisible by {dist_ctx.world_size}")
    log.info("run %s on %s (%d process%s) -> %s", cfg.name, device, dist_ctx.world_size,
             "" if dist_ctx.world_size == 1 else "es", out_dir)
    seed_everything(cfg.seed)
    if cfg.protocol == "cifake":
        from model_training.cifake import build_cifake_datasets

        train_ds, val_ds, _ = build_cifake_datasets(cfg)
    else:
        train_ds, val_ds = build_datasets(cfg)
    per_rank = cfg.batch_size // dist_ctx.world_size
    pin = device.type == "cuda"
    train_loader = build_loader(train_ds, per_rank, train=True, workers=cfg.workers,
                                seed=cfg.seed, rank=dist_ctx.rank,
                                world_size=dist_ctx.world_size, pin_memory=pin)
    val_loader = build_loader(val_ds, cfg.val_batch_size, train=False, workers=cfg.workers,
                              seed=cfg.seed, pin_memory=pin)
    model, init_info = build_training_model(cfg.arch_dict(), cfg.pretrained,
                                            train_last_n=cfg.train_last_n,
                                            frozen_bn=cfg.frozen_bn)
    model.to(device)
    if dist_ctx.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    data_meta = {
        "train": {"n": len(train_ds), "manifest_sha256": manifest_sha256(train_ds.samples)},
        "val": {"n": len(val_ds), "manifest_sha256": manifest_sha256(val_ds.samples)},
    }
    summary = fit(cfg, model, train_loader, val_loader, out_dir, device=device,
                  resume=not args.no_resume, init_info=init_info,
                  extra_meta={"data": data_meta}, dist_ctx=dist_ctx)
    if dist_ctx.is_main:
        log.info("done: best epoch %s, val acc %.2f%%, AP %.2f%% -> %s", summary["best_epoch"],
                 100 * (summary["best_val_acc"] or 0), 100 * (summary["best_val_ap"] or 0),
                 summary["best_path"])
    return 0
