import random

import numpy as np
import pytest
import torch
from synthetic_pairs import smooth_image

from model_training.augment import (
    AugmentConfig,
    AugmentParams,
    apply_params,
    draw_params,
    validation_params_for,
)
from model_training.dataset import EvalTransform, TrainTransform

N = 4000


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_draws_stay_in_range_and_honour_p(p):
    cfg = AugmentConfig(blur_prob=p, jpg_prob=p)
    rng = random.Random(1)
    draws = [draw_params(cfg, rng) for _ in range(N)]
    sigmas = [d.blur_sigma for d in draws if d.blur_sigma is not None]
    quals = [d.jpeg_quality for d in draws if d.jpeg_quality is not None]
    assert all(0.0 <= s <= 3.0 for s in sigmas)
    assert all(isinstance(q, int) and 30 <= q <= 100 for q in quals)
    assert {d.jpeg_method for d in draws if d.jpeg_quality is not None} <= {"cv2", "pil"}
    tol = 4 * np.sqrt(p * (1 - p) / N) + 1e-9  # 4 standard errors
    assert abs(len(sigmas) / N - p) <= tol
    assert abs(len(quals) / N - p) <= tol
    if 0 < p:
        # uniform: both ends of the ranges are reached, both encoders used
        assert min(sigmas) < 0.3 and max(sigmas) > 2.7
        assert min(quals) <= 32 and max(quals) >= 98
        assert {d.jpeg_method for d in draws if d.jpeg_quality is not None} == {"cv2", "pil"}


def test_validation_draws_are_deterministic_fixed_and_honour_p():
    cfg = AugmentConfig(blur_prob=0.5, jpg_prob=0.1)
    draws = [validation_params_for(cfg, i, seed=3) for i in range(N)]
    assert draws == [validation_params_for(cfg, i, seed=3) for i in range(N)]
    assert {d.blur_sigma for d in draws} == {None, 1.5}  # the paper's mid-range sigma
    assert {d.jpeg_quality for d in draws} == {None, 65}  # int((30 + 100) / 2)
    assert {d.jpeg_method for d in draws if d.jpeg_quality} == {"pil"}
    assert abs(np.mean([d.blur_sigma is not None for d in draws]) - 0.5) < 0.04
    assert abs(np.mean([d.jpeg_quality is not None for d in draws]) - 0.1) < 0.025


@pytest.mark.parametrize("method", ["cv2", "pil"])
def test_apply_params_blurs_and_compresses(method):
    img = smooth_image(64, 0)
    arr = np.asarray(img, dtype=np.float64)
    blurred = np.asarray(apply_params(img, AugmentParams(2.0, None, None)), dtype=np.float64)
    jpeg = np.asarray(apply_params(img, AugmentParams(None, 30, method)), dtype=np.float64)
    assert blurred.shape == jpeg.shape == arr.shape
    lap = lambda a: np.abs(np.diff(a, 2, axis=0)).mean()  # noqa: E731
    assert lap(blurred) < lap(arr)
    jpeg95 = np.asarray(apply_params(img, AugmentParams(None, 95, method)), dtype=np.float64)
    assert np.abs(jpeg - arr).mean() > np.abs(jpeg95 - arr).mean() > 0
    assert apply_params(img, AugmentParams(None, None, None)) is img


def test_transforms_crop_flip_and_are_reproducible():
    img = smooth_image(48, 1)
    train = TrainTransform(AugmentConfig(), crop_size=32)
    a = train(img, 0, random.Random(5))
    b = train(img, 0, random.Random(5))
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    outs = {train(img, 0, random.Random(s)).sum().item() for s in range(8)}
    assert len(outs) > 1  # different draws give different crops/flips/degradations
    ev = EvalTransform(AugmentConfig(), crop_size=32, seed=0)
    assert torch.equal(ev(img, 4, random.Random(1)), ev(img, 4, random.Random(2)))


def test_small_images_are_padded_to_the_crop():
    img = smooth_image(24, 2)
    out = TrainTransform(AugmentConfig(0, (0, 3), 0), crop_size=32, flip=False)(
        img, 0, random.Random(0))
    assert out.shape == (3, 32, 32)
