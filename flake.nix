{
  # Nix build of the CDC pipeline: one package and one OCI image per function under functions/.
  #   nix build .#cdc-capture               # the binary
  #   nix build .#cdc-capture-image         # a script that streams the image:
  #   $(nix build --print-out-paths .#cdc-capture-image) | docker load
  #   nix develop                           # toolchain and deployment tools
  # See nix/README.md (including how this is checked offline against stub inputs).
  description = "CDC pipeline: change-data-capture functions and their OCI images";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = lib.genAttrs systems;

      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);
      # Every directory under functions/ is a function: crate = binary = image name.
      functions = builtins.attrNames
        (lib.filterAttrs (_: type: type == "directory") (builtins.readDir ./functions));
      info = {
        version = cargoToml.workspace.package.version;
        revision = self.rev or self.dirtyRev or "dirty";
        source = cargoToml.workspace.package.repository;
        license = cargoToml.workspace.package.license;
      };

      perSystem = system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          workspace = import ./nix/workspace.nix { inherit pkgs lib info; root = ./.; };
          function = name: import ./nix/function.nix { inherit pkgs name workspace; };
          image = name: import ./nix/image.nix { inherit pkgs name info; package = function name; };
        in
        builtins.listToAttrs (builtins.concatMap
          (name: [
            { inherit name; value = function name; }
            { name = "${name}-image"; value = image name; }
          ])
          functions)
        // { default = workspace; inherit workspace; };
    in
    {
      packages = forAllSystems perSystem;

      devShells = forAllSystems (system: {
        default = import ./nix/shell.nix { pkgs = nixpkgs.legacyPackages.${system}; };
      });
    };
}
