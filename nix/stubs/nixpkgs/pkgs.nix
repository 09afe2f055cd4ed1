# Stub package set. Every value is a builtins.derivation whose builder fails: evaluation
# (drvPath, flake check --no-build, flake show) works, building does not. The builders check
# the arguments our flake passes, with messages saying what is wrong.
{ lib, system }:
let
  drv = name: builtins.derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo 'stub nixpkgs: ${name} cannot be built' >&2; exit 1" ];
  };
  check = cond: msg: if cond then true else throw "stub nixpkgs: ${msg}";
  tool = name: drv "${name}-stub";
  self = {
    rustPlatform.buildRustPackage = args:
      assert check (args ? pname && args ? version) "buildRustPackage needs pname and version";
      assert check (args ? src && builtins.pathExists args.src) "buildRustPackage: src missing";
      assert check (args ? cargoLock.lockFile && builtins.pathExists args.cargoLock.lockFile)
        "buildRustPackage: cargoLock.lockFile must name an existing Cargo.lock";
      assert check (builtins.length (builtins.split "\\[\\[package]]" (builtins.readFile args.cargoLock.lockFile)) > 1)
        "buildRustPackage: cargoLock.lockFile is not a Cargo.lock";
      drv "${args.pname}-${args.version}" // {
        inherit (args) pname version;
        meta = args.meta or { };
      };

    runCommand = name: env: command:
      assert check (builtins.isString command) "runCommand: command must be a string";
      drv name // { meta = env.meta or { }; passthru = env.passthru or { }; };

    writeTextDir = path: text: drv (baseNameOf path);

    dockerTools.streamLayeredImage = args:
      let
        config = args.config or { };
        labels = config.Labels or { };
        user = config.User or "";
      in
      assert check (args ? name && args ? tag) "streamLayeredImage needs name and tag";
      assert check (builtins.match "[1-9][0-9]*(:[0-9]+)?" user != null)
        "image ${args.name}: config.User must be a numeric non-root uid[:gid], got '${user}'";
      assert check (builtins.length (config.Entrypoint or [ ]) > 0)
        "image ${args.name}: config.Entrypoint is empty";
      assert check ((config.ExposedPorts or { }) ? "8080/tcp")
        "image ${args.name}: config.ExposedPorts lacks 8080/tcp";
      assert check (builtins.all (l: labels ? ${l}) [
        "org.opencontainers.image.version"
        "org.opencontainers.image.revision"
        "org.opencontainers.image.source"
      ]) "image ${args.name}: OCI labels version, revision and source are required";
      assert check (builtins.elem self.cacert (args.contents or [ ])
                    && builtins.elem self.tzdata (args.contents or [ ]))
        "image ${args.name}: contents must include cacert and tzdata";
      # Like the real one: the derivation is named after the image's base name.
      drv "stream-${baseNameOf args.name}" // {
        imageName = args.name;
        imageTag = args.tag;
        passthru = { inherit config; };
      };

    mkShell = args: drv (args.name or "nix-shell");

    python3 = tool "python3" // {
      withPackages = f: let ps = { pyyaml = tool "pyyaml"; jsonschema = tool "jsonschema"; };
                        in builtins.seq (f ps) (tool "python3-env");
    };

    cacert = tool "cacert";
    tzdata = tool "tzdata";
  } // lib.genAttrs [
    "pkg-config" "cargo" "rustc" "clippy" "rustfmt" "cargo-nextest" "mariadb" "prometheus"
    "prometheus-alertmanager" "kubectl" "docker-compose"
  ] tool;
in
self
