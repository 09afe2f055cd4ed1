#!/usr/bin/env bash
# Builds one OCI image per function on the local Docker engine, without Nix and without a
# registry: FROM scratch with the function's binary, CA certificates, time zones and a passwd
# naming the non-root user 10001, which owns the state directories — the layout, user,
# entrypoint and environment of nix/image.nix. Tags: cdc/<function>:<version>.
#
#   deploy/images/build.sh [FUNCTION...]      (default: every crate under functions/)
#
# Environment:
#   CDC_VERSION  image tag (default: the workspace version in Cargo.toml)
#   PROFILE      cargo profile (default: release)
#   TARGET       Rust target; default x86_64-unknown-linux-musl (a static binary) when that
#                target is installed and musl-gcc is present for the C dependencies,
#                otherwise the host target, with the binary's exact shared-library closure
#   BIN_DIR      use the binaries already in this directory instead of running cargo
#   IMAGE_PREFIX repository prefix (default: cdc)
#
# Prints each image's size and whether its binary is static. Needs docker, cargo (unless
# BIN_DIR), ldd.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

die() { printf 'deploy/images/build.sh: %s\n' "$*" >&2; exit 1; }

VERSION=${CDC_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
[[ -n "$VERSION" ]] || die "cannot read the workspace version from Cargo.toml; set CDC_VERSION"
PROFILE=${PROFILE:-release}
PREFIX=${IMAGE_PREFIX:-cdc}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -1)
LICENSE=$(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml | head -1)

if [[ $# -gt 0 ]]; then
  FUNCTIONS=("$@")
else
  FUNCTIONS=()
  for dir in functions/*/; do
    [[ -f "$dir/Cargo.toml" ]] && FUNCTIONS+=("$(basename "$dir")")
  done
fi
for f in "${FUNCTIONS[@]}"; do
  [[ -f "functions/$f/Cargo.toml" ]] || die "no function '$f' under functions/"
done

docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

# --- binaries --------------------------------------------------------------------------------
if [[ -z "${BIN_DIR:-}" ]]; then
  if [[ -z "${TARGET:-}" ]]; then
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
       && command -v musl-gcc >/dev/null 2>&1; then
      TARGET=x86_64-unknown-linux-musl
    else
      TARGET=$(rustc -vV | sed -n 's/^host: //p')
      echo "note: building for $TARGET with the shared-library closure (for static binaries install the x86_64-unknown-linux-musl target and Debian's musl-tools)"
    fi
  fi
  packages=()
  for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
  # musl-gcc compiles the C dependencies (zstd, ring's assembly) against musl's headers.
  if [[ "$TARGET" == *-musl ]]; then export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc}; fi
  cargo build --locked --profile "$PROFILE" --target "$TARGET" --bins "${packages[@]}"
  profile_dir=$PROFILE; [[ "$PROFILE" == dev ]] && profile_dir=debug
  BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/$profile_dir
fi

# --- images ----------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/cdc-images.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

printf '%-22s %-28s %10s  %s\n' FUNCTION IMAGE SIZE BINARY
for f in "${FUNCTIONS[@]}"; do
  bin=$BIN_DIR/$f
  [[ -x "$bin" ]] || die "no binary $bin"
  ctx=$WORK/$f
  root=$ctx/rootfs
  mkdir -p "$root/bin" "$root/etc/ssl/certs" "$root/usr/share" "$root/tmp" \
           "$ctx/state/cdc/output" "$ctx/state/cdc/checkpoints" "$ctx/state/cdc/savepoints" \
           "$ctx/state/datahub-local"
  cp "$bin" "$root/bin/$f"
  strip "$root/bin/$f" 2>/dev/null || true
  linkage=static
  # glibc's ldd exits 0 on a static-pie binary too; it then prints "statically linked".
  # (Captured first: `ldd | grep -q` under pipefail fails when grep exits early and ldd gets
  # SIGPIPE, which made dynamic binaries look static.)
  libs=$(ldd "$bin" 2>/dev/null || true)
  if grep -q '=>\|ld-linux' <<<"$libs"; then
    linkage=dynamic
    # The exact closure ldd resolves, loader included, at the same paths.
    for lib in $(grep -o '/[^ ]*' <<<"$libs"); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  fi
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  cp -r /usr/share/zoneinfo "$root/usr/share/zoneinfo"
  printf 'root:x:0:0:root:/var/empty:/sbin/nologin\ncdc:x:10001:10001:cdc:/var/lib/cdc:/sbin/nologin\nnobody:x:65534:65534:nobody:/var/empty:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\ncdc:x:10001:\nnobody:x:65534:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  expose="EXPOSE 8080"
  [[ "$f" == datahub-local ]] && expose="EXPOSE 8080 9091"
  cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 state/ /var/lib/
USER 10001:10001
WORKDIR /var/lib/cdc
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt TZDIR=/usr/share/zoneinfo MONITORING_PORT=8080
$expose
LABEL org.opencontainers.image.title="$f" \\
      org.opencontainers.image.version="$VERSION" \\
      org.opencontainers.image.revision="$REVISION" \\
      org.opencontainers.image.source="$SOURCE" \\
      org.opencontainers.image.licenses="$LICENSE"
ENTRYPOINT ["/bin/$f"]
EOF
  image=$PREFIX/$f:$VERSION
  DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >"$WORK/build-$f.log" 2>&1 \
    || { cat "$WORK/build-$f.log" >&2; die "docker build $image failed"; }
  bytes=$(docker image inspect -f '{{.Size}}' "$image")
  printf '%-22s %-28s %7.1f MB  %s\n' "$f" "$image" "$(echo "$bytes" | awk '{print $1/1000000}')" "$linkage"
done
