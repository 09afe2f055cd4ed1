#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine (run as root): the MariaDB
# server the tests start privately, and the Python readers the tests use as independent
# judges (prometheus_client for /metrics). Idempotent: installed pieces are skipped.
set -euo pipefail

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server mariadb-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the system-wide server: tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Independent judges used by the tests: prometheus_client parses /metrics, pyarrow reads the
# Parquet/CSV/JSON files the sinks write, pydatahub (Alibaba's official SDK) talks to
# datahub-local.
python3 - <<'PY' || python3 -m pip install -q --disable-pip-version-check prometheus_client pyarrow pydatahub==2.29.0
import prometheus_client, pyarrow, datahub  # noqa: F401,E401
PY

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Alertmanager for cdc-telemetry's alert webhook tests (tests/alertmanager.rs start a private
# instance; Debian's binary is prometheus-alertmanager 0.25). policy-rc.d keeps Debian from
# starting the system-wide service.
if ! command -v prometheus-alertmanager >/dev/null 2>&1 && ! command -v alertmanager >/dev/null 2>&1; then
  echo "installing Debian package: prometheus-alertmanager"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi

# S3-compatible server for the object sink and the S3 state backend tests: moto's server
# (in memory, any credentials), at least 5.2.5, the version whose conditional writes
# (If-None-Match / If-Match, also on CompleteMultipartUpload) were checked to behave like AWS;
# it brings boto3, which /work/shared/tools/s3-conditional-check.py uses.
python3 - <<'PY' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check 'moto[server]>=5.2.5' boto3
import shutil, sys
import boto3, moto  # noqa: F401,E401
version = tuple(int(part) for part in moto.__version__.split(".")[:3])
sys.exit(0 if version >= (5, 2, 5) and shutil.which("moto_server") else 1)
PY

# Image builds without a registry (deploy/images/): busybox-static is the MariaDB image's
# entrypoint shell; s3s-fs (crates.io, the version test-infra.md checked) is the S3-compatible
# server of the container suite's object-sink test.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  echo "installing Debian package: busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
fi
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  echo "installing s3s-fs 0.14.1"
  cargo install --locked s3s-fs --version 0.14.1 --features binary
fi

# Lambda zips (deploy/lambda/build.sh): cargo-lambda from PyPI, which brings zig (the ziglang
# package) as the linker that targets Amazon Linux's glibc.
if ! command -v cargo-lambda >/dev/null 2>&1; then
  echo "installing cargo-lambda (pip)"
  python3 -m pip install -q --disable-pip-version-check cargo-lambda==1.9.2
  hash -r
fi
