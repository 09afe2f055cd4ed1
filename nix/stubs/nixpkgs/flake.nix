{
  # STUB standing in for nixpkgs, for offline evaluation checks only (nix/README.md): the few
  # functions our flake calls, returning plain builtins.derivation values that are never built.
  # The stubs also assert the contract of our packages and images (see pkgs.nix), so an
  # evaluation against them fails with a clear message when flake.nix or nix/*.nix break it.
  description = "stub nixpkgs for offline evaluation of the CDC pipeline flake";

  outputs = { self }:
    let
      lib = import ./lib.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
        (system: import ./pkgs.nix { inherit lib system; });
    };
}
