"""Issue 11, items 1-9: hostile evidence and operator mistakes never hang, run code, clobber
or mislead. Each test builds its own hostile input; anything that could hang runs under a
timeout (a daemon thread or a subprocess) so a regression fails instead of hanging."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from forensics_app.cli import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, main
from forensics_app.core.discovery import discover
from forensics_app.core.export import ESCAPED_NAME_NOTE
from forensics_app.core.loading import (
    ImageLoadError,
    NotAnImage,
    decode_image,
    load_evidence,
    read_bytes_and_hash,
)
from forensics_app.core.results import Verdict
from forensics_app.core.safetext import (
    escape_for_terminal,
    escape_undecodable,
    unescape_undecodable,
)
from forensics_app.core.scan import scan_files
from helpers import make_image

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file types")
SCRIPT = Path(sys.executable).parent / "forensics-scan"
EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code)


def call_with_timeout(fn, timeout: float = 20.0):
    """Run ``fn`` in a daemon thread; fail (not hang) if it does not return in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 -- handed back to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn} hung for {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _jpeg(size=(256, 256), seed=1, quality=90) -> bytes:
    buf = io.BytesIO()
    make_image(size, seed).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# ------------------------------------------------------------------ 1. format allow-list
def test_eps_named_jpg_is_never_handed_to_ghostscript(tmp_path, tiny_detector, monkeypatch):
    def no_programs(*args, **kwargs):
        raise AssertionError(f"an external program was started: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", no_programs)
    monkeypatch.setattr(subprocess, "check_call", no_programs)
    path = tmp_path / "x.jpg"
    path.write_bytes(EPS_LOOP)
    (result,) = call_with_timeout(lambda: scan_files([path], tiny_detector))
    assert result.verdict is Verdict.ERROR and result.prob_fake is None
    assert "PostScript/EPS" in result.error and "not decoded" in result.error
    assert result.format == "PostScript/EPS"
    assert result.sha256 == hashlib.sha256(EPS_LOOP).hexdigest()
    with pytest.raises(ImageLoadError, match=r"EPS \(DOS binary\) is not decoded"):
        decode_image(b"\xc5\xd0\xd3\xc6" + EPS_LOOP, "dos.eps")  # DOS-binary EPS header too


@posix_only
def test_cli_eps_loop_and_fifo_finish_quickly(tmp_path, tiny_checkpoint):
    """The issue's repros, end to end through the console script: no hang, error rows."""
    eps = tmp_path / "x.jpg"
    eps.write_bytes(EPS_LOOP)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    make_image((64, 64), 3).save(good)
    out = tmp_path / "out" / "r.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.run([str(SCRIPT), eps, fifo, good, "--model", tiny_checkpoint,
                           "--jsonl", out], capture_output=True, text=True, env=env,
                          timeout=240)
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert "PostScript/EPS" in rows["x.jpg"]["error"]
    assert "FIFO" in rows["pipe.jpg"]["error"]
    assert rows["good.png"]["verdict"] != "Error"
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left in the temp folder


# ------------------------------------------------------------------ 2. non-regular files
@posix_only
def test_fifo_named_explicitly_is_an_error_row_not_a_hang(tmp_path, tiny_detector):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    (result,) = call_with_timeout(lambda: scan_files([fifo], tiny_detector))
    assert result.verdict is Verdict.ERROR and "FIFO" in result.error


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero and /dev/urandom")
def test_devices_are_refused_without_reading(tiny_detector):
    zero, urandom = call_with_timeout(
        lambda: scan_files([Path("/dev/zero"), Path("/dev/urandom")], tiny_detector))
    for r in (zero, urandom):
        assert r.verdict is Verdict.ERROR and "character device" in r.error, r.error


@posix_only
def test_file_swapped_for_fifo_after_discovery(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    victim = folder / "photo.png"
    make_image((64, 64), 0).save(victim)
    (found,) = discover([folder]).files
    victim.unlink()
    os.mkfifo(victim)  # time-of-check / time-of-use: the check is on the opened descriptor
    with pytest.raises(ImageLoadError, match="FIFO"):
        call_with_timeout(lambda: load_evidence(found))


def test_read_is_capped(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
    with pytest.raises(ImageLoadError, match="read limit"):
        read_bytes_and_hash(path, max_bytes=1000)


# ------------------------------------------------------------------ 3. one skip rule
@posix_only
def test_every_entry_of_a_folder_is_scanned_or_skipped_with_a_reason(tmp_path):
    root = tmp_path / "ev"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    make_image((64, 64), 0).save(root / "a.png")
    make_image((64, 64), 1).save(root / "sub" / "b.png")
    make_image((64, 64), 2).save(root / ".cache" / "c.png")  # inside a dot-folder
    make_image((64, 64), 3).save(root / ".hidden.png")
    os.mkfifo(root / "pipe.jpg")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "loop1.jpg").symlink_to(root / "loop2.jpg")
    (root / "loop2.jpg").symlink_to(root / "loop1.jpg")
    (root / "dirlink").symlink_to(root / "sub")
    (root / "filelink.png").symlink_to(root / "a.png")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "s.jpg"))
    except OSError:
        sock.close()
        sock = None

    flat = discover([root])
    assert [p.name for p in flat.files] == ["a.png", "filelink.png"]
    kinds = {Path(s.path).name: s.kind for s in flat.skipped}
    expected = {".cache": "hidden", ".hidden.png": "hidden", "pipe.jpg": "not-regular",
                "dangling.jpg": "link", "loop1.jpg": "link", "loop2.jpg": "link",
                "dirlink": "link", "sub": "folder"}
    if sock is not None:
        expected["s.jpg"] = "not-regular"
        sock.close()
    assert kinds == expected
    assert all(s.reason for s in flat.skipped)

    deep = discover([root], recursive=True)
    assert [p.name for p in deep.files] == ["a.png", "filelink.png", "b.png"]  # c.png: hidden
    assert "sub" not in {Path(s.path).name for s in deep.skipped}


def test_cli_counts_and_lists_skipped_entries(tmp_path, tiny_checkpoint, capsys):
    root = tmp_path / "ev"
    root.mkdir()
    make_image((64, 64), 0).save(root / "a.png")
    make_image((64, 64), 1).save(root / ".hidden.png")
    (root / "notes").write_text("a shopping list, not a photo\n")  # no extension: sniffed
    out = tmp_path / "r.csv"
    assert run_cli([root, "--model", tiny_checkpoint, "--csv", out]) == EXIT_OK
    err = capsys.readouterr().err
    assert "not scanned: 2 skipped (hidden 1, not-image 1)" in err
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert {(Path(s["path"]).name, s["kind"]) for s in meta["skipped"]} == {
        (".hidden.png", "hidden"), ("notes", "not-image")}


# ------------------------------------------------------------------ 4. decoder padding
def test_jpeg_that_ends_early_says_so_in_notes(tmp_path, tiny_detector):
    data = _jpeg()
    cut = data[: int(len(data) * 0.7)] + b"\xff\xd9"  # EOI written too soon: libjpeg pads
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    (result,) = scan_files([path], tiny_detector)
    assert result.ok, result.error
    assert any(n.startswith("decoder padding") for n in result.notes), result.notes


def test_jpeg_that_is_mostly_padding_is_an_error(tmp_path, tiny_detector):
    data = bytearray(_jpeg((64, 64)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (1024).to_bytes(2, "big") + (1024).to_bytes(2, "big")
    path = tmp_path / "claims_1024.jpg"
    path.write_bytes(bytes(data))  # 64x64 of data, header claims 1024x1024
    (result,) = scan_files([path], tiny_detector)
    assert result.verdict is Verdict.ERROR and result.prob_fake is None
    assert "mostly decoder padding" in result.error, result.error


def test_flat_bottom_of_a_complete_jpeg_is_not_called_padding(tmp_path, tiny_detector):
    img = make_image((256, 256), 2)
    img.paste((255, 255, 255), (0, 128, 256, 256))  # a genuine white lower half
    path = tmp_path / "white_bottom.jpg"
    img.save(path, quality=90)
    (result,) = scan_files([path], tiny_detector)
    assert result.ok and not any("padding" in n for n in result.notes), result.notes


# ------------------------------------------------------------------ 5. one read
def test_file_without_extension_is_sniffed_from_the_single_read(tmp_path, tiny_detector,
                                                                monkeypatch):
    root = tmp_path / "ev"
    root.mkdir()
    make_image((64, 64), 0).save(root / "no_extension", format="PNG")
    (root / "readme").write_text("not an image\n")
    opened: list[str] = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    found = discover([root])
    assert opened == []  # discovery opens nothing
    skipped = []
    results = scan_files(found.files, tiny_detector, sniff=found.sniff,
                         on_skipped=skipped.append)
    assert [Path(r.path).name for r in results] == ["no_extension"] and results[0].ok
    assert [Path(s.path).name for s in skipped] == ["readme"]
    assert sorted(Path(p).name for p in opened) == ["no_extension", "readme"]  # once each
    with pytest.raises(NotAnImage):
        read_bytes_and_hash(root / "readme", images_only=True)


# ------------------------------------------------------------------ 6. non-UTF-8 names
@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs byte file names")
def test_latin1_file_name_is_reported_reversibly(tmp_path, tiny_checkpoint):
    raw = os.fsencode(tmp_path) + b"/caf\xe9 back\\slash.png"
    make_image((64, 64), 0).save(os.fsdecode(raw), format="PNG")
    csv_out, jsonl_out = tmp_path / "r.csv", tmp_path / "r.jsonl"
    assert run_cli([os.fsdecode(raw), "--model", tiny_checkpoint, "--csv", csv_out,
                    "--jsonl", jsonl_out]) == EXIT_OK
    (row,) = list(csv.DictReader(csv_out.open(encoding="utf-8")))
    assert "caf\\xe9 back\\\\slash.png" in row["path"]
    assert unescape_undecodable(row["path"]) == raw
    assert ESCAPED_NAME_NOTE in row["notes"]
    (record,) = [json.loads(line) for line in jsonl_out.read_text("utf-8").splitlines()]
    assert unescape_undecodable(record["path"]) == raw and record["verdict"] != "Error"


def test_escaping_is_identity_for_valid_names_and_reversible_otherwise():
    assert escape_undecodable("фото C:\\x.png") == "фото C:\\x.png"
    name = os.fsdecode(b"\\x41 \xff\xe9.jpg") if os.name == "posix" else "x"
    if os.name == "posix":
        assert unescape_undecodable(escape_undecodable(name)) == b"\\x41 \xff\xe9.jpg"


# ------------------------------------------------------------------ 7. evidence is no output
def test_report_over_an_input_file_is_refused(tmp_path, tiny_checkpoint, capsys):
    evidence = tmp_path / "photo.jpg"
    make_image((64, 64), 0).save(evidence)
    before = evidence.read_bytes()
    assert run_cli([evidence, "--model", tiny_checkpoint, "--csv", evidence]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "one of the inputs" in err and "--force-output" in err and "scanned " not in err
    assert evidence.read_bytes() == before


def test_report_inside_a_scanned_folder_is_refused_unless_forced(tmp_path, tiny_checkpoint,
                                                                 capsys):
    folder = tmp_path / "ev"
    folder.mkdir()
    make_image((64, 64), 0).save(folder / "a.png")
    out = folder / "deep" / "r.jsonl"
    assert run_cli([folder, "--model", tiny_checkpoint, "--jsonl", out]) == EXIT_USAGE
    assert "inside the scanned folder" in capsys.readouterr().err and not out.exists()
    assert run_cli([folder, "--model", tiny_checkpoint, "--jsonl", out,
                    "--force-output"]) == EXIT_OK
    assert out.is_file()


def test_sidecar_over_an_input_is_refused(tmp_path, tiny_checkpoint, capsys):
    make_image((64, 64), 0).save(tmp_path / "a.png")
    victim = tmp_path / "r.csv.meta.json"
    victim.write_text("evidence named like a side-car")
    assert run_cli([tmp_path / "a.png", victim, "--model", tiny_checkpoint,
                    "--csv", tmp_path / "r.csv"]) == EXIT_USAGE
    assert "side-car" in capsys.readouterr().err
    assert victim.read_text() == "evidence named like a side-car"


# ------------------------------------------------------------------ 8. outputs checked first
def test_unusable_outputs_fail_before_scanning(tmp_path, tiny_checkpoint, capsys):
    make_image((64, 64), 0).save(tmp_path / "a.png")
    folder_out = tmp_path / "reports"
    folder_out.mkdir()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    for argv in (["--csv", folder_out], ["--jsonl", a_file / "r.jsonl"],
                 ["--csv", tmp_path / "same", "--jsonl", tmp_path / "same"]):
        assert run_cli([tmp_path / "a.png", "--model", tiny_checkpoint, *argv]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert "scanned " not in err and "forensics-scan:" in err, err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_folder_fails_before_scanning(tmp_path, tiny_checkpoint, capsys):
    make_image((64, 64), 0).save(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run_cli([tmp_path / "a.png", "--model", tiny_checkpoint,
                        "--csv", locked / "r.csv"]) == EXIT_USAGE
        assert "no write permission" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------ 9. terminal output
@pytest.mark.skipif(os.name != "posix", reason="newline in a file name")
def test_file_names_cannot_forge_or_colour_terminal_lines(tmp_path, tiny_checkpoint, capsys):
    forged = tmp_path / "x.png\nAI-generated  0.999  forged.jpg"
    make_image((64, 64), 0).save(forged, format="PNG")
    ansi = tmp_path / "\x1b[2J\x1b[31mred.png"
    make_image((64, 64), 1).save(ansi, format="PNG")
    assert run_cli([forged, ansi, "--model", tiny_checkpoint]) == EXIT_OK
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2  # one line per file, however the names look
    assert not any(line.startswith("AI-generated  0.999") for line in lines)
    assert "\x1b" not in captured.out + captured.err
    assert "x.png\\nAI-generated" in captured.out and "\\x1b[31mred.png" in captured.out


def test_escape_for_terminal():
    assert escape_for_terminal("plain ✓.png") == "plain ✓.png"
    assert escape_for_terminal("a\nb\r\tc\x07\x9b\u202e") == "a\\nb\\r\\tc\\x07\\u009b\\u202e"
