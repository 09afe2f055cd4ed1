#!/usr/bin/env bash
# Builds a MariaDB server image without a registry, from the server Debian's `mariadb-server`
# package installed on this machine: mariadbd and exactly its shared-library closure, the
# English error messages and character sets, a data directory initialised at build time, and
# busybox (Debian's busybox-static) for the entrypoint. Tag: cdc/mariadb:local (override with
# MARIADB_IMAGE). Users with a registry use the official `mariadb` image instead: the
# entrypoint honours the same variables (MARIADB_ROOT_PASSWORD, MARIADB_DATABASE,
# MARIADB_USER, MARIADB_PASSWORD) and passes its arguments to mariadbd, as the official one
# does, so `--log-bin --binlog-format=ROW ...` work with either.
#
# Needs: docker, mariadb-server (mariadbd, mariadb-install-db), busybox-static.
set -euo pipefail
IMAGE=${MARIADB_IMAGE:-cdc/mariadb:local}
die() { printf 'deploy/images/mariadb/build.sh: %s\n' "$*" >&2; exit 1; }
[[ -x /usr/sbin/mariadbd ]] || die "mariadbd not found: apt-get install mariadb-server"
command -v mariadb-install-db >/dev/null || die "mariadb-install-db not found: apt-get install mariadb-server"
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || die "a static /bin/busybox is needed: apt-get install busybox-static"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

WORK=$(mktemp -d /tmp/cdc-mariadb-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
root=$WORK/rootfs
mkdir -p "$root/usr/sbin" "$root/usr/share/mysql" "$root/bin" "$root/etc" "$root/tmp" "$root/run/mysqld"

# mariadb-admin too: compose's health check runs `mariadb-admin ping`, as with the official image.
mkdir -p "$root/usr/bin"
cp /usr/sbin/mariadbd "$root/usr/sbin/mariadbd"
cp /usr/bin/mariadb-admin "$root/usr/bin/mariadb-admin"
for lib in $( (ldd /usr/sbin/mariadbd; ldd /usr/bin/mariadb-admin) | grep -o '/[^ :]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp -r /usr/share/mysql/english /usr/share/mysql/charsets "$root/usr/share/mysql/"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\nmysql:x:999:999:MariaDB:/var/lib/mysql:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nmysql:x:999:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

# The system tables, made once here so the container starts in a second (the official image
# does this on first start).
mariadb-install-db --no-defaults --datadir="$root/var/lib/mysql" --user=root \
  --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=8M >"$WORK/install-db.log" 2>&1 \
  || { cat "$WORK/install-db.log" >&2; die "mariadb-install-db failed"; }

cat >"$root/entrypoint.sh" <<'SH'
#!/bin/sh
# Writes the accounts the official image's variables ask for into an init file that mariadbd
# runs at every start (idempotent statements), plus /docker-entrypoint-initdb.d/*.sql on the
# first start of a data directory, then becomes mariadbd with the caller's arguments.
set -eu
sql=/tmp/init.sql
# VAR or VAR_FILE, as the official image reads them.
env_or_file() {
  eval "v=\${$1:-}"; eval "f=\${$1_FILE:-}"
  if [ -n "$f" ]; then cat "$f"; else printf '%s' "$v"; fi
}
q() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }
root_pw=$(env_or_file MARIADB_ROOT_PASSWORD)
database=$(env_or_file MARIADB_DATABASE)
user=$(env_or_file MARIADB_USER)
user_pw=$(env_or_file MARIADB_PASSWORD)
{
  # Anonymous accounts shadow TCP logins; the build host's name means nothing in a container.
  echo "DELETE FROM mysql.global_priv WHERE User='' OR Host NOT IN ('localhost','127.0.0.1','::1','%');"
  echo "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost','127.0.0.1','::1','%');"
  if [ -n "$root_pw" ]; then
    pw=$(q "$root_pw")
    echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$pw';"
    echo "ALTER USER 'root'@'%' IDENTIFIED BY '$pw';"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
  fi
  [ -z "$database" ] || echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"
  if [ -n "$user" ] && [ -n "$user_pw" ]; then
    u=$(q "$user"); p=$(q "$user_pw")
    echo "CREATE USER IF NOT EXISTS '$u'@'%' IDENTIFIED BY '$p';"
    [ -z "$database" ] || echo "GRANT ALL ON \`$database\`.* TO '$u'@'%';"
  fi
  echo "FLUSH PRIVILEGES;"
  if [ ! -e /var/lib/mysql/.initdb-done ] && [ -d /docker-entrypoint-initdb.d ]; then
    for f in /docker-entrypoint-initdb.d/*.sql; do [ -e "$f" ] && cat "$f" && echo; done
    : >/var/lib/mysql/.initdb-done
  fi
} >"$sql"
exec /usr/sbin/mariadbd --no-defaults --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --port=3306 --bind-address=0.0.0.0 --skip-name-resolve --lc-messages-dir=/usr/share/mysql \
  --innodb-log-file-size=8M --init-file="$sql" "$@"
SH
chmod 755 "$root/entrypoint.sh"

cat >"$WORK/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY --chown=999:999 rootfs/ /
USER 999:999
EXPOSE 3306
ENTRYPOINT ["/entrypoint.sh"]
DOCKERFILE
# Root-owned system paths are fine to be owned by 999 in a throwaway test image; the data
# directory, /run/mysqld and /tmp must be writable by mariadbd.
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$WORK" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; die "docker build $IMAGE failed"; }
printf '%s  %.1f MB\n' "$IMAGE" "$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{print $1/1000000}')"
