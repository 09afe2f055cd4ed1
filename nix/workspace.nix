# The whole Cargo workspace, built once: every function's binary in $out/bin. The per-function
# packages (function.nix) copy one binary out of it, so dependencies compile once, not seven times.
{ pkgs, lib, info, root }:
pkgs.rustPlatform.buildRustPackage {
  pname = "cdc-pipeline-workspace";
  inherit (info) version;

  # Only what cargo needs: a change to deploy/, docs or scripts does not rebuild.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/Cargo.toml")
      (root + "/Cargo.lock")
      (root + "/functions")
      (root + "/shared")
    ];
  };

  # Dependencies are vendored from Cargo.lock (all from crates.io: no outputHashes needed).
  cargoLock.lockFile = root + "/Cargo.lock";

  nativeBuildInputs = [ pkgs.pkg-config ];
  cargoBuildFlags = [ "--workspace" "--bins" ];

  # The test suites start MariaDB, Docker containers and S3 servers: they run in CI
  # (scripts/test.sh), not in the Nix sandbox.
  doCheck = false;

  meta = {
    description = "CDC pipeline functions (all binaries)";
    homepage = info.source;
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
  };
}
