#!/usr/bin/env bash
# Builds the event-triggered functions as AWS Lambda `bootstrap` zips for the provided.al2023
# runtime with cargo-lambda (`pip install cargo-lambda`, which brings zig as the linker: the
# binaries link against glibc 2.17+ symbols only, so they run on Amazon Linux 2023).
#
#   deploy/lambda/build.sh                      # every Lambda function, x86_64
#   LAMBDA_ARCH=arm64 deploy/lambda/build.sh    # Graviton (needs the aarch64-unknown-linux-gnu
#                                               # target: rustup target add aarch64-unknown-linux-gnu)
#   deploy/lambda/build.sh object-sink          # some of them
#
# Zips land in $CARGO_TARGET_DIR/lambda/<function>/bootstrap.zip (target/lambda by default,
# where template.yaml's CodeUri points).
# Each function is one binary that runs as a Lambda handler when AWS_LAMBDA_RUNTIME_API is
# set and as a long-lived service otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUNCTIONS=(cdc-capture datahub-relay transform object-sink)
if [ $# -gt 0 ]; then FUNCTIONS=("$@"); fi

if ! command -v cargo-lambda >/dev/null; then
  echo "cargo-lambda is missing: python3 -m pip install cargo-lambda" >&2
  exit 1
fi

arch_flag=()
case "${LAMBDA_ARCH:-x86_64}" in
  x86_64) ;;
  arm64) arch_flag=(--arm64) ;;
  *) echo "LAMBDA_ARCH must be x86_64 or arm64, got ${LAMBDA_ARCH}" >&2; exit 2 ;;
esac

LAMBDA_DIR="${CARGO_TARGET_DIR:-$PWD/target}/lambda"
bins=()
for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
cargo lambda build --release --locked --output-format zip --lambda-dir "$LAMBDA_DIR" "${arch_flag[@]}" "${bins[@]}"

python3 - "$LAMBDA_DIR" "${FUNCTIONS[@]}" <<'PY'
import os, sys, zipfile
print(f"{'function':<16} {'zip':>8} {'bootstrap':>10}")
for f in sys.argv[2:]:
    path = os.path.join(sys.argv[1], f, "bootstrap.zip")
    unzipped = sum(i.file_size for i in zipfile.ZipFile(path).infolist())
    print(f"{f:<16} {os.path.getsize(path) / 2**20:7.1f}M {unzipped / 2**20:9.1f}M")
PY
