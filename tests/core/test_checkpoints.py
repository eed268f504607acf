"""Every accepted checkpoint format loads; everything else is refused with a clear message."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from forensics_app.core.architectures import build_model, infer_arch_from_state_dict
from forensics_app.core.detector import CheckpointError, Detector, load_checkpoint
from forensics_app.core.preprocess import to_normalized_tensor
from helpers import TINY_ARCH, make_image, save_tiny_checkpoint

TWO_CLASS_ARCH = {"num_outputs": 2, "stages": 1}
ONE_LOGIT_ARCH = {"num_outputs": 1, "stages": 1}


def _state(arch: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(arch)
    torch.nn.init.normal_(model.fc.weight, 0.0, 0.5)
    torch.nn.init.normal_(model.fc.bias, 0.0, 0.5)
    return model.state_dict()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.stack([to_normalized_tensor(make_image((72, 64), seed=s)) for s in range(3)])


def _reference_logits(state: dict[str, torch.Tensor], arch: dict, x: torch.Tensor) -> torch.Tensor:
    model = build_model(arch)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    with torch.inference_mode():
        return model.eval()(x)


def test_own_format_fp16_loads_into_fp32_model(tmp_path, batch):
    path = save_tiny_checkpoint(tmp_path / "own.pt", fp16=True, meta={"threshold": 0.6})
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["conv1.weight"].dtype == torch.float16

    ckpt = load_checkpoint(path)
    assert ckpt.kind == "forensics-detector"
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    assert not ckpt.model.training
    assert ckpt.arch["stages"] == 1 and ckpt.arch["num_outputs"] == 1
    assert ckpt.threshold == pytest.approx(0.6)
    assert ckpt.meta["training"]["recipe"].startswith("random weights")
    assert ckpt.model_id.startswith("own.pt@") and ckpt.sha256 in _sha256sum(path)
    # The fp32 model holds exactly the fp16 values.
    assert torch.equal(ckpt.model.conv1.weight, raw["state_dict"]["conv1.weight"].float())

    det = Detector.from_loaded(ckpt, device="cpu", threads=1)
    expected = torch.sigmoid(_reference_logits(raw["state_dict"], TINY_ARCH, batch)[:, 0])
    np.testing.assert_allclose(det.predict_proba(batch), expected.numpy(), atol=1e-5)


def _sha256sum(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cnndetection_format_loads_as_one_logit(tmp_path, batch):
    state = _state(ONE_LOGIT_ARCH, seed=1)
    path = tmp_path / "blur_jpg_prob0.5.pth"
    # Official files also carry optimizer state and a step counter: plain data, still allowed.
    torch.save({"model": state, "optimizer": {"param_groups": [{"lr": 1e-4}]},
                "total_steps": 123}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "cnndetection"
    assert ckpt.arch["stages"] == 1 and ckpt.arch["num_outputs"] == 1
    det = Detector.from_loaded(ckpt, device="cpu", threads=1)
    expected = torch.sigmoid(_reference_logits(state, ONE_LOGIT_ARCH, batch)[:, 0])
    np.testing.assert_allclose(det.predict_proba(batch), expected.numpy(), atol=1e-5)


def test_dataparallel_prefix_is_stripped(tmp_path):
    state = {f"module.{k}": v for k, v in _state(ONE_LOGIT_ARCH).items()}
    path = tmp_path / "dp.pth"
    torch.save({"model": state}, path)
    assert load_checkpoint(path).kind == "cnndetection"


@pytest.mark.parametrize("layout", ["model_state_dict", "state_dict", "bare"])
def test_two_class_checkpoint_softmax_and_fake_index_flip(tmp_path, batch, layout):
    state = _state(TWO_CLASS_ARCH, seed=2)
    assert state["fc.weight"].shape == (2, 2048 // 8)  # one Bottleneck stage: 256 features
    path = tmp_path / f"two_class_{layout}.pt"
    torch.save(state if layout == "bare" else {layout: state, "epoch": 7}, path)

    default = Detector.from_checkpoint(path, device="cpu", threads=1)
    flipped = Detector.from_checkpoint(path, device="cpu", fake_index=0, threads=1)
    assert default.checkpoint.kind == "two-class"
    assert default.checkpoint.fake_index == 1 and flipped.checkpoint.fake_index == 0

    expected = torch.softmax(_reference_logits(state, TWO_CLASS_ARCH, batch), dim=1)[:, 1]
    p = default.predict_proba(batch)
    np.testing.assert_allclose(p, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(flipped.predict_proba(batch), 1.0 - p, atol=1e-6)


def test_full_width_two_class_head_is_inferred():
    """The seed-project layout: a full ResNet-50 with fc = Linear(2048, 2)."""
    full = build_model({"num_outputs": 2})
    assert full.fc.weight.shape == (2, 2048)
    arch = infer_arch_from_state_dict(full.state_dict())
    assert arch == {**arch, "name": "resnet50", "num_outputs": 2, "stages": 4}


def test_invalid_fake_index_is_refused(tmp_path):
    path = tmp_path / "two.pt"
    torch.save(_state(TWO_CLASS_ARCH), path)
    with pytest.raises(CheckpointError, match="fake_index"):
        load_checkpoint(path, fake_index=2)


# --- refused files -------------------------------------------------------------------------

def _refused(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, "the error must name the file"
    assert "Traceback" not in message
    return message


def test_missing_file_is_refused(tmp_path):
    assert "not found" in _refused(tmp_path / "nope.pt")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in _refused(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    assert "not a PyTorch checkpoint" in _refused(path)


@pytest.mark.parametrize("text", ["hello world\n" * 20, "{'model': 1}\n", "#!/bin/sh\necho hi\n"])
def test_text_file_is_refused(tmp_path, text):
    path = tmp_path / "notes.pth"
    path.write_text(text)
    assert "not a PyTorch checkpoint" in _refused(path)


def test_image_renamed_to_pt_is_refused(tmp_path):
    path = tmp_path / "photo.pt"
    make_image((32, 32), 0).save(path, format="PNG")
    assert "not a PyTorch checkpoint" in _refused(path)


def test_zip_that_is_not_a_checkpoint_is_refused(tmp_path):
    import zipfile

    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not weights")
    assert "not a PyTorch checkpoint" in _refused(path)


@pytest.mark.parametrize(
    "payload, expected",
    [
        (torch.zeros(3), "expected a dict"),
        ({"format": "forensics-detector", "format_version": 1, "state_dict": [1, 2], "meta": {}},
         "expected a dict of tensors"),
        ({"format": "forensics-detector", "format_version": 99, "state_dict": {}, "meta": {}},
         "format_version"),
        ({"optimizer": {"lr": 0.1}}, "no weight tensors"),
        ({"conv1.weight": torch.zeros(1)}, "fc.weight"),
    ],
    ids=["tensor", "state-not-dict", "future-version", "no-weights", "no-fc"],
)
def test_unusable_contents_are_refused(tmp_path, payload, expected):
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    message = _refused(path)
    assert expected in message
    assert "Expected this app's format" in message


def test_wrong_number_of_outputs_is_refused(tmp_path):
    path = tmp_path / "imagenet_head.pt"
    torch.save(_state({"num_outputs": 3, "stages": 1}), path)
    assert "3 outputs" in _refused(path)


def test_wrong_shapes_are_refused(tmp_path):
    state = _state(ONE_LOGIT_ARCH)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # grayscale stem
    path = tmp_path / "gray_stem.pt"
    torch.save({"model": state}, path)
    message = _refused(path)
    assert "do not fit" in message and "conv1.weight" in message


def test_metadata_architecture_mismatch_is_refused(tmp_path):
    """Own format whose metadata claims a deeper network than its weights."""
    path = save_tiny_checkpoint(tmp_path / "liar.pt")
    raw = torch.load(path, weights_only=True)
    raw["meta"]["architecture"] = {**TINY_ARCH, "stages": 2}
    torch.save(raw, path)
    message = _refused(path)
    assert "do not fit" in message and "layer2" in message


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    obj = {"model": _state(ONE_LOGIT_ARCH), "extra": _Payload(marker)}
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh)

    _refused(path)
    assert not marker.exists(), "loading the checkpoint executed its pickled code"

    # Control: the payload is live -- an unsafe load would have run it.
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as fh:
            pickle.load(fh)  # noqa: S301 -- deliberately unsafe, proves the payload works
    assert marker.is_dir()


def test_pickle_payload_message_says_why(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(tmp_path / "never")}, path)
    message = _refused(path)
    assert "refused" in message and "code" in message
    assert "weights_only` set to `False`" not in message  # no advice to load it unsafely
