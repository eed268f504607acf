#!/usr/bin/env bash
# The README's test command: set up ./.venv from scratch if needed, lint, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
.venv/bin/python -m ruff check forensics_app model_training tests benchmarks
.venv/bin/python -m pytest -q "$@"
