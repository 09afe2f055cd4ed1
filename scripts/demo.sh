#!/usr/bin/env bash
# Runs the pipeline end to end on its embedded defaults: a throwaway MariaDB with a demo
# schema and workload, capture, the embedded DataHub-compatible log and the file sink, all
# on this machine. Output goes to ./.local/demo. Installs mariadb-server if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  echo "installing mariadb-server (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null
fi
exec cargo run --locked --quiet -p cdc-pipeline -- demo "$@"
