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

# Debian tools the tests use: poppler-utils renders the PDF reports (fonts-dejavu-core: their Unicode font);
# chromium runs the browser tests
# (tests/browser drive /usr/bin/chromium with Playwright — never a browser downloaded by Playwright).
# Installed when missing if this user may run apt-get (CI runs as root); otherwise a clear message.
ensure_test_tools() {
  local missing=""
  { command -v pdftoppm && command -v pdftotext; } >/dev/null 2>&1 || missing="$missing poppler-utils"
  [ -x /usr/bin/chromium ] || missing="$missing chromium"
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing="$missing fonts-dejavu-core"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> Installing$missing for the report and browser tests"
    # shellcheck disable=SC2086  # one word per package
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: missing Debian package(s)$missing: install them, or the PDF report / browser tests fail" >&2
  fi
}

# A container engine for --runtime docker and tests/containers (docs/containers.md): Debian's docker.io
# (dockerd), debootstrap (the base image's root file system) and docker-compose (the compose files' test).
# An engine that already answers (DOCKER_HOST or the local socket) is used as it is. Otherwise, as root,
# the packages are installed when missing and dockerd is started here with its bridge and address pools
# in the benchmarking range 198.18.0.0/15 and without touching the host's firewall (the containers use
# host networking on loopback); stop_container_engine stops it again. IPLEDGER_CONTAINER_TESTS=0 leaves
# the engine alone and the container tests out (a developer machine without root).
IPLEDGER_STARTED_DOCKERD=""
engine_answers() {
  .venv/bin/python - <<'PY' >/dev/null 2>&1
import docker
docker.from_env(timeout=5).ping()
PY
}

ensure_container_engine() {
  [ "${IPLEDGER_CONTAINER_TESTS:-1}" = "0" ] && return 0
  export IPLEDGER_CONTAINER_TESTS=1
  local missing=""
  command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
  command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
  command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
  if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      echo "error: missing Debian package(s)$missing for the container tests: install them as root, or set" \
           "IPLEDGER_CONTAINER_TESTS=0 to leave the container tests out" >&2
      return 5
    fi
    echo "==> Installing$missing (container engine, base image, compose)"
    apt-get update -qq >/dev/null || { echo "error: apt-get update failed" >&2; return 5; }
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
      || { echo "error: installing$missing failed" >&2; return 5; }
  fi
  if engine_answers; then
    echo "==> Container engine: answering already (${DOCKER_HOST:-the local socket})"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: no container engine answers and only root can start dockerd; start one, or set" \
         "IPLEDGER_CONTAINER_TESTS=0 to leave the container tests out" >&2
    return 5
  fi
  local logdir="${XDG_CACHE_HOME:-$HOME/.cache}/ipledger/containers"
  mkdir -p "$logdir"
  echo "==> Starting dockerd (bridge 198.18.0.1/24, address pools in 198.18.0.0/16, no firewall changes; log: $logdir/dockerd.log)"
  dockerd --bip 198.18.0.1/24 --default-address-pool base=198.18.0.0/16,size=24 \
          --iptables=false --ip-masq=false --ip-forward=false \
          --pidfile /run/ipledger-dockerd.pid >>"$logdir/dockerd.log" 2>&1 &
  IPLEDGER_STARTED_DOCKERD=$!
  local i
  for i in $(seq 1 120); do
    engine_answers && return 0
    kill -0 "$IPLEDGER_STARTED_DOCKERD" 2>/dev/null || break
    sleep 0.5
  done
  echo "error: dockerd did not answer within 60 s; its log:" >&2
  tail -20 "$logdir/dockerd.log" >&2
  stop_container_engine
  return 5
}

# Stops the dockerd that ensure_container_engine started (and its docker0 bridge); nothing otherwise.
stop_container_engine() {
  [ -n "$IPLEDGER_STARTED_DOCKERD" ] || return 0
  echo "==> Stopping the dockerd started for the tests"
  kill "$IPLEDGER_STARTED_DOCKERD" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$IPLEDGER_STARTED_DOCKERD" 2>/dev/null || break
    sleep 0.5
  done
  ip link delete docker0 2>/dev/null || true
  IPLEDGER_STARTED_DOCKERD=""
}
