#!/usr/bin/env bash
# Builds an S3-compatible server image without a registry, for the container integration
# suite (integration-tests/) and local trials of object-sink: s3s-fs (crates.io, on disk,
# SigV4, honours `If-None-Match`/`If-Match` conditional writes) FROM scratch with exactly its
# shared-library closure, running as the non-root user 10001 who owns the data directory
# /data. Tag: cdc/s3s-fs:local (override with S3_IMAGE).
#
#   deploy/images/s3s-fs/build.sh
#   docker run -p 127.0.0.1:9000:9000 cdc/s3s-fs:local \
#     --host 0.0.0.0 --port 9000 --access-key KEY --secret-key SECRET /data
#
# The entrypoint is the binary; the default arguments serve /data on 0.0.0.0:9000 without
# authentication, so pass --access-key/--secret-key as above for SigV4. RUST_LOG=info (the
# default here) logs "server is running at http://0.0.0.0:9000" on stdout when it listens.
#
# Environment:
#   S3_IMAGE    image name (default cdc/s3s-fs:local)
#   S3S_FS_BIN  the s3s-fs binary (default: s3s-fs on PATH, else ~/.cargo/bin/s3s-fs)
#
# Needs: docker, ldd, an s3s-fs binary: `cargo install s3s-fs --version 0.14.1 --features
# binary --locked` (newer versions need a newer rustc).
set -euo pipefail
IMAGE=${S3_IMAGE:-cdc/s3s-fs:local}
die() { printf 'deploy/images/s3s-fs/build.sh: %s\n' "$*" >&2; exit 1; }

BIN=${S3S_FS_BIN:-$(command -v s3s-fs || true)}
[[ -n "$BIN" ]] || BIN=$HOME/.cargo/bin/s3s-fs
[[ -x "$BIN" ]] || die "no s3s-fs binary (looked at ${S3S_FS_BIN:-PATH and $HOME/.cargo/bin}): cargo install s3s-fs --version 0.14.1 --features binary --locked"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

WORK=$(mktemp -d /tmp/cdc-s3s-fs-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
root=$WORK/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$WORK/data/data"
cp "$BIN" "$root/bin/s3s-fs"
strip "$root/bin/s3s-fs" 2>/dev/null || true
# The exact closure ldd resolves, loader included, at the same paths (nothing for a static
# binary: glibc's ldd then prints "statically linked" / "not a dynamic executable").
for lib in $(ldd "$BIN" 2>/dev/null | grep -o '/[^ :]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/var/empty:/sbin/nologin\ns3:x:10001:10001:s3s-fs:/data:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ns3:x:10001:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

version=$("$BIN" --version 2>/dev/null | awk '{print $2}')
cat >"$WORK/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 data/ /
USER 10001:10001
WORKDIR /data
ENV RUST_LOG=info
EXPOSE 9000
LABEL org.opencontainers.image.title="s3s-fs" \\
      org.opencontainers.image.version="${version:-unknown}" \\
      org.opencontainers.image.source="https://github.com/Nugine/s3s"
ENTRYPOINT ["/bin/s3s-fs"]
CMD ["--host", "0.0.0.0", "--port", "9000", "/data"]
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$WORK" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log" >&2; die "docker build $IMAGE failed"; }
printf '%s  s3s-fs %s  %.1f MB\n' "$IMAGE" "${version:-?}" "$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{print $1/1000000}')"
