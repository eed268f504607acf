"""Export a trained network as the app's checkpoint, calibrated, with a model card.

The app's format (``forensics_app.core.detector``): ``{"format": "forensics-detector",
"format_version": 1, "state_dict": fp16 weights, "meta": plain data}``. ``meta`` carries the
architecture, the decision threshold and inconclusive band, an optional Platt calibration
(``sigmoid(a * logit + b)``), the version, and the training record: recipe, initialisation,
data-manifest hashes and metrics. Every export is re-loaded through ``forensics_app.core`` and
checked to score like the network it came from.

CLI: ``python -m model_training export --checkpoint runs/NAME/best.pt --out model.pt
[--calib-real DIR --calib-fake DIR] [--test-root DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forensics_app.core.architectures import resolve_arch
from forensics_app.core.detector import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    DEFAULT_BAND,
    file_sha256,
    load_checkpoint,
)
from model_training.checkpoint import atomic_torch_save, atomic_write_text, plain_data
from model_training.metrics import (
    apply_platt,
    equal_error_threshold,
    expected_calibration_error,
    false_positive_rate,
    fit_platt,
    logit,
    sigmoid,
    threshold_at_fpr,
)
from model_training.models import is_app_arch

log = logging.getLogger(__name__)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def export_checkpoint(
    model: nn.Module,
    arch: dict[str, Any],
    out_path: Path | str,
    meta: dict[str, Any],
    *,
    fp16: bool = True,
    verify: bool = True,
) -> Path:
    """Write ``model`` in the app's format (atomically) and return the path.

    ``meta`` must be plain data; ``architecture``, ``format_produced_by`` and ``exported_at``
    are filled in. With ``verify`` the file is loaded by ``forensics_app.core`` and its
    scores on a random batch are compared with the network's.
    """
    if not is_app_arch(arch):
        from forensics_app.core.architectures import STUDY_HEAD_REASON, STUDY_ONLY

        study = STUDY_ONLY.get(str(arch.get("name"))) or (
            STUDY_HEAD_REASON if arch.get("head", "linear") != "linear" else None)
        if study:
            raise ValueError(f"cannot be exported for the app: {study}")
        raise ValueError(f"the app loads ResNets only; {arch.get('name')!r} cannot be exported")
    net = _unwrap(model)
    state = {
        k: (v.detach().cpu().half() if fp16 and v.is_floating_point() else v.detach().cpu())
        for k, v in net.state_dict().items()
    }
    full_meta = plain_data({
        "version": "unversioned", "threshold": 0.5, "inconclusive_band": DEFAULT_BAND,
        **meta,
        "architecture": resolve_arch(arch),
        "format_produced_by": "model_training.export",
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "weights_dtype": "float16" if fp16 else "float32",
    })
    out_path = Path(out_path)
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
                       "state_dict": state, "meta": full_meta}, out_path)
    size_mb = out_path.stat().st_size / 2**20
    log.info("exported %s (%.1f MB, sha256 %s)", out_path, size_mb, file_sha256(out_path)[:12])
    if verify:
        verify_export(net, out_path)
    return out_path


def verify_export(model: nn.Module, path: Path | str, size: int = 64, atol: float = 0.02) -> float:
    """Load ``path`` with the app's loader; the max |P - P'| on a random batch must be small."""
    loaded = load_checkpoint(path)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=gen)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            device = next(model.parameters()).device
            a = torch.sigmoid(model(x.to(device)).float().cpu()[:, 0])
            b = torch.sigmoid(loaded.model(x).float()[:, 0])
    finally:
        model.train(was_training)
    diff = float((a - b).abs().max())
    if diff > atol:
        raise RuntimeError(f"{path}: exported model disagrees with the network (max |dP| {diff:.4f})")
    return diff


# --------------------------------------------------------------------------- calibration


def calibrate(
    real_logits: Sequence[float] | np.ndarray,
    fake_logits: Sequence[float] | np.ndarray | None = None,
    *,
    method: str = "fpr",
    target_fpr: float = 0.05,
    platt: bool = True,
) -> dict[str, Any]:
    """Threshold (and optional Platt scaling) chosen on held-out validation logits.

    ``method``: ``"fpr"`` -- the lowest threshold calling at most ``target_fpr`` of the reals
    generated (needs reals only); ``"eer"`` -- where false-positive and false-negative rates
    meet; ``"fixed"`` -- 0.5. Platt scaling needs fakes too and is skipped without them.
    The threshold applies to the calibrated probability, which is what the app compares.
    """
    real = np.asarray(real_logits, dtype=np.float64).ravel()
    fake = np.asarray(fake_logits if fake_logits is not None else [], dtype=np.float64).ravel()
    if not real.size:
        raise ValueError("calibration needs real validation images")
    labels = np.r_[np.zeros(real.size, np.int64), np.ones(fake.size, np.int64)]
    z = np.r_[real, fake]
    report: dict[str, Any] = {"method": method, "n_real": int(real.size), "n_fake": int(fake.size)}
    calibration = None
    if platt and fake.size:
        a, b = fit_platt(z, labels)
        calibration = {"type": "platt", "a": a, "b": b}
        probs = apply_platt(z, a, b)
    else:
        probs = sigmoid(z)
    if method == "fpr":
        threshold = threshold_at_fpr(probs[labels == 0], target_fpr)
        report["target_fpr"] = target_fpr
    elif method == "eer":
        if not fake.size:
            raise ValueError("the equal-error threshold needs fake validation images")
        threshold, eer = equal_error_threshold(labels, probs)
        report["eer"] = eer
    elif method == "fixed":
        threshold = 0.5
    else:
        raise ValueError(f"method must be fpr, eer or fixed, not {method!r}")
    report["fpr_at_threshold"] = false_positive_rate(probs[labels == 0], threshold)
    if fake.size:
        report["fnr_at_threshold"] = float(np.mean(probs[labels == 1] < threshold))
        report["ece_uncalibrated"] = expected_calibration_error(labels, sigmoid(z))
        report["ece"] = expected_calibration_error(labels, probs)
    return {"threshold": float(threshold), "calibration": calibration, "report": report}


def real_fake_dirs(root: Path | str) -> tuple[list[Path], list[Path]]:
    """The 0_real and 1_fake folders of a ForenSynths-style root (flat or per class)."""
    from model_training.dataset import FAKE_DIR, REAL_DIR, is_real_fake_folder

    root = Path(root)
    if is_real_fake_folder(root):
        return [root / REAL_DIR], [root / FAKE_DIR]
    classes = sorted(d for d in root.iterdir() if d.is_dir() and is_real_fake_folder(d))
    if not classes:
        raise FileNotFoundError(f"{root}: no 0_real/1_fake folders")
    return [d / REAL_DIR for d in classes], [d / FAKE_DIR for d in classes]


def logits_for_folders(model: nn.Module, real_dirs: Sequence[Path | str],
                       fake_dirs: Sequence[Path | str] = (), **score_kwargs: Any
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits of the images in these folders through the app's evaluation pipeline."""
    from model_training.dataset import list_image_files
    from model_training.evaluate import model_predict_fn, score_images

    device = next(model.parameters()).device
    predict = model_predict_fn(model, device)

    def run(dirs: Sequence[Path | str]) -> np.ndarray:
        paths = [str(p) for d in dirs for p in list_image_files(d)]
        if not paths:
            return np.zeros(0)
        probs, _, _ = score_images(paths, predict, with_smoothness=False, **score_kwargs)
        return logit(probs[~np.isnan(probs)], eps=1e-15)

    return run(real_dirs), run(fake_dirs)


# --------------------------------------------------------------------------- model card


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value) or "–"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


CARD_CONFIG_KEYS = (
    "name", "arch", "input_transform", "stages", "pretrained", "crop_size", "load_size",
    "blur_prob", "blur_sig", "jpg_prob", "jpg_qual", "jpg_method", "flip", "batch_size", "lr",
    "beta1", "patience", "min_lr", "seed", "classes", "dataroot",
)


def write_model_card(
    path: Path | str,
    meta: dict[str, Any],
    tables: dict[str, Any] | None = None,
    *,
    checkpoint: Path | str | None = None,
    title: str = "Model card",
    sections: dict[str, str] | None = None,
) -> Path:
    """A Markdown model card from checkpoint ``meta`` plus named tables.

    ``tables`` maps a heading to a Markdown string or to metric rows (as returned by
    ``evaluate_sets``; rendered with a mean row). ``sections`` adds free text (intended use,
    lever studies...) after the tables.
    """
    from model_training.evaluate import METRIC_COLUMNS, markdown_table, with_mean_row

    training = meta.get("training") or {}
    config = training.get("config") or {}
    lines = [f"# {title}\n"]
    facts = [("version", meta.get("version")), ("architecture", meta.get("architecture")),
             ("weights", meta.get("weights_dtype")), ("exported", meta.get("exported_at"))]
    if checkpoint is not None and Path(checkpoint).is_file():
        cp = Path(checkpoint)
        facts = [("file", cp.name), ("sha256", file_sha256(cp)),
                 ("size", f"{cp.stat().st_size / 2**20:.1f} MB")] + facts
    lines.append("| | |\n|:--|:--|")
    lines += [f"| {k} | {_fmt(v)} |" for k, v in facts if v is not None]
    lines.append("")
    lines.append("## Decision threshold and calibration\n")
    cal = meta.get("calibration")
    lines.append(f"- threshold on P(generated): **{_fmt(meta.get('threshold', 0.5))}**, "
                 f"inconclusive band ±{_fmt(meta.get('inconclusive_band', DEFAULT_BAND))}")
    lines.append(f"- calibration: {_fmt(cal) if cal else 'none (raw sigmoid)'}")
    for key, value in (meta.get("calibration_report") or {}).items():
        lines.append(f"- {key.replace('_', ' ')}: {_fmt(value)}")
    lines.append("")
    lines.append("## Training\n")
    init = training.get("init") or {}
    lines.append(f"- initialisation: {_fmt(init) if init else 'unknown'}")
    for split, info in (training.get("data") or {}).items():
        lines.append(f"- {split} data: {_fmt(info)}")
    for key in ("best_epoch", "val_metrics", "training_time", "command"):
        if training.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {_fmt(training[key])}")
    if config:
        lines.append("\n| recipe | |\n|:--|:--|")
        lines += [f"| {k} | {_fmt(config[k])} |" for k in CARD_CONFIG_KEYS if k in config]
    lines.append("")
    for heading, table in (tables or {}).items():
        lines.append(f"## {heading}\n")
        if isinstance(table, str):
            lines.append(table)
        else:
            rows = list(table)
            columns = METRIC_COLUMNS + (("ece",) if rows and all("ece" in r for r in rows)
                                        else ())
            lines.append("AP, accuracies and expected calibration error (ECE) in %.\n")
            lines.append(markdown_table(with_mean_row(rows), columns))
    for heading, text in (sections or {}).items():
        lines.append(f"## {heading}\n\n{text.strip()}\n")
    return atomic_write_text(Path(path), "\n".join(lines).rstrip() + "\n")


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model_training export",
        description="Export a training checkpoint to the app's fp16 format with a threshold "
                    "chosen on validation images, optional evaluation and a model card.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt of a run")
    p.add_argument("--out", type=Path, required=True, help="exported checkpoint (.pt)")
    p.add_argument("--version", default=None, help="version string stored in the checkpoint")
    p.add_argument("--calib-real", type=Path, action="append", default=[],
                   help="folder of held-out real images (repeatable)")
    p.add_argument("--calib-fake", type=Path, action="append", default=[],
                   help="folder of held-out generated images (repeatable)")
    p.add_argument("--calib-root", type=Path, action="append", default=[],
                   help="ForenSynths-style folder (0_real/1_fake, or <class>/0_real|1_fake) "
                        "of held-out images, e.g. the val split (repeatable)")
    p.add_argument("--threshold-method", choices=("fpr", "eer", "fixed"), default="fpr")
    p.add_argument("--target-fpr", type=float, default=0.05)
    p.add_argument("--no-platt", action="store_true", help="store no Platt calibration")
    p.add_argument("--band", type=float, default=DEFAULT_BAND, help="inconclusive half-width")
    p.add_argument("--crop", type=int, help="centre-crop protocol for calibration/evaluation")
    p.add_argument("--test-root", type=Path, help="evaluate the exported file on this root")
    p.add_argument("--eval-out", type=Path, help="evaluation folder (default: <out>_eval)")
    p.add_argument("--card", type=Path, help="model card path (default: MODEL_CARD.md beside)")
    p.add_argument("--card-notes", type=Path, action="append", default=[],
                   help="Markdown file appended to the card as a section (repeatable; its "
                        "first '# ' line is the heading)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    return p


def main(argv: list[str] | None = None) -> int:
    from forensics_app.core.detector import Detector
    from forensics_app.core.preprocess import PreprocessConfig, PreprocessMode
    from model_training.checkpoint import load_training_checkpoint
    from model_training.evaluate import score_folder_sets, summarize, write_report
    from model_training.models import build_network

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ckpt = load_training_checkpoint(args.checkpoint)
    arch = ckpt["arch"]
    net = build_network(arch)
    net.load_state_dict(ckpt["model"])
    net.eval()
    preprocess = (PreprocessConfig(mode=PreprocessMode.CENTER_CROP, crop_size=args.crop)
                  if args.crop else PreprocessConfig())
    score_kwargs = {"preprocess": preprocess, "workers": args.workers,
                    "batch_size": args.batch_size}
    threshold, calibration, report = 0.5, None, {"method": "default 0.5 (no calibration data)"}
    calib_real, calib_fake = list(args.calib_real), list(args.calib_fake)
    for root in args.calib_root:
        real_dirs, fake_dirs = real_fake_dirs(root)
        calib_real += real_dirs
        calib_fake += fake_dirs
    if calib_real:
        real, fake = logits_for_folders(net, calib_real, calib_fake, **score_kwargs)
        result = calibrate(real, fake, method=args.threshold_method, target_fpr=args.target_fpr,
                           platt=not args.no_platt)
        threshold, calibration, report = result["threshold"], result["calibration"], result["report"]
        report["folders"] = [str(p) for p in args.calib_root + args.calib_real + args.calib_fake]
    training = {
        "config": ckpt.get("config", {}), "init": (ckpt.get("meta") or {}).get("init", {}),
        "data": (ckpt.get("meta") or {}).get("data", {}), "best_epoch": ckpt.get("epoch"),
        "val_metrics": ckpt.get("metrics"), "source_checkpoint": args.checkpoint.name,
    }
    meta = {"version": args.version or ckpt.get("config", {}).get("name", "unversioned"),
            "threshold": threshold, "inconclusive_band": args.band, "calibration": calibration,
            "calibration_report": report, "training": training}
    if calibration is None:
        meta.pop("calibration")
    export_checkpoint(net, arch, args.out, meta)
    tables: dict[str, Any] = {}
    if args.test_root:
        det = Detector.from_checkpoint(args.out, device="cpu")
        scored = score_folder_sets(det, args.test_root, **score_kwargs)
        eval_out = args.eval_out or args.out.with_name(args.out.stem + "_eval")
        write_report(eval_out, scored, det.checkpoint.threshold, model_desc=det.model_id,
                     protocol=f"centre crop {args.crop}" if args.crop else "full image, no resize")
        rows = summarize(scored, det.checkpoint.threshold)
        meta["metrics"] = {"test_root": str(args.test_root), "per_set": rows}
        export_checkpoint(net, arch, args.out, meta)
        tables[f"Evaluation on {args.test_root.name}"] = rows
    card = args.card or args.out.with_name("MODEL_CARD.md")
    stored = load_checkpoint(args.out).meta
    sections = {}
    for note in args.card_notes:
        text = note.read_text(encoding="utf-8")
        first, _, rest = text.partition("\n")
        if first.startswith("# "):
            sections[first[2:].strip()] = rest
        else:
            sections[note.stem.replace("_", " ")] = text
    write_model_card(card, stored, tables, checkpoint=args.out, sections=sections)
    print(json.dumps({"checkpoint": str(args.out), "card": str(card), "threshold": threshold},
                     indent=2))
    return 0


def int8_calibration_tiles(reals: Sequence[Path | str], fakes: Sequence[Path | str],
                           n_each: int = 8, side: int = 256, seed: int = 0) -> torch.Tensor:
    """Tiles for the int8 activation ranges: ``n_each`` training photos and ``n_each`` training
    fakes (never held-out or dev_test files), a centred ``side``-pixel crop of each, prepared
    with the app's one preprocessing preset."""
    from PIL import Image

    from forensics_app.core.preprocess import PreprocessConfig, center_crop, prepare_image

    rng = np.random.default_rng(seed)
    tiles = []
    for group in (sorted(map(str, reals)), sorted(map(str, fakes))):
        taken = 0
        for i in rng.permutation(len(group)):  # seeded order; files smaller than side skipped
            if taken == n_each:
                break
            with Image.open(group[i]) as im:
                if min(im.size) < side:
                    continue
                img = center_crop(im.convert("RGB"), side)
            tiles.append(prepare_image(img, PreprocessConfig()).tile(0))
            taken += 1
    if not tiles:
        raise ValueError(f"no calibration image is at least {side} px on its shorter side")
    return torch.stack(tiles)


def add_int8_calibration(path: Path | str, tiles: torch.Tensor, source: str) -> dict[str, Any]:
    """Measure the int8 activation ranges of the checkpoint at ``path`` as the app loads it
    (fp16 weights, BatchNorm folded) on ``tiles`` and store them in its ``meta`` (atomically)."""
    from forensics_app.core.architectures import fold_batchnorm
    from forensics_app.core.quantize import calibrate_int8

    path = Path(path)
    loaded = load_checkpoint(path)
    info = calibrate_int8(fold_batchnorm(loaded.model.eval()), tiles, source)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    raw["meta"]["int8_calibration"] = plain_data(info)
    atomic_torch_save(raw, path)
    log.info("int8 calibration (%d observers, %s) stored in %s", len(info["observers"]),
             source, path)
    return info
