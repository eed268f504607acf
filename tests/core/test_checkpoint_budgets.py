"""Issue 22, items 11-14: checkpoints are checked before they grow, by behaviour at load, and
every refusal names the real reason. Each test builds its own hostile checkpoint."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile

import pytest
import torch

from forensics_app.core.checkpoint_check import (
    check_archive_sizes,
    drop_unusable_metadata,
    largest_state_bytes,
)
from forensics_app.core.detector import CheckpointError, Detector, load_checkpoint
from helpers import save_tiny_checkpoint


def _refusal(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        Detector.from_checkpoint(path, device="cpu", threads=1, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------ 11. non-finite logits
def test_weights_that_overflow_the_logit_are_refused_at_load(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "huge.pt", fp16=False)
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["fc.weight"].fill_(3e38)  # finite weights, infinite logits
    torch.save(raw, path)
    message = _refusal(path)
    assert "unusable checkpoint: behaviour" in message
    assert "non-finite scores" in message or "cannot tell any two images apart" in message


def test_a_constant_model_is_refused_at_load(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "flat.pt", fp16=False)
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["fc.weight"].zero_()  # every image: the bias alone
    torch.save(raw, path)
    assert "cannot tell any two images apart" in _refusal(path)


def test_a_non_finite_logit_becomes_nan_never_a_verdict(tiny_detector):
    probs = tiny_detector.logits_to_proba(torch.tensor([[float("inf")], [0.0], [float("nan")]]))
    assert probs[1] == pytest.approx(0.5)
    assert all(p != p for p in (probs[0], probs[2]))  # NaN: the scan makes it an error row


def test_an_ordinary_model_passes_the_behaviour_check(tiny_checkpoint):
    det = Detector.from_checkpoint(tiny_checkpoint, device="cpu", threads=1)
    det.check_behaviour()  # does not raise


# ------------------------------------------------------------------ 12. zip bomb
def test_zip_bomb_checkpoint_is_refused_from_its_declared_sizes(tmp_path):
    path = tmp_path / "bomb.pt"
    tensor_cap, _ = largest_state_bytes()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", pickle.dumps({}))
        with archive.open("bomb/data/0", "w", force_zip64=True) as fh:
            block = b"\0" * (1 << 20)
            for _ in range(tensor_cap // len(block) + 2):  # just over the cap, ~20 KB zipped
                fh.write(block)
    assert os.path.getsize(path) < 1_000_000
    message = _refusal(path)
    assert "declares" in message and "zip bomb" in message and "bomb/data/0" in message


def test_real_checkpoints_pass_the_archive_check(tiny_checkpoint):
    check_archive_sizes(tiny_checkpoint)  # does not raise


# ------------------------------------------------------------------ 13. unread metadata
def test_nested_and_int_keyed_unread_metadata_is_dropped(tmp_path):
    nested: dict = {}
    node = nested
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    path = save_tiny_checkpoint(tmp_path / "meta.pt", meta={
        "training": {1: "int key"}, "deep": nested, "notes": {"fine": [1, 2.5, "x"]}})
    ckpt = load_checkpoint(path)
    assert "training" not in ckpt.meta and "deep" not in ckpt.meta
    assert ckpt.meta["notes"] == {"fine": [1, 2.5, "x"]}
    assert sorted(ckpt.meta["dropped_metadata"]) == ["deep", "training"]


def test_fields_the_app_reads_are_validated_not_dropped():
    meta = {"threshold": 0.5, "weird": {2: 3}}
    assert drop_unusable_metadata(meta, ["threshold"]) == ["weird"]
    assert meta == {"threshold": 0.5}


def test_case_scan_with_hostile_metadata_works(tmp_path, capsys):
    from forensics_app.cli import main
    from helpers import make_image

    path = save_tiny_checkpoint(tmp_path / "meta.pt", meta={"training": {1: {2: 3}}})
    make_image((48, 48), 0).save(tmp_path / "a.png")
    code = main([str(tmp_path / "a.png"), "--model", str(path), "--case",
                 str(tmp_path / "case"), "-q"])
    assert code == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------ 14. real reasons
@pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero")
def test_special_files_as_model_name_what_they_are(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe)" in _refusal(fifo)
    assert "is a character device" in _refusal("/dev/zero")
    assert "is a folder, not a checkpoint file" in _refusal(tmp_path)
    assert "checkpoint file not found" in _refusal(tmp_path / "missing.pt")
    os.symlink(tmp_path / "gone.pt", tmp_path / "link.pt")
    assert "broken symbolic link" in _refusal(tmp_path / "link.pt")


@pytest.mark.parametrize("protocol", [0, 1])
def test_old_protocol_pickles_are_named_as_pickles(tmp_path, protocol):
    path = tmp_path / f"p{protocol}.pt"
    path.write_bytes(pickle.dumps({"model": {"fc.weight": [1.0, 2.0]}}, protocol=protocol))
    message = _refusal(path)
    assert "a plain pickle (pickle protocol 0/1)" in message, message


def test_no_torch_warning_leaks_while_loading(tmp_path):
    path = tmp_path / "p2.pt"
    path.write_bytes(pickle.dumps({"model": {}}, protocol=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError):
            load_checkpoint(path)
    assert not caught, [str(w.message) for w in caught]
