#!/usr/bin/env bash
# Runs docker-compose.yml for real on a local Docker engine, without a registry: builds
# throw-away images cdc/<function>:0.0.0-smoke FROM scratch (the debug binary and its shared
# library closure, uid 10001 owning /var/lib/cdc, as the Nix images are laid out), starts
# MariaDB, datahub-local, cdc-capture, datahub-relay and two file-sink replicas with the file's
# own settings, and checks (object-sink needs its S3 server, which no registry gives us here: the
# container suite in integration-tests/ runs it against an s3s-fs container):
#   - every function container runs as 10001:10001 with a read-only root file system,
#     capabilities dropped, no-new-privileges, and survives start-up (so it read its *_FILE
#     secrets as uid 10001 and accepted its configuration);
#   - /health/live answers 200 on every running function (file-sink: both replicas);
#   - cdc-capture connects to MariaDB (MARIADB_IMAGE, default cdc/mariadb:local built from
#     Debian's mariadb-server by deploy/images/mariadb/build.sh) and runs.
# Needs: docker, docker-compose, cargo-built binaries in target/debug (BIN_DIR), curl.
# Cleans up its containers, volumes, network and images.
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
BIN_DIR=${BIN_DIR:-$ROOT/target/debug}
TAG=0.0.0-smoke
PROJECT=cdcsmoke$$
WORK=$(mktemp -d /tmp/compose-smoke.XXXXXX)
FUNCTIONS=(datahub-local cdc-capture datahub-relay file-sink)
fail=0
note() { printf '%s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; fail=1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export CDC_VERSION=$TAG SECRETS_DIR=$WORK/secrets COMPOSE_NETWORK_NAME=$PROJECT \
       CAPTURE_OPS_PORT=$(free_port) DATAHUB_LOCAL_HOST_PORT=$(free_port) DATAHUB_LOCAL_OPS_PORT=$(free_port) \
       LOG_FORMAT=text
DC=(docker-compose -p "$PROJECT" -f docker-compose.yml)

cleanup() {
  "${DC[@]}" down -v --remove-orphans >/dev/null 2>&1
  for f in "${FUNCTIONS[@]}"; do docker rmi -f "cdc/$f:$TAG" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- images ----------------------------------------------------------------------------------
# The same builder users run (deploy/images/build.sh), here from the debug binaries cargo has
# already built; MariaDB from Debian's server unless MARIADB_IMAGE names one that exists.
CDC_VERSION=$TAG BIN_DIR=$BIN_DIR "$ROOT/deploy/images/build.sh" "${FUNCTIONS[@]}" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; bad "deploy/images/build.sh"; exit 1; }
note "built ${#FUNCTIONS[@]} scratch images cdc/<function>:$TAG"
export MARIADB_IMAGE=${MARIADB_IMAGE:-cdc/mariadb:local}
if ! docker image inspect "$MARIADB_IMAGE" >/dev/null 2>&1; then
  MARIADB_IMAGE=$MARIADB_IMAGE "$ROOT/deploy/images/mariadb/build.sh" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; bad "deploy/images/mariadb/build.sh"; exit 1; }
  note "built $MARIADB_IMAGE from Debian's mariadb-server"
fi

# --- start -----------------------------------------------------------------------------------
SECRETS_DIR=$SECRETS_DIR ./secrets/init-dev-secrets.sh >/dev/null
# MariaDB first, healthy (its own health check, mariadb-admin ping), as depends_on asks.
"${DC[@]}" up -d --no-deps mariadb >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; bad "docker-compose up mariadb"; exit 1; }
for _ in $(seq 1 60); do
  [[ "$(docker inspect -f '{{.State.Health.Status}}' "$("${DC[@]}" ps -q mariadb)" 2>/dev/null)" == healthy ]] && break
  sleep 1
done
# A table to capture: cdc-capture's pre-flight check refuses a schema with none.
db_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$("${DC[@]}" ps -q mariadb)")
mariadb -h "$db_ip" -uroot -p"$(cat "$SECRETS_DIR/mariadb_root_password")" \
  -e "CREATE TABLE IF NOT EXISTS ${DATABASE_SCHEMA:-cdc_demo}.smoke (id INT PRIMARY KEY, note VARCHAR(20)); INSERT IGNORE INTO ${DATABASE_SCHEMA:-cdc_demo}.smoke VALUES (1, 'hello')" \
  >"$WORK/sql.log" 2>&1 || { cat "$WORK/sql.log"; bad "creating the smoke table in MariaDB ($db_ip)"; exit 1; }
"${DC[@]}" up -d --no-deps datahub-local cdc-capture datahub-relay file-sink \
  >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; bad "docker-compose up"; exit 1; }
# One file-sink first, then the second: Docker populates a fresh named volume from the image
# when its first container is created, and two replicas created at the same moment race on
# that ("mkdir …/_data/savepoints: file exists").
"${DC[@]}" up -d --no-deps --scale file-sink=2 file-sink \
  >>"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; bad "docker-compose up --scale file-sink=2"; exit 1; }

# Wait until every long-running function answers /health/live (or 30 s).
containers() { "${DC[@]}" ps -q "$1" 2>/dev/null; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
live() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$1:8080/health/live"; }
for _ in $(seq 1 30); do
  all=1
  for s in datahub-local cdc-capture datahub-relay file-sink; do
    for c in $(containers $s); do [[ "$(live "$(ip_of "$c")")" == 200 ]] || all=0; done
  done
  ((all)) && break
  sleep 1
done

# --- checks ----------------------------------------------------------------------------------
for s in datahub-local datahub-relay file-sink cdc-capture; do
  ids=$(containers $s)
  n=$(wc -w <<<"$ids")
  want=1; [[ $s == file-sink ]] && want=2
  ((n == want)) || bad "$s: $n containers, expected $want"
  for c in $ids; do
    name=$(docker inspect -f '{{.Name}}' "$c"); name=${name#/}
    read -r user ro caps secopt < <(docker inspect -f '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{join .HostConfig.CapDrop ","}} {{join .HostConfig.SecurityOpt ","}}' "$c")
    [[ $user == 10001:10001 ]] || bad "$name: user $user"
    [[ $ro == true ]] || bad "$name: root file system not read-only"
    [[ $caps == ALL ]] || bad "$name: cap_drop $caps"
    [[ $secopt == *no-new-privileges* ]] || bad "$name: security_opt $secopt"
    state=$(docker inspect -f '{{.State.Status}} restarts={{.RestartCount}}' "$c")
    [[ $state == "running restarts=0" ]] || { bad "$name: $state"; docker logs --tail 5 "$c" 2>&1; continue; }
    ip=$(ip_of "$c")
    l=$(live "$ip"); r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$ip:8080/health/ready")
    [[ $l == 200 ]] || bad "$name: /health/live answered $l"
    # The process itself, as the host sees it: not root.
    uid=$(docker top "$c" -eo pid,uid | awk 'NR==2 {print $2}')
    [[ -n $uid && $uid != 0 ]] || bad "$name: process uid '${uid}'"
    note "ok   $name: uid $uid, read-only, caps dropped, running; /health/live $l, /health/ready $r"
  done
done
# The published ops port of datahub-local on the host.
l=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$DATAHUB_LOCAL_OPS_PORT/health/live")
[[ $l == 200 ]] && note "ok   datahub-local ops port published on 127.0.0.1:$DATAHUB_LOCAL_OPS_PORT" || bad "127.0.0.1:$DATAHUB_LOCAL_OPS_PORT/health/live answered $l"

# The DataHub API port of datahub-local answers HTTP on the host (any status).
a=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$DATAHUB_LOCAL_HOST_PORT/")
[[ $a != 000 ]] && note "ok   datahub-local DataHub API published on 127.0.0.1:$DATAHUB_LOCAL_HOST_PORT (HTTP $a)" \
  || bad "datahub-local DataHub API on 127.0.0.1:$DATAHUB_LOCAL_HOST_PORT does not answer"

if ((fail)); then note "compose smoke test FAILED"; exit 1; fi
note "compose smoke test passed"
