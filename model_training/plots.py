"""Figures: training curves, PR/ROC curves, robustness sweeps (PNG, written atomically).

Uses matplotlib's object API with the Agg canvas -- never ``pyplot`` -- so plotting works
headless and cannot disturb a Qt event loop in the same process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_training.checkpoint import atomic_savefig


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_training_curves(history: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Train/val loss, val accuracy and val AP per epoch; lr decays marked."""
    fig = _figure(11, 3.4)
    axes = fig.subplots(1, 3)
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> list[float]:
        return [float(h.get(key, np.nan)) for h in history]

    axes[0].plot(epochs, series("train_loss"), "o-", label="train")
    axes[0].plot(epochs, series("val_loss"), "s-", label="val")
    axes[0].set_title("BCE loss")
    axes[0].legend()
    axes[1].plot(epochs, [100 * v for v in series("val_acc")], "o-")
    axes[1].set_title("val accuracy (%)")
    axes[2].plot(epochs, [100 * v for v in series("val_ap")], "o-", color="C2")
    axes[2].set_title("val AP (%)")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        for h in history:
            if h.get("action") == "decay":
                ax.axvline(h["epoch"], color="grey", ls="--", lw=0.8)
    fig.suptitle("dashed: learning rate / 10", fontsize=8)
    return atomic_savefig(fig, path)


def plot_pr_roc(labels: np.ndarray, scores: np.ndarray, path: Path | str, title: str) -> Path:
    """Precision-recall and ROC curves of one test set."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    from model_training.metrics import average_precision

    fig = _figure(8, 3.6)
    ax_pr, ax_roc = fig.subplots(1, 2)
    precision, recall, _ = precision_recall_curve(labels, scores)
    ax_pr.step(recall, precision, where="post")
    ax_pr.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
              title=f"PR  (AP {100 * average_precision(labels, scores):.1f})")
    fpr, tpr, _ = roc_curve(labels, scores)
    ax_roc.plot(fpr, tpr)
    ax_roc.plot([0, 1], [0, 1], ls=":", color="grey")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1),
               ylim=(0, 1.02), title=f"ROC  (AUC {100 * auc(fpr, tpr):.1f})")
    for ax in (ax_pr, ax_roc):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return atomic_savefig(fig, path)


def plot_robustness(rows: Sequence[dict[str, Any]], perturbation: str, path: Path | str) -> Path:
    """AP and accuracy against the perturbation level, one line per test set (paper Fig. 5)."""
    rows = [r for r in rows if r["perturbation"] == perturbation]
    fig = _figure(9, 3.6)
    ax_ap, ax_acc = fig.subplots(1, 2)
    for name in dict.fromkeys(r["set"] for r in rows):
        pts = [r for r in rows if r["set"] == name]
        levels = [r["level"] for r in pts]
        ax_ap.plot(levels, [100 * r["ap"] for r in pts], "o-", label=name)
        ax_acc.plot(levels, [100 * r["acc"] for r in pts], "o-", label=name)
    xlabel = "Gaussian blur sigma" if perturbation == "blur" else "JPEG quality"
    for ax, what in ((ax_ap, "AP (%)"), (ax_acc, "accuracy (%)")):
        ax.set(xlabel=xlabel, ylabel=what, ylim=(0, 102))
        ax.grid(alpha=0.3)
        if perturbation == "jpeg":
            ax.invert_xaxis()  # stronger compression to the right, as in the paper
    ax_ap.legend(fontsize=7)
    fig.suptitle(f"robustness to test-time {perturbation}")
    return atomic_savefig(fig, path)
