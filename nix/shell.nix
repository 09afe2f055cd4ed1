# `nix develop`: the Rust toolchain and the tools scripts/check-deploy.sh uses.
{ pkgs }:
pkgs.mkShell {
  name = "cdc-pipeline-dev";
  packages = [
    pkgs.cargo
    pkgs.rustc
    pkgs.clippy
    pkgs.rustfmt
    pkgs.cargo-nextest
    pkgs.pkg-config
    pkgs.mariadb
    pkgs.prometheus
    pkgs.prometheus-alertmanager
    pkgs.kubectl
    pkgs.docker-compose
    (pkgs.python3.withPackages (ps: [ ps.pyyaml ps.jsonschema ]))
  ];
}
