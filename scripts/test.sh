#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs the test prerequisites, builds the
# whole workspace, runs every test, then checks the deployment files. Chaos/soak tests take
# their short CI defaults; see README for the knobs that lengthen them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
# Building everything first also puts every function binary in target/debug, which the
# process-level tests start.
cargo build --workspace --all-targets --locked
# The Lambda zips (release, linked by zig for Amazon Linux); object-sink's Lambda-mode test
# runs the bootstrap from its zip.
deploy/lambda/build.sh
export OBJECT_SINK_LAMBDA_ZIP="${CARGO_TARGET_DIR:-$PWD/target}/lambda/object-sink/bootstrap.zip"
cargo nextest run --workspace --locked --no-fail-fast "$@"
# Doc tests are not run by nextest.
cargo test --workspace --doc --locked
./scripts/check-deploy.sh
