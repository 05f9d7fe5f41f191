#!/usr/bin/env bash
# Property-based run of the HTTP API against its OpenAPI document (schemathesis from PyPI):
# `entitywatch run` on a throw-away SQLite store with the test list imported and an admin
# token, then generated requests to every operation, checking that none gets a 5xx and that
# every answer conforms to the document. Bounded: a few examples per operation and a time
# budget, well under three minutes. schemathesis lives in a venv outside the clone. Entry keys
# hold a slash, which generated path parameters avoid: hence filter_too_much is not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${ENTITYWATCH_CACHE:-$HOME/.cache/entitywatch}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="$cache/venv"
version="4.32.5"
# CPython before 3.11.8 (and 3.12.0-3.12.1) has a race in the AST parser's recursion-depth
# bookkeeping between threads (gh-106905: "AST constructor recursion depth mismatch", raised in
# hypothesis when two workers describe a strategy at once): a fixed interpreter is preferred when
# there is one, and on a buggy one schemathesis runs a single worker.
buggy() { "$1" -c 'import sys; v = sys.version_info[:3]; sys.exit(not ((3, 11) <= v[:2] and v < (3, 11, 8) or (3, 12, 0) <= v < (3, 12, 2)))'; }
python="${ENTITYWATCH_PYTHON:-python3}"
if buggy "$python"; then
    for other in /usr/bin/python3 python3.13 python3.10; do
        if command -v "$other" >/dev/null && ! buggy "$other" && "$other" -c 'import venv' 2>/dev/null; then
            python="$other"
            break
        fi
    done
fi
if [ -x "$venv/bin/python" ] && buggy "$venv/bin/python" && ! buggy "$python"; then
    rm -rf "$venv"
fi
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

cargo build --locked --quiet
bin="$CARGO_TARGET_DIR/debug/entitywatch"
work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export ENTITYWATCH_DATABASE_URL="sqlite://$work/entitywatch.db"
"$bin" list import tests/fixtures/csl/EL_only_from_watchman_consolidated_2022-05.csv >/dev/null 2>&1
token="$("$bin" tokens create --name schemathesis --scope admin 2>/dev/null)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The watcher polls a closed port once a day (it only logs that); no list sync.
"$bin" run --http-addr "127.0.0.1:$port" --list-sync-interval 0s \
    --interval 24h --federal-register-url http://127.0.0.1:9/ --log error >"$work/run.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
workers=2
if buggy "$venv/bin/python"; then workers=1; fi
# Run from the temporary directory: schemathesis keeps a cache in its working directory.
cd "$work"
timeout 170 "$venv/bin/schemathesis" run "http://127.0.0.1:$port/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-15}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-90}" \
    --workers "$workers" \
    --suppress-health-check filter_too_much \
    --request-timeout 10 || { echo "schemathesis failed; the server's log:"; tail -50 "$work/run.log"; exit 1; }
