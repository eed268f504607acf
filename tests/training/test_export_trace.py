"""The fusion shipped with a fine-tuned trace CNN: weights re-expressed for the calibrated
semantic head, and a bias that puts the threshold at the target FPR of out-of-fold reals."""

from __future__ import annotations

import numpy as np

from model_training.export_trace import fused_bias


def test_fused_bias_reexpresses_the_semantic_weight_and_hits_the_target_fpr():
    rng = np.random.default_rng(0)
    n = 400
    y = np.r_[np.zeros(n), np.ones(n)]
    trace = np.r_[rng.normal(-1, 1, n), rng.normal(1, 1, n)]
    raw = np.r_[rng.normal(-2, 1, n), rng.normal(2, 1, n)]
    fusion = {"fusion_all_folds": {"weights": {"trace": 0.7, "semantic": 1.3}, "bias": 0.1},
              "oof": {"a": {"y": y.tolist(), "trace": trace.tolist(), "semantic": raw.tolist()}}}
    a, t = 1.5, 0.4  # shipped = a * (raw - t)
    semantic = {"calibration": {"platt_slope": a, "threshold_logit_raw": t}}
    weights, bias, how = fused_bias(fusion, semantic, fpr=0.05)
    assert weights["trace"] == 0.7 and np.isclose(weights["semantic"], 1.3 / a)
    shipped = a * (raw - t)
    z = bias + weights["trace"] * trace + weights["semantic"] * shipped
    # the same ranking as the fitted raw fusion, shifted so that 5% of reals are at or above 0
    assert np.allclose(z, 0.7 * trace + 1.3 * raw - how["cut_raw"])
    assert abs((z[y == 0] >= 0).mean() - 0.05) <= 1.0 / n
    assert how["oof_reals"] == n
