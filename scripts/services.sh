#!/usr/bin/env bash
# Starts (or stops) the services the test suite talks to, idempotently, and remembers what it
# started so that `stop` leaves alone what was already running.
#   scripts/services.sh start|stop
set -euo pipefail
state_dir="${ENTITYWATCH_CACHE:-$HOME/.cache/entitywatch}/services"
mkdir -p "$state_dir"

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

start_postgres() {
  if pg_ready; then return; fi
  echo "services: starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  touch "$state_dir/postgres.started"
  for _ in $(seq 1 60); do pg_ready && return; sleep 0.5; done
  echo "services: PostgreSQL did not become ready" >&2; exit 1
}

stop_postgres() {
  if [ -f "$state_dir/postgres.started" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main stop || true
    rm -f "$state_dir/postgres.started"
  fi
}

# rdkafka links the system OpenSSL (for SASL_SSL clusters); its build needs the headers.
ensure_build_packages() {
  if ! pkg-config --exists openssl 2>/dev/null; then
    echo "services: installing libssl-dev and pkg-config"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
  fi
}

# promtool checks and unit-tests the alert rules of deploy/prometheus (scripts/test.sh); the Debian
# package prometheus ships it.
ensure_promtool() {
  if ! command -v promtool >/dev/null; then
    echo "services: installing promtool (Debian package prometheus)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
}

# The review console's browser test (tests/it/console.rs) drives Debian's chromium, headless, with
# playwright-core from npm, pinned in tests/browser/package-lock.json and installed beside it
# (tests/browser/node_modules, not committed).
ensure_browser() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local browser_dir want have
  browser_dir="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
  want=$(node -p "require('$browser_dir/package-lock.json').packages['node_modules/playwright-core'].version")
  have=$(node -p "require('$browser_dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    echo "services: installing playwright-core $want into tests/browser/node_modules"
    npm ci --prefix "$browser_dir" --no-audit --no-fund --loglevel=error >/dev/null
  fi
}

case "${1:-}" in
  start) ensure_build_packages; ensure_promtool; ensure_browser; start_postgres ;;
  stop) stop_postgres ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
