#!/usr/bin/env bash
# Writes random development secrets next to this script (never overwrites an existing file).
set -euo pipefail
dir="${SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)}"
mkdir -p "$dir" && chmod 0700 "$dir"
for name in db_password mariadb_root_password datahub_access_id datahub_access_key \
            s3_access_key_id s3_secret_access_key; do
  f="$dir/$name"
  if [[ -e "$f" ]]; then echo "keep    $f"; continue; fi
  (umask 022; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$f")
  chmod 0644 "$f"
  echo "created $f"
done
