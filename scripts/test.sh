#!/usr/bin/env bash
# The whole test suite, as README says and CI runs it: formatting, lints, then every unit,
# property and black-box test against real services (PostgreSQL at 127.0.0.1:5432, and the
# local Federal Register replay server each test starts itself).
set -euo pipefail
cd "$(dirname "$0")/.."
# Build artefacts are cached outside the clone so a fresh clone on the same machine is quick;
# an empty cache just means a full build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ENTITYWATCH_CACHE:-$HOME/.cache/entitywatch}/target}"

scripts/services.sh start
trap 'scripts/services.sh stop' EXIT

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
