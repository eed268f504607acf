import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from model_training.metrics import (
    apply_platt,
    average_precision,
    class_accuracies,
    equal_error_threshold,
    expected_calibration_error,
    false_positive_rate,
    fit_platt,
    sigmoid,
    threshold_at_fpr,
)


@pytest.mark.parametrize("seed", range(6))
def test_ap_and_accuracy_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.random(n) * 0.6 + 0.4 * y * rng.random()
    if seed % 2:
        s = np.round(s, 1)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert class_accuracies(y, s, 0.5)["acc"] == pytest.approx(accuracy_score(y, s >= 0.5))


def test_known_inputs():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    # sklearn's documented example: AP 0.8333
    assert average_precision(y, s) == pytest.approx(0.8333333333)
    acc = class_accuracies(y, s, 0.375)
    assert acc == {"acc": 0.5, "real_acc": 0.5, "fake_acc": 0.5}
    assert np.isnan(average_precision([0, 0], [0.2, 0.3]))


def test_expected_calibration_error():
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.05, 0.95, 0.95, 0.95, 0.95])
    # bin of 0.05: |0.05 - 0| * 1/5 ; bin of 0.95: |0.95 - 0.75| * 4/5
    assert expected_calibration_error(y, p) == pytest.approx(0.05 / 5 + 0.2 * 4 / 5)
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01


@pytest.mark.parametrize("fpr", [0.0, 0.05, 0.1, 0.33, 1.0])
def test_threshold_at_fpr_is_the_lowest_that_keeps_the_rate(fpr):
    reals = np.random.default_rng(1).random(101)
    t = threshold_at_fpr(reals, fpr)
    assert false_positive_rate(reals, t) <= fpr + 1e-12
    lower = reals[reals < t]
    if lower.size:  # any lower threshold would call one more real generated
        assert false_positive_rate(reals, lower.max()) > fpr


def test_equal_error_threshold():
    y = np.array([0] * 50 + [1] * 50)
    s = np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)]
    t, eer = equal_error_threshold(y, s)
    assert eer == 0 and 0.4 < t <= 0.6
    rng = np.random.default_rng(2)
    s = np.r_[rng.normal(0, 1, 2000), rng.normal(1, 1, 2000)]
    t, eer = equal_error_threshold(np.repeat([0, 1], 2000), s)
    assert t == pytest.approx(0.5, abs=0.1) and eer == pytest.approx(0.31, abs=0.03)


def test_platt_recovers_a_known_calibration():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, 20_000)
    y = (rng.random(z.size) < sigmoid(0.5 * z - 1.0)).astype(int)
    a, b = fit_platt(z, y, prior_correction=False)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.05)
    assert expected_calibration_error(y, apply_platt(z, a, b)) < 0.02
