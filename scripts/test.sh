#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs the test prerequisites, builds the
# whole workspace and runs every test. Chaos/soak lengths take their CI defaults; see README.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo build --workspace --all-targets --locked
cargo nextest run --workspace --locked --no-fail-fast "$@"
# Doc tests are not run by nextest.
cargo test --workspace --doc --locked
