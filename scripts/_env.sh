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

# A Go module mirror for the Fabric build (README "Fabric binaries"): IPLEDGER_GO_MIRROR as set
# by the user, else ../shared/goproxy beside the clone when it holds the pinned Fabric module.
detect_go_mirror() {
  if [ -n "${IPLEDGER_GO_MIRROR:-}" ]; then
    echo "==> Go module mirror: $IPLEDGER_GO_MIRROR (IPLEDGER_GO_MIRROR)"
    return 0
  fi
  local shared="$ROOT/../shared/goproxy"
  if [ -d "$shared/github.com/hyperledger/fabric/@v" ]; then
    IPLEDGER_GO_MIRROR="$(cd "$shared" && pwd)"
    export IPLEDGER_GO_MIRROR
    echo "==> Go module mirror found beside the clone: $IPLEDGER_GO_MIRROR"
  fi
}

# Builds Fabric if it is not cached (checksum pinned; exit 3: no proxy serves it, 4: checksum mismatch).
ensure_fabric() {
  detect_go_mirror
  .venv/bin/ipledger fabric install
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
