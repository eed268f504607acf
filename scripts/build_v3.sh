#!/usr/bin/env bash
# Detector v3: cache CLIP embeddings, choose the semantic head on leave-one-family-out
# validation, export trace + semantic + fusion, install it, rewrite the self-test's scores.
# Resumable: rerun after a stop and the embedding cache continues where it was.
# The caps are this session's budget (the README says which images the figures used);
# raise or drop them (--cap VIEW=N) when more CPU is available.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PY=.venv/bin/python
$PY -m model_training.embed_cache --data "$DATA" --out runs/embeddings --robust-cap 0 \
  --cap train/imagenet_sample=320 --cap train/bsds500=160 --cap train/sd14=160 \
  --cap train/sd15=160 --cap train/stylegan2=160 --cap train/taef2=240 --cap dev/=40
$PY -m model_training.embed_cache --data "$DATA" --out runs/embeddings --only dev/ \
  --robust-cap 12 --cap dev/=40
$PY -m model_training.semantic_head --cache runs/embeddings --out runs/semantic_head.json --dev
$PY -m model_training.export_v3 --base "${BASE:-resources/models/detector.pt}" \
  --head runs/semantic_head.json --out runs/v3/detector.pt --real-root "$DATA/train/real" \
  --card resources/models/MODEL_CARD.md
if [ "${INSTALL:-1}" = 1 ]; then
  cp runs/v3/detector.pt resources/models/detector.pt
  $PY scripts/make_selftest_samples.py --score-only
fi
