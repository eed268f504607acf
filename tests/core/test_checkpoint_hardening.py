"""Issue 11 items 11-14: a checkpoint is untrusted input, checked whole when it is loaded."""

from __future__ import annotations

import math
import os
import pickle
import time

import pytest
import torch

from forensics_app.core.checkpoint_check import check_state_fits
from forensics_app.core.detector import CheckpointError, load_checkpoint
from helpers import TINY_ARCH, make_images, save_tiny_checkpoint


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def _message(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "weights_only" not in message and "Re-running" not in message, message
    return message


def test_pickled_object_refusal_says_what_and_never_relays_torch_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    message = _message(path)
    assert "refused: the file contains pickled code or objects (GLOBAL " in message
    assert "getcwd), not only weights" in message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_raw_pickle_with_unsupported_opcode_is_refused_plainly(tmp_path):
    path = tmp_path / "raw.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": _Payload()}, fh, protocol=4)
    assert "refused: the file is a pickle using an operation outside" in _message(path)


@pytest.mark.parametrize("meta, field", [
    ({"threshold": "0.5"}, "meta.threshold"),
    ({"threshold": float("nan")}, "meta.threshold"),
    ({"threshold": 1.5}, "meta.threshold"),
    ({"threshold": True}, "meta.threshold"),
    ({"inconclusive_band": None}, "meta.inconclusive_band"),
    ({"inconclusive_band": float("inf")}, "meta.inconclusive_band"),
    ({"calibration": {"type": "platt", "b": 0.0}}, "meta.calibration.a"),
    ({"calibration": [1.0, 0.0]}, "meta.calibration"),
    ({"calibration": {"type": "isotonic"}}, "meta.calibration.type"),
    ({"calibration": {"type": "platt", "a": -1.0, "b": 0.0}}, "meta.calibration.a"),
    ({"calibration": {"type": "platt", "a": 1.0, "b": "0"}}, "meta.calibration.b"),
    ({"architecture": "resnet50"}, "meta.architecture"),
    ({"architecture": {**TINY_ARCH, "name": 42}}, "meta.architecture.name"),
    ({"architecture": {**TINY_ARCH, "stages": "1"}}, "meta.architecture.stages"),
    ({"architecture": {**TINY_ARCH, "num_outputs": 2_000_000}},
     "meta.architecture.num_outputs"),
    ({"architecture": {**TINY_ARCH, "npr_gain": float("nan")}}, "meta.architecture.npr_gain"),
    ({"architecture": {**TINY_ARCH, "input_transform": "fft"}},
     "meta.architecture.input_transform"),
    ({1: "x"}, "meta: keys must be text"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_metadata_schema_is_validated_at_load(tmp_path, meta, field):
    path = save_tiny_checkpoint(tmp_path / "bad_meta.pt", meta=meta)
    message = _message(path)
    assert field in message, message
    assert "Traceback" not in message


def test_cli_exits_2_naming_the_bad_field(tmp_path, capsys):
    from forensics_app.cli import EXIT_USAGE, main

    path = save_tiny_checkpoint(tmp_path / "text_threshold.pt", meta={"threshold": "high"})
    images = make_images(tmp_path / "ev", 1)
    assert main(["--model", str(path), "--device", "cpu", "-q", str(images[0])]) == EXIT_USAGE
    assert "meta.threshold" in capsys.readouterr().err


def test_huge_head_is_refused_from_shapes_without_allocating():
    """The expected layout is built on the meta device: 2,000,000 outputs cost nothing."""
    state = load_state()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"fc.weight is \(1, 256\), expected \(2000000, 256\)"):
        check_state_fits(state, {**TINY_ARCH_FULL, "num_outputs": 2_000_000})
    assert time.perf_counter() - t0 < 5


TINY_ARCH_FULL = {"name": "resnet50", "num_outputs": 1, "input_transform": "none",
                  "stages": 1, "npr_gain": 4.0, **TINY_ARCH}


def load_state() -> dict[str, torch.Tensor]:
    from forensics_app.core.architectures import build_model

    return build_model(TINY_ARCH_FULL).state_dict()


def test_extra_tensor_in_state_is_refused(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "extra.pt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"]["hidden.weight"] = torch.zeros(3)
    torch.save(raw, path)
    assert "unexpected hidden.weight" in _message(path)


@pytest.mark.parametrize("key, value, expected", [
    ("layer1.0.conv1.weight", float("nan"), "non-finite value(s) (NaN)"),
    ("fc.bias", float("inf"), "non-finite value(s) (inf)"),
    ("bn1.running_var", -1.0, "negative variances"),
])
def test_non_finite_weights_are_refused(tmp_path, key, value, expected):
    path = save_tiny_checkpoint(tmp_path / "poisoned.pt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"][key].view(-1)[0] = value
    torch.save(raw, path)
    message = _message(path)
    assert f"state_dict.{key}" in message and expected in message, message


def test_nan_score_on_one_image_is_an_error_row_never_a_verdict(tiny_detector, tmp_path,
                                                               monkeypatch):
    import json

    from forensics_app.core.export import write_jsonl
    from forensics_app.core.results import Verdict
    from forensics_app.core.scan import ScanOptions, scan_files

    files = make_images(tmp_path / "ev", 2)
    real, calls = tiny_detector.predict_proba, []

    def one_nan(batch):
        p = real(batch)
        if not calls:  # the first image only
            p[0] = math.nan
        calls.append(1)
        return p

    monkeypatch.setattr(tiny_detector, "predict_proba", one_nan)
    results = scan_files(files, tiny_detector, ScanOptions(batch_size=1, workers=1))
    bad, good = results
    assert not bad.ok and bad.verdict is Verdict.ERROR and bad.prob_fake is None
    assert "non-finite score" in bad.error
    assert good.ok and good.verdict is not Verdict.ERROR

    out = write_jsonl(tmp_path / "report.jsonl", results)

    def no_bare_constants(token):
        raise AssertionError(f"bare {token} in JSON Lines")

    rows = [json.loads(line, parse_constant=no_bare_constants)
            for line in out.read_text().splitlines()]
    assert rows[0]["prob_fake"] is None and "non-finite" in rows[0]["error"]
    assert isinstance(rows[1]["prob_fake"], float)
