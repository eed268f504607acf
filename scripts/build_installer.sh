#!/usr/bin/env bash
# Build the one-folder app with PyInstaller (build_installer.spec), then prove the result works:
# the frozen self-test (bundled model + sample scores + the real window, offscreen), a scan
# with the bundled console scanner, bundle size and start-up time.
#
#   bash scripts/build_installer.sh                 # bundles resources/models/detector.pt
#   bash scripts/build_installer.sh --fixture       # bundles a tiny random checkpoint instead
#   bash scripts/build_installer.sh --cuda cpu      # Linux CUDA torch: drop on-demand CUDA libs
#   bash scripts/build_installer.sh --samples DIR   # self-test samples kept elsewhere
#   bash scripts/build_installer.sh --clean         # discard PyInstaller's cache first (releases)
#   bash scripts/build_installer.sh --no-build      # only test/measure an existing dist/
#
# --fixture is for testing the packaging before the real checkpoint exists: it writes a
# random-weight checkpoint and its own samples/expected scores under build/selftest-fixture.
# Output: dist/<name>/ (ForensicsApp, forensics-scan, forensics-serve, _internal/); build/.
# Exit status: 0 when the build and every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
NAME=ForensicsApp
CUDA=full
FIXTURE=0
BUILD=1
SAMPLES=resources/samples
CLEAN=()
STARTUP_RUNS=${STARTUP_RUNS:-3}
while [ $# -gt 0 ]; do
  case "$1" in
    --fixture) FIXTURE=1 ;;
    --cuda) CUDA=$2; shift ;;
    --name) NAME=$2; shift ;;
    --samples) SAMPLES=$2; shift ;;
    --no-build) BUILD=0 ;;
    --clean) CLEAN=(--clean) ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build_installer.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

case "$(uname -s)" in
  Darwin) APP_EXE="dist/$NAME.app/Contents/MacOS/ForensicsApp"; SCAN_EXE="dist/$NAME.app/Contents/MacOS/forensics-scan"; SERVE_EXE="dist/$NAME.app/Contents/MacOS/forensics-serve"; DIST_DIR="dist/$NAME.app" ;;
  MINGW*|MSYS*|CYGWIN*) APP_EXE="dist/$NAME/ForensicsApp.exe"; SCAN_EXE="dist/$NAME/forensics-scan.exe"; SERVE_EXE="dist/$NAME/forensics-serve.exe"; DIST_DIR="dist/$NAME"
                        PY=${PYTHON:-.venv/Scripts/python.exe} ;;
  *) APP_EXE="dist/$NAME/ForensicsApp"; SCAN_EXE="dist/$NAME/forensics-scan"; SERVE_EXE="dist/$NAME/forensics-serve"; DIST_DIR="dist/$NAME" ;;
esac

"$PY" -c "import PyInstaller" 2>/dev/null || {
  echo "build_installer.sh: PyInstaller is missing: $PY -m pip install -e '.[dev]' (or pyinstaller)" >&2
  exit 2
}

SPEC_ARGS=(--cuda "$CUDA" --name "$NAME" --samples "$SAMPLES")
if [ "$FIXTURE" = 1 ]; then
  FIX=build/selftest-fixture
  mkdir -p "$FIX"
  "$PY" - "$FIX/detector.pt" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from helpers import save_tiny_checkpoint
save_tiny_checkpoint(Path(sys.argv[1]))
EOF
  "$PY" scripts/make_selftest_samples.py --model "$FIX/detector.pt" --out "$FIX/samples" >/dev/null
  printf '# Test fixture\n\nRandom weights, made by `build_installer.sh --fixture` to test the\npackaging. This bundle detects nothing.\n' > "$FIX/MODEL_CARD.md"
  SPEC_ARGS+=(--model "$FIX/detector.pt" --card "$FIX/MODEL_CARD.md" --samples "$FIX/samples")
  SAMPLES=$FIX/samples
fi

if [ "$BUILD" = 1 ]; then
  echo "== building $DIST_DIR (cuda=$CUDA) with $("$PY" -m PyInstaller --version) =="
  SECONDS=0
  "$PY" -m PyInstaller build_installer.spec --noconfirm "${CLEAN[@]}" \
    --distpath dist --workpath build/pyinstaller \
    -- "${SPEC_ARGS[@]}"
  BUILD_S=$SECONDS
  echo "build time: ${BUILD_S} s"
fi

# Settings, logs and caches of the checks go to a throw-away home, never the user's.
CHECK_HOME=$(mktemp -d "${TMPDIR:-/tmp}/forensics-installer-check.XXXXXX")
trap 'rm -rf "$CHECK_HOME"' EXIT
export XDG_CONFIG_HOME=$CHECK_HOME/config XDG_CACHE_HOME=$CHECK_HOME/cache \
       XDG_STATE_HOME=$CHECK_HOME/state XDG_DATA_HOME=$CHECK_HOME/data
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}

echo "== frozen self-test: $APP_EXE --self-test --gui (QT_QPA_PLATFORM=$QT_QPA_PLATFORM) =="
TIMEFORMAT='self-test wall time (process start to exit): %R s'
set +e
time "$APP_EXE" --self-test --gui
SELFTEST_RC=$?
set -e

echo "== bundled console scanner: $SCAN_EXE on the bundled samples =="
set +e
"$SCAN_EXE" -q --device cpu "$SAMPLES"
SCAN_RC=$?
set -e

echo "== bundled server: $SERVE_EXE on loopback, /healthz and the page =="
set +e
"$PY" - "$SERVE_EXE" "$CHECK_HOME/serve" <<'EOF'
import socket, subprocess, sys, time, urllib.request
exe, data = sys.argv[1], sys.argv[2]
with socket.socket() as s:  # a free loopback port
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
proc = subprocess.Popen([exe, "--port", str(port), "--device", "cpu", "--data-dir", data])
try:
    deadline, health = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                health = r.read().decode()
                break
        except OSError:
            time.sleep(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        page = r.read().decode()
    print(f"server: healthz {health}; page {len(page)} chars")
    ok = health is not None and '"ok"' in health and "<html" in page.lower()
finally:
    proc.terminate()
    proc.wait(30)
sys.exit(0 if ok else 1)
EOF
SERVE_RC=$?
set -e

echo "== bundle size and start-up =="
"$PY" benchmarks/frozen_startup.py --exe "$APP_EXE" --bundle "$DIST_DIR" --runs "$STARTUP_RUNS"

if [ "$SELFTEST_RC" != 0 ] || [ "$SCAN_RC" != 0 ] || [ "$SERVE_RC" != 0 ]; then
  echo "build_installer.sh: FAILED (self-test $SELFTEST_RC, scanner $SCAN_RC, server $SERVE_RC)" >&2
  exit 1
fi
echo "build_installer.sh: OK -- $DIST_DIR${BUILD_S:+ built in ${BUILD_S} s}"
