"""Evaluation over ForenSynths-style test roots: the paper's table, baselines, robustness, curves.

A test root holds sets; a set is ``<set>/0_real`` + ``<set>/1_fake``, or
``<set>/<class>/0_real|1_fake`` (pooled over classes, as the paper does for ProGAN, StyleGAN,
CycleGAN...). Images go through the app's own code path -- ``forensics_app.core`` decoding,
``prepare_image`` with the one preprocessing preset and, for checkpoints in the app's format,
``Detector`` -- so the numbers describe what the app would say. The default protocol is the
paper's no-resize one: the full image, batched with images of the same size; ``--crop 224``
gives the centre-crop protocol.

Reported per set: AP, accuracy at the threshold, accuracy on reals and on fakes, counts
(never a pooled AP across sets). Baseline rows: random scores, the majority class, and the
"smoothness cue" (score = minus the mean absolute 4-neighbour Laplacian of the grey image), a
trivial detector a model must beat to show it learned more than "smooth means generated".

CLI: ``python -m model_training evaluate --model CKPT --test-root DIR --out DIR``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from forensics_app.core.preprocess import PreprocessConfig, PreprocessMode, prepare_image
from forensics_app.core.scan import aggregate_tiles
from model_training.augment import AugmentParams, apply_params
from model_training.checkpoint import atomic_write_text
from model_training.dataset import (
    FAKE_DIR,
    REAL_DIR,
    is_real_fake_folder,
    list_image_files,
    load_rgb,
)
from model_training.metrics import (
    binary_summary,
    equal_error_threshold,
    expected_calibration_error,
)

log = logging.getLogger(__name__)

PredictFn = Callable[[torch.Tensor], np.ndarray]  # normalised batch -> P(generated)
Perturbation = Callable[[Image.Image], Image.Image]
ProgressFn = Callable[[int, int], None]

BLUR_SIGMAS = (0, 1, 2, 3, 4)
JPEG_QUALITIES = (100, 90, 80, 70, 60, 50, 40, 30)
METRIC_COLUMNS = ("set", "ap", "acc", "real_acc", "fake_acc", "n_real", "n_fake")


# --------------------------------------------------------------------------- test sets


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # not a pytest test class, whatever imports it

    name: str
    real: tuple[str, ...]
    fake: tuple[str, ...]

    def files(self) -> list[tuple[str, int]]:
        return [(p, 0) for p in self.real] + [(p, 1) for p in self.fake]


def _files(folder: Path) -> tuple[str, ...]:
    return tuple(str(p) for p in list_image_files(folder))


def discover_sets(test_root: Path | str, sets: Sequence[str] | None = None) -> list[TestSet]:
    """Test sets under ``test_root`` (or the root itself when it holds 0_real/1_fake)."""
    root = Path(test_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: test root not found")
    found: list[TestSet] = []
    if is_real_fake_folder(root):
        found.append(TestSet(root.name, _files(root / REAL_DIR), _files(root / FAKE_DIR)))
    else:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if is_real_fake_folder(sub):
                found.append(TestSet(sub.name, _files(sub / REAL_DIR), _files(sub / FAKE_DIR)))
                continue
            classes = sorted(c for c in sub.iterdir() if c.is_dir() and is_real_fake_folder(c))
            if classes:
                real = tuple(p for c in classes for p in _files(c / REAL_DIR))
                fake = tuple(p for c in classes for p in _files(c / FAKE_DIR))
                found.append(TestSet(sub.name, real, fake))
            else:
                log.info("skipping %s: no 0_real/1_fake folders", sub)
    if sets:
        by_name = {s.name: s for s in found}
        missing = [n for n in sets if n not in by_name]
        if missing:
            raise FileNotFoundError(f"{root}: sets not found: {', '.join(missing)}; "
                                    f"available: {', '.join(by_name)}")
        found = [by_name[n] for n in sets]
    if not found:
        raise FileNotFoundError(f"{root}: no test sets (folders with 0_real/ and 1_fake/)")
    return found


def subsample(test_set: TestSet, max_per_class: int | None, seed: int = 0) -> TestSet:
    """At most ``max_per_class`` reals and fakes, drawn reproducibly (for quick sweeps)."""
    if not max_per_class:
        return test_set
    rng = np.random.default_rng(seed)

    def pick(files: tuple[str, ...]) -> tuple[str, ...]:
        if len(files) <= max_per_class:
            return files
        idx = np.sort(rng.choice(len(files), max_per_class, replace=False))
        return tuple(files[i] for i in idx)

    return TestSet(test_set.name, pick(test_set.real), pick(test_set.fake))


# --------------------------------------------------------------------------- predictors


def model_predict_fn(model: nn.Module, device: torch.device | str = "cpu") -> PredictFn:
    """P(generated) from a 1-logit training network (sigmoid of its output)."""
    device = torch.device(device)
    model.eval().to(device)

    def predict(batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            out = model(batch.to(device)).float()
            # float64 sigmoid keeps logits recoverable (calibration) far into the tails
            return torch.sigmoid(out[:, 0].double()).cpu().numpy()

    return predict


def as_predict_fn(obj: Any, device: torch.device | str = "cpu") -> tuple[PredictFn, float]:
    """(predict function, default threshold) for a Detector, a network or a callable."""
    from forensics_app.core.detector import Detector

    if isinstance(obj, Detector):
        return obj.predict_proba, obj.checkpoint.threshold
    if isinstance(obj, nn.Module):
        return model_predict_fn(obj, device), 0.5
    if callable(obj):
        return obj, 0.5
    raise TypeError(f"cannot score with a {type(obj).__name__}")


def load_predictor(path: Path | str, device: str = "auto",
                   precision: str = "fp32") -> tuple[PredictFn, float, str]:
    """A scoring function for any checkpoint: the app's formats through ``Detector`` (with the
    app's forward ``precision``), this package's training checkpoints (``last.pt``/``best.pt``)
    through their recorded arch."""
    from forensics_app.core.detector import Detector, resolve_device
    from forensics_app.core.speed import SpeedLevers
    from model_training.checkpoint import TRAINING_FORMAT, load_torch_file
    from model_training.models import build_network

    path = Path(path)
    obj = load_torch_file(path)
    if isinstance(obj, dict) and obj.get("format") == TRAINING_FORMAT:
        net = build_network(obj["arch"])
        net.load_state_dict(obj["model"])
        desc = f"{path.name} (training checkpoint, {obj['arch']['name']}, epoch {obj.get('epoch')})"
        if precision != "fp32":
            raise ValueError(f"--precision {precision} needs an app checkpoint, not a training one")
        return model_predict_fn(net, resolve_device(device)), 0.5, desc
    del obj
    det = Detector.from_checkpoint(path, device=device, levers=SpeedLevers(precision=precision))
    suffix = "" if precision == "fp32" else f", {precision}"
    return (det.predict_proba, det.checkpoint.threshold,
            f"{det.model_id} ({det.checkpoint.kind}{suffix})")


# --------------------------------------------------------------------------- scoring


def smoothness_score(img: Image.Image) -> float:
    """The smoothness cue: minus the mean |4-neighbour Laplacian| of the grey image.

    High for smooth images. A baseline, not a detector: generated images are often smoother
    than photos, so this alone reaches a fair AP on some sets.
    """
    g = np.asarray(img.convert("L"), dtype=np.float64)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return -float(np.mean(np.abs(lap)))


def blur_perturbation(sigma: float) -> Perturbation:
    params = AugmentParams(float(sigma) if sigma > 0 else None, None, None)
    return lambda img: apply_params(img, params)


def downscale_perturbation(factor: float = 0.5) -> Perturbation:
    """Down-scale by ``factor`` (bicubic, antialiased), as a social-media resize would."""
    def apply(img: Image.Image) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BICUBIC)
    return apply


def jpeg_perturbation(quality: int, method: str = "pil") -> Perturbation:
    params = AugmentParams(None, int(quality), method)
    return lambda img: apply_params(img, params)


@dataclass
class SetScores:
    """Per-image scores of one test set (NaN where an image could not be read)."""

    name: str
    paths: list[str]
    labels: np.ndarray
    scores: np.ndarray | None
    smoothness: np.ndarray | None
    errors: dict[str, str] = field(default_factory=dict)

    def valid(self, which: str = "scores") -> tuple[np.ndarray, np.ndarray]:
        values = getattr(self, which)
        ok = ~np.isnan(values)
        return self.labels[ok], values[ok]


@dataclass
class _Intake:
    index: int
    tensors: list[torch.Tensor]
    smooth: float
    error: str | None


def score_images(
    paths: Sequence[str],
    predict: PredictFn | None,
    *,
    preprocess: PreprocessConfig | None = None,
    batch_size: int = 16,
    perturb: Perturbation | None = None,
    workers: int = 2,
    with_smoothness: bool = True,
    max_batch_pixels: int = 16 * 512 * 512,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Scores and smoothness cues for ``paths``, in order.

    Decoding, the optional perturbation and preprocessing run on ``workers`` threads; inputs
    of one shape are batched together (the full-image protocol's "batch by size"); tiles of
    an over-large image are combined as the app combines them.
    """
    preprocess = preprocess or PreprocessConfig()
    n = len(paths)
    scores = np.full(n, np.nan)
    smooth = np.full(n, np.nan)
    errors: dict[str, str] = {}
    tile_probs: dict[int, list[float | None]] = {}
    groups: dict[tuple[int, ...], list[tuple[int, int, torch.Tensor]]] = {}
    done = 0

    def take_in(i: int) -> _Intake:
        try:
            img = load_rgb(paths[i])
            if perturb is not None:
                img = perturb(img)
            s = smoothness_score(img) if with_smoothness else float("nan")
            tensors = prepare_image(img, preprocess).tensors if predict is not None else []
            return _Intake(i, tensors, s, None)
        except Exception as exc:  # noqa: BLE001 -- one unreadable file must not stop a run
            return _Intake(i, [], float("nan"), f"{type(exc).__name__}: {exc}")

    def finish_one() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, n)

    def run_group(shape: tuple[int, ...]) -> None:
        entries = groups.pop(shape)
        with torch.inference_mode():
            probs = np.asarray(predict(torch.stack([t for _, _, t in entries])), dtype=np.float64)
        for (i, tile, _), p in zip(entries, probs, strict=True):
            tiles = tile_probs[i]
            tiles[tile] = float(p)
            if all(v is not None for v in tiles):
                scores[i] = tiles[0] if len(tiles) == 1 else aggregate_tiles(tiles)
                del tile_probs[i]
                finish_one()

    def limit(shape: tuple[int, ...]) -> int:
        return max(1, min(batch_size, max_batch_pixels // max(1, shape[-1] * shape[-2])))

    def add(intake: _Intake) -> None:
        smooth[intake.index] = intake.smooth
        if intake.error is not None:
            errors[paths[intake.index]] = intake.error
            log.warning("%s: %s", paths[intake.index], intake.error)
            finish_one()
            return
        if predict is None:
            finish_one()
            return
        tile_probs[intake.index] = [None] * len(intake.tensors)
        for tile, t in enumerate(intake.tensors):
            shape = tuple(t.shape)
            groups.setdefault(shape, []).append((intake.index, tile, t))
            if len(groups[shape]) >= limit(shape):
                run_group(shape)
        while sum(len(g) for g in groups.values()) > 4 * batch_size:
            run_group(next(iter(groups)))

    window = max(4, 2 * batch_size)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="eval-intake") as pool:
        inflight: list[Future[_Intake]] = []
        nxt = 0
        while nxt < n or inflight:
            while nxt < n and len(inflight) < window:
                inflight.append(pool.submit(take_in, nxt))
                nxt += 1
            add(inflight.pop(0).result())
        while groups:
            run_group(next(iter(groups)))
    return scores, smooth, errors


def score_folder_sets(
    predict_fn_or_detector: Any,
    test_root: Path | str | Sequence[TestSet],
    *,
    sets: Sequence[str] | None = None,
    preprocess: PreprocessConfig | None = None,
    batch_size: int = 16,
    workers: int = 2,
    perturb: Perturbation | None = None,
    device: torch.device | str = "cpu",
    max_per_class: int | None = None,
    seed: int = 0,
    with_smoothness: bool = True,
    progress: ProgressFn | None = None,
) -> list[SetScores]:
    """Score every image of every set. ``predict_fn_or_detector`` may be a ``Detector``, a
    network (sigmoid of its logit), a callable batch -> P(generated), or None (cues only)."""
    predict = None if predict_fn_or_detector is None else as_predict_fn(
        predict_fn_or_detector, device)[0]
    test_sets = (discover_sets(test_root, sets) if isinstance(test_root, str | Path)
                 else list(test_root))
    out = []
    for ts in test_sets:
        ts = subsample(ts, max_per_class, seed)
        files = ts.files()
        paths = [p for p, _ in files]
        labels = np.array([y for _, y in files], dtype=np.int64)
        t0 = time.perf_counter()
        scores, smooth, errors = score_images(
            paths, predict, preprocess=preprocess, batch_size=batch_size, perturb=perturb,
            workers=workers, with_smoothness=with_smoothness, progress=progress,
        )
        log.info("%s: scored %d images in %.1f s", ts.name, len(paths), time.perf_counter() - t0)
        out.append(SetScores(ts.name, paths, labels, scores if predict else None,
                             smooth if with_smoothness else None, errors))
    return out


def summarize(set_scores: Sequence[SetScores], threshold: float = 0.5,
              which: str = "scores") -> list[dict[str, Any]]:
    """One row per set: AP, acc, real_acc, fake_acc (fractions), counts, unreadable files."""
    rows = []
    for ss in set_scores:
        labels, values = ss.valid(which)
        row = {"set": ss.name, **binary_summary(labels, values, threshold),
               "n_errors": len(ss.errors)}
        if which == "scores" and labels.size:  # scores are probabilities: calibration error
            row["ece"] = expected_calibration_error(labels, values)
        rows.append(row)
    return rows


def evaluate_sets(
    predict_fn_or_detector: Any,
    test_root: Path | str | Sequence[TestSet],
    *,
    threshold: float | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The paper's table: per set AP, accuracy at ``threshold`` (default: the detector's own,
    else 0.5), accuracy on reals and on fakes, counts. ``kwargs`` go to
    :func:`score_folder_sets`."""
    if threshold is None:
        threshold = as_predict_fn(predict_fn_or_detector)[1]
    return summarize(score_folder_sets(predict_fn_or_detector, test_root, **kwargs), threshold)


# --------------------------------------------------------------------------- baselines


def baseline_rows(set_scores: Sequence[SetScores], seed: int = 0,
                  smoothness_threshold: float | None = None) -> list[dict[str, Any]]:
    """Random, majority-class and smoothness-cue rows per set (``method`` names each).

    The smoothness cue has no natural threshold: unless ``smoothness_threshold`` is given
    (e.g. chosen on held-out reals), its accuracy is at the set's own equal-error threshold
    -- an oracle, so an upper bound for the cue.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for ss in set_scores:
        y = ss.labels
        n_fake = int(y.sum())
        rows.append({"method": "random", "set": ss.name,
                     **binary_summary(y, rng.random(y.size), 0.5)})
        majority = 1.0 if n_fake >= y.size - n_fake else 0.0
        rows.append({"method": "majority", "set": ss.name,
                     **binary_summary(y, np.full(y.size, majority), 0.5)})
        if ss.smoothness is not None:
            labels, cue = ss.valid("smoothness")
            if smoothness_threshold is not None:
                t, note = smoothness_threshold, "given"
            elif 0 < labels.sum() < labels.size:
                t, note = equal_error_threshold(labels, cue)[0], "oracle EER"
            else:
                t, note = float(np.median(cue)), "median"
            rows.append({"method": "smoothness", "set": ss.name,
                         **binary_summary(labels, cue, t), "threshold_note": note})
    return rows


# --------------------------------------------------------------------------- robustness


def robustness_sweep(
    predict_fn_or_detector: Any,
    test_root: Path | str | Sequence[TestSet],
    *,
    threshold: float | None = None,
    blur_sigmas: Sequence[float] = BLUR_SIGMAS,
    jpeg_qualities: Sequence[int] = JPEG_QUALITIES,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """AP and accuracy per set under test-time Gaussian blur and JPEG (paper Fig. 5).

    Each level re-scores the sets with the perturbation applied to the decoded image before
    preprocessing. ``kwargs`` go to :func:`score_folder_sets` (e.g. ``max_per_class``).
    """
    if threshold is None:
        threshold = as_predict_fn(predict_fn_or_detector)[1]
    if isinstance(test_root, str | Path):
        test_root = discover_sets(test_root, kwargs.pop("sets", None))
    levels = [("blur", s, blur_perturbation(s)) for s in blur_sigmas]
    levels += [("jpeg", q, jpeg_perturbation(q)) for q in jpeg_qualities]
    rows = []
    for kind, level, perturb in levels:
        scored = score_folder_sets(predict_fn_or_detector, test_root, perturb=perturb,
                                   with_smoothness=False, **kwargs)
        for row in summarize(scored, threshold):
            rows.append({"perturbation": kind, "level": level, **row})
        log.info("robustness %s %s: mean AP %.1f", kind, level,
                 100 * np.nanmean([r["ap"] for r in rows if r["level"] == level
                                   and r["perturbation"] == kind]))
    return rows


# --------------------------------------------------------------------------- tables


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def with_mean_row(rows: Sequence[dict[str, Any]], label: str = "mean") -> list[dict[str, Any]]:
    """Append the mean over sets of AP and accuracies (counts summed), as the paper's mAP."""
    rows = list(rows)
    if not rows:
        return rows
    mean: dict[str, Any] = {"set": label}
    for key in ("ap", "acc", "real_acc", "fake_acc", "ece"):
        if all(key in r for r in rows):
            mean[key] = float(np.nanmean([r[key] for r in rows]))
    for key in ("n_real", "n_fake"):
        mean[key] = int(sum(r[key] for r in rows))
    return rows + [mean]


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = METRIC_COLUMNS) -> str:
    """Rows as a Markdown table; AP and accuracies in percent."""
    headers = {"set": "set", "method": "method", "ap": "AP", "acc": "acc", "real_acc": "real acc",
               "fake_acc": "fake acc", "n_real": "n real", "n_fake": "n fake",
               "threshold": "threshold", "perturbation": "perturbation", "level": "level",
               "ece": "ECE"}
    pct = {"ap", "acc", "real_acc", "fake_acc", "ece"}
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|" + "|".join(":--" if c in ("set", "method") else "--:" for c in columns) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if c in pct:
                cells.append(_pct(v))
            elif isinstance(v, float):
                cells.append(f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_table(model_rows: Sequence[dict[str, Any]] | None,
                   baselines: Sequence[dict[str, Any]], key: str = "ap") -> str:
    """Sets as rows, methods as columns (AP by default): the model against each baseline."""
    methods = list(dict.fromkeys(b["method"] for b in baselines))
    names = list(dict.fromkeys(b["set"] for b in baselines))
    lookup = {(b["method"], b["set"]): b[key] for b in baselines}
    model = {r["set"]: r[key] for r in model_rows or []}
    cols = (["model"] if model_rows else []) + methods
    lines = ["| set | " + " | ".join(cols) + " |", "|:--|" + "--:|" * len(cols)]
    for name in names + ["mean"]:
        if name == "mean":
            vals = ([float(np.nanmean(list(model.values())))] if model_rows else []) + [
                float(np.nanmean([lookup[(m, s)] for s in names])) for m in methods]
        else:
            vals = ([model.get(name)] if model_rows else []) + [lookup.get((m, name)) for m in methods]
        lines.append(f"| {name} | " + " | ".join(_pct(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(rows: Sequence[dict[str, Any]], path: Path | str) -> Path:
    return atomic_write_text(Path(path), csv_text(rows))


def scores_csv(set_scores: Sequence[SetScores]) -> str:
    rows = []
    for ss in set_scores:
        for i, path in enumerate(ss.paths):
            rows.append({
                "set": ss.name, "path": path, "label": int(ss.labels[i]),
                "score": "" if ss.scores is None else float(ss.scores[i]),
                "smoothness": "" if ss.smoothness is None else float(ss.smoothness[i]),
                "error": ss.errors.get(path, ""),
            })
    return csv_text(rows)


# --------------------------------------------------------------------------- report + CLI


def write_report(
    out_dir: Path | str,
    set_scores: Sequence[SetScores],
    threshold: float,
    *,
    model_desc: str = "",
    protocol: str = "full image, no resize",
    baselines: bool = True,
    curves: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Write results.{md,csv}, baselines.csv, scores.csv, curves/<set>.png; return the rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_model = bool(set_scores) and set_scores[0].scores is not None
    rows = summarize(set_scores, threshold) if has_model else []
    base = baseline_rows(set_scores, seed) if baselines else []
    md = [f"# Evaluation\n\nModel: {model_desc or '(none: baselines only)'}  \n"
          f"Protocol: {protocol}  \nThreshold: {threshold:.4g}\n"]
    if rows:
        md += ["\n## Per set (AP, accuracies and expected calibration error in %)\n\n",
               markdown_table(with_mean_row(rows), METRIC_COLUMNS + ("ece",))]
        write_csv(rows, out_dir / "results.csv")
    if base:
        md += ["\n## AP against baselines (%)\n\n", baseline_table(rows, base),
               "\nsmoothness: score = -mean |Laplacian| of the grey image; its accuracy uses the "
               "set's own equal-error threshold (an oracle).\n",
               "\n## Baselines per set\n\n",
               markdown_table(base, ("method",) + METRIC_COLUMNS)]
        write_csv(base, out_dir / "baselines.csv")
    atomic_write_text(out_dir / "results.md", "".join(md))
    atomic_write_text(out_dir / "scores.csv", scores_csv(set_scores))
    if curves and has_model:
        from model_training.plots import plot_pr_roc

        for ss in set_scores:
            labels, values = ss.valid()
            if 0 < labels.sum() < labels.size:
                plot_pr_roc(labels, values, out_dir / "curves" / f"{ss.name}.png", ss.name)
    summary = {"model": model_desc, "protocol": protocol, "threshold": threshold,
               "results": rows, "baselines": base}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def write_robustness(rows: Sequence[dict[str, Any]], out_dir: Path | str) -> None:
    from model_training.plots import plot_robustness

    out_dir = Path(out_dir)
    write_csv(rows, out_dir / "robustness.csv")
    for kind in dict.fromkeys(r["perturbation"] for r in rows):
        plot_robustness(rows, kind, out_dir / f"robustness_{kind}.png")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model_training evaluate",
        description="Per-set AP/accuracy over a ForenSynths-style test root (paper protocol: "
                    "full image, no resize), with baselines, PR/ROC curves and an optional "
                    "blur/JPEG robustness sweep.",
    )
    p.add_argument("--model", type=Path, help="checkpoint (app format, CNNDetection weights, "
                                              "or a training last.pt/best.pt); omit for "
                                              "baselines only")
    p.add_argument("--test-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--sets", help="comma-separated subset of sets")
    p.add_argument("--crop", type=int, help="centre-crop protocol with this size (paper: 224)")
    p.add_argument("--threshold", type=float, help="default: the checkpoint's, else 0.5")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decode threads")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="the app's forward-pass precision (app checkpoints only)")
    p.add_argument("--max-per-class", type=int, help="subsample each set (quick runs)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--no-curves", action="store_true")
    p.add_argument("--robustness", action="store_true", help="also run the blur/JPEG sweep")
    p.add_argument("--sweep-max-per-class", type=int,
                   help="images per class per level in the sweep (default: all)")
    p.add_argument("--blur-sigmas", default="0,1,2,3,4")
    p.add_argument("--jpeg-qualities", default="100,90,80,70,60,50,40,30")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    preprocess = (PreprocessConfig(mode=PreprocessMode.CENTER_CROP, crop_size=args.crop)
                  if args.crop else PreprocessConfig())
    protocol = f"centre crop {args.crop}" if args.crop else "full image, no resize"
    predict, threshold, desc = None, 0.5, ""
    if args.model is not None:
        predict, threshold, desc = load_predictor(args.model, args.device, args.precision)
    if args.threshold is not None:
        threshold = args.threshold
    sets = discover_sets(args.test_root, [s for s in (args.sets or "").split(",") if s] or None)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(unit="img", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    common = {"preprocess": preprocess, "batch_size": args.batch_size, "workers": args.workers,
              "seed": args.seed, "progress": progress}
    scored = score_folder_sets(predict, sets, max_per_class=args.max_per_class, **common)
    summary = write_report(args.out, scored, threshold, model_desc=desc, protocol=protocol,
                           baselines=not args.no_baselines, curves=not args.no_curves,
                           seed=args.seed)
    if args.robustness and predict is not None:
        rows = robustness_sweep(predict, sets, threshold=threshold,
                                blur_sigmas=_ints(args.blur_sigmas),
                                jpeg_qualities=_ints(args.jpeg_qualities),
                                max_per_class=args.sweep_max_per_class or args.max_per_class,
                                **common)
        write_robustness(rows, args.out)
    if bar is not None:
        bar.close()
    if summary["results"]:
        print(markdown_table(with_mean_row(summary["results"])), end="")  # the paper's table
    if summary["baselines"]:
        print(baseline_table(summary["results"], summary["baselines"]), end="")
    return 0
