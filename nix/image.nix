# The OCI image of one function, as a script that streams it (docker load / skopeo / podman):
# the binary, CA certificates and time zones; no shell, no package manager. Runs as the numeric
# non-root user 10001, which owns the state directories the deployments mount volumes on
# (/var/lib/cdc and below, /var/lib/datahub-local): a fresh Docker named volume copies that
# ownership. The root file system can be mounted read-only; /tmp is a tmpfs or emptyDir there.
{ pkgs, name, package, info }:
let
  uid = "10001";
  passwd = pkgs.writeTextDir "etc/passwd" ''
    root:x:0:0:root:/var/empty:/sbin/nologin
    cdc:x:${uid}:${uid}:cdc:/var/lib/cdc:/sbin/nologin
    nobody:x:65534:65534:nobody:/var/empty:/sbin/nologin
  '';
  group = pkgs.writeTextDir "etc/group" ''
    root:x:0:
    cdc:x:${uid}:
    nobody:x:65534:
  '';
  ports = { "8080/tcp" = { }; }
    // (if name == "datahub-local" then { "9091/tcp" = { }; } else { });
in
pkgs.dockerTools.streamLayeredImage {
  name = "cdc/${name}";
  tag = info.version;

  contents = [ package pkgs.cacert pkgs.tzdata passwd group ];

  extraCommands = ''
    mkdir -p tmp var/lib/cdc/output var/lib/cdc/checkpoints var/lib/cdc/savepoints var/lib/datahub-local
    chmod 1777 tmp
  '';
  fakeRootCommands = ''
    chown -R ${uid}:${uid} var/lib/cdc var/lib/datahub-local
  '';

  config = {
    Entrypoint = [ "${package}/bin/${name}" ];
    User = "${uid}:${uid}";
    WorkingDir = "/var/lib/cdc";
    ExposedPorts = ports;
    Env = [
      "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"
      "TZDIR=${pkgs.tzdata}/share/zoneinfo"
      "MONITORING_PORT=8080"
    ];
    Labels = {
      "org.opencontainers.image.title" = name;
      "org.opencontainers.image.version" = info.version;
      "org.opencontainers.image.revision" = info.revision;
      "org.opencontainers.image.source" = info.source;
      "org.opencontainers.image.licenses" = info.license;
    };
  };
}
