#!/usr/bin/env bash
# The README's test command: set up ./.venv from scratch if needed, lint, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test (Debian's chromium, driven by Playwright) and the PDF text tests (poppler's
# pdftotext) need system packages: installed here when running as root (CI) and missing. Where
# they cannot be installed those tests skip, each saying what is missing.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v pdftotext >/dev/null || missing+=(poppler-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends "${missing[@]}" >/dev/null) \
      || echo "test.sh: could not install ${missing[*]}; the browser/PDF tests will skip" >&2
  fi
fi
bash scripts/setup_env.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
.venv/bin/python -m ruff check forensics_app model_training tests benchmarks
if [ "$#" -gt 0 ]; then
  .venv/bin/python -m pytest -q "$@"
else
  # The Ray tests start a Ray runtime inside the test process; its native threads outlive
  # ray.shutdown(), so they run in a process of their own, after everything else.
  .venv/bin/python -m pytest -q --ignore=tests/core/test_ray_scan.py
  .venv/bin/python -m pytest -q tests/core/test_ray_scan.py
fi
