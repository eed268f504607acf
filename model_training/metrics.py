"""Detection metrics on P(generated) scores: AP, accuracy, calibration, threshold choice.

Labels are 0 = real, 1 = generated. A score is called generated when ``score >= threshold``,
the app's rule (``forensics_app.core.results.verdict_for`` with no band); the paper's code
uses ``> 0.5``, which differs only for scores exactly on the threshold. ``average_precision``
is sklearn's definition (step-wise, ties grouped), written out so the app-side code paths need
no sklearn; tests check the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _arrays(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray):
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length ({y.size} vs {s.size})")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (generated)")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def average_precision(labels, scores) -> float:
    """Area under the precision-recall curve as sklearn computes it (NaN without positives)."""
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # last index of each run of equal scores = one threshold
    distinct = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
    tp = np.cumsum(y)[distinct]
    fp = (distinct + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


def predictions(scores, threshold: float = 0.5) -> np.ndarray:
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int64)


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    y, s = _arrays(labels, scores)
    if y.size == 0:
        return float("nan")
    return float(np.mean(predictions(s, threshold) == y))


def class_accuracies(labels, scores, threshold: float = 0.5) -> dict[str, float]:
    """Overall accuracy and accuracy on reals / on fakes (the paper's acc, r_acc, f_acc)."""
    y, s = _arrays(labels, scores)
    return {
        "acc": accuracy(y, s, threshold),
        "real_acc": accuracy(y[y == 0], s[y == 0], threshold),
        "fake_acc": accuracy(y[y == 1], s[y == 1], threshold),
    }


def binary_summary(labels, scores, threshold: float = 0.5) -> dict[str, float | int]:
    """AP, accuracies at ``threshold`` and counts: one row of the paper's table."""
    y, s = _arrays(labels, scores)
    n_fake = int(y.sum())
    return {
        "ap": average_precision(y, s), **class_accuracies(y, s, threshold),
        "n_real": int(y.size - n_fake), "n_fake": n_fake, "threshold": float(threshold),
    }


def expected_calibration_error(labels, probs, n_bins: int = 15) -> float:
    """Binary ECE of P(generated): sum over equal-width bins of |mean p - fraction fake|,
    weighted by the bin's share of samples."""
    y, p = _arrays(labels, probs)
    if y.size == 0:
        return float("nan")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)


def threshold_at_fpr(real_scores, fpr: float) -> float:
    """The lowest threshold calling at most ``fpr`` of these reals generated (score >= t)."""
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise ValueError("no real scores to choose a threshold on")
    if not 0.0 <= fpr <= 1.0:
        raise ValueError("fpr must lie in [0, 1]")
    allowed = int(math.floor(fpr * s.size + 1e-9))
    if allowed >= s.size:
        return float(s[-1])
    # just above the (allowed+1)-th highest real score: it and all below stay "real"
    return float(np.nextafter(s[allowed], np.inf))


def false_positive_rate(real_scores, threshold: float) -> float:
    s = np.asarray(real_scores, dtype=np.float64)
    return float(np.mean(s >= threshold)) if s.size else float("nan")


def equal_error_threshold(labels, scores) -> tuple[float, float]:
    """(threshold, equal error rate): where the false-positive and false-negative rates meet."""
    y, s = _arrays(labels, scores)
    real, fake = np.sort(s[y == 0]), np.sort(s[y == 1])
    if not real.size or not fake.size:
        raise ValueError("the equal error rate needs real and generated scores")
    candidates = np.unique(np.r_[s, np.nextafter(s.max(), np.inf)])
    fpr = 1.0 - np.searchsorted(real, candidates, side="left") / real.size  # reals >= t
    fnr = np.searchsorted(fake, candidates, side="left") / fake.size  # fakes < t
    i = int(np.argmin(np.abs(fpr - fnr)))
    return float(candidates[i]), float((fpr[i] + fnr[i]) / 2)


def logit(p, eps: float = 1e-7) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def sigmoid(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def fit_platt(logits, labels, prior_correction: bool = True) -> tuple[float, float]:
    """Platt scaling: (a, b) so that sigmoid(a * logit + b) is calibrated on these samples.

    With ``prior_correction`` the targets are Platt's (N+ + 1)/(N+ + 2) and 1/(N- + 2), which
    keeps a perfectly separated validation set from producing an infinite slope.
    """
    y, z = _arrays(labels, logits)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    if not n_pos or not n_neg:
        raise ValueError("Platt scaling needs real and generated samples")
    if prior_correction:
        t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    else:
        t = y.astype(np.float64)
    from scipy.optimize import minimize

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        f = a * z + b
        # BCE with logits, numerically stable
        nll = np.sum(np.logaddexp(0.0, f) - t * f)
        g = sigmoid(f) - t
        return float(nll), np.array([np.sum(g * z), np.sum(g)])

    res = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = res.x
    return float(a), float(b)


def apply_platt(logits, a: float, b: float) -> np.ndarray:
    """What ``forensics_app.core.detector.Detector`` computes: sigmoid(a * logit + b)."""
    return sigmoid(a * np.asarray(logits, dtype=np.float64) + b)


def paper_metrics(labels, scores, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, specificity, F1 and the confusion matrix at ``threshold``
    (generated = positive), the columns of the CIFAKE study's table. A ratio with a zero
    denominator is 0.0 (sklearn's ``zero_division=0``), so a network that calls nothing
    generated shows precision 0, not NaN."""
    y, s = _arrays(labels, scores)
    pred = predictions(s, threshold)
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "accuracy": ratio(tp + tn, y.size), "precision": precision, "recall": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}, "threshold": float(threshold),
    }
