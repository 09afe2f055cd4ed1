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
