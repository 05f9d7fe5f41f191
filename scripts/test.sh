#!/usr/bin/env bash
# The whole test suite, as README says and CI runs it: formatting, lints, then every unit,
# property and black-box test against real services (PostgreSQL at 127.0.0.1:5432, a
# Kafka-protocol broker started by scripts/kafka.sh, and the local Federal Register replay
# server each test starts itself).
set -euo pipefail
cd "$(dirname "$0")/.."
# Build artefacts are cached outside the clone so a fresh clone on the same machine is quick;
# an empty cache just means a full build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ENTITYWATCH_CACHE:-$HOME/.cache/entitywatch}/target}"

trap 'scripts/kafka.sh stop; scripts/services.sh stop' EXIT
scripts/services.sh start
scripts/kafka.sh start

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
promtool check rules deploy/prometheus/rules.yml
promtool test rules deploy/prometheus/rules_test.yml
promtool check config deploy/prometheus/prometheus.yml
cargo test --all-targets --locked
scripts/schemathesis.sh
