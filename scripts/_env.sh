# Shared by scripts/up and scripts/test: a project virtualenv with ipledger installed.
# Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${IPLEDGER_PYTHON_BIN:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    echo "==> Creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
  fi
  # Reinstall only when the dependency list changed.
  local stamp=.venv/.ipledger-deps
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> Installing ipledger and its dependencies into .venv (from PyPI)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$want" > "$stamp"
  fi
}

# Builds Fabric if it is not cached. Returns 3 (and fills FABRIC_REFUSAL) when the
# Go module proxy refuses the pinned Fabric version; any other failure stops the script.
FABRIC_REFUSAL=""
ensure_fabric() {
  local log rc=0
  log="$(mktemp)"
  .venv/bin/ipledger fabric install 2> >(tee "$log" >&2) || rc=$?
  sleep 0.1  # let tee flush
  if [ "$rc" -eq 3 ]; then
    FABRIC_REFUSAL="the Go module proxy refuses github.com/hyperledger/fabric@86c1172 ($(grep -m1 -o '[0-9]\{3\} [A-Za-z ]*' "$log" | head -1 | sed 's/ *$//'): $(grep -m1 -o 'This module version is not available\.' "$log" || echo 'see install output'))"
  fi
  rm -f "$log"
  return "$rc"
}

# Debian tools the tests use: poppler-utils renders the PDF reports; chromium runs the browser tests
# (tests/browser drive /usr/bin/chromium with Playwright — never a browser downloaded by Playwright).
# Installed when missing if this user may run apt-get (CI runs as root); otherwise a clear message.
ensure_test_tools() {
  local missing=""
  { command -v pdftoppm && command -v pdftotext; } >/dev/null 2>&1 || missing="$missing poppler-utils"
  [ -x /usr/bin/chromium ] || missing="$missing chromium"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> Installing$missing for the report and browser tests"
    # shellcheck disable=SC2086  # one word per package
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: missing Debian package(s)$missing: install them, or the PDF report / browser tests fail" >&2
  fi
}
