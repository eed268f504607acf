#!/usr/bin/env bash
# Detector v4: cache per-block CLIP features of train/ + extra/ (+ a dev_test sample), choose the
# semantic head on leave-one-family-out and leave-one-real-domain-out validation, export the
# checkpoint with its model-card section, install it, rewrite the self-test's expected scores.
# Resumable: rerun after a stop and the feature cache continues where it was.
# The caps are this session's CPU budget (the model card says which images the figures used).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PY=.venv/bin/python
$PY -m model_training.block_cache --data "$DATA" --out runs/blocks \
  --only real/,fake/sd,fake/stylegan2,fake/gan_faces,fake/modern \
  --cap /aug=250 --cap sd14/n90=400 --cap web_imagenet/n90=450
$PY -m model_training.block_cache --data "$DATA" --out runs/blocks --only dev/ \
  --cap /orig=60 --robust-cap 20
$PY -m model_training.block_head --cache runs/blocks --out runs/v4_head.json --dev
$PY -m model_training.export_v4 --base "${BASE:-resources/models/detector.pt}" \
  --head runs/v4_head.json --cache runs/blocks --out runs/v4/detector.pt --card runs/v4/card.md
if [ "${INSTALL:-1}" = 1 ]; then
  cp runs/v4/detector.pt resources/models/detector.pt
  $PY scripts/make_selftest_samples.py --score-only
fi
