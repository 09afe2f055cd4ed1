# The subset of nixpkgs' lib our flake uses, same names and semantics.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
    (n: if pred n set.${n} then [{ name = n; value = set.${n}; }] else [ ])
    (builtins.attrNames set));
  fileset = {
    # Real fileset.toSource copies only the listed files; evaluation needs only a path.
    toSource = { root, fileset }:
      assert builtins.all builtins.pathExists fileset
        || throw "stub lib.fileset.toSource: a listed path does not exist";
      root;
    unions = paths: paths;
  };
  licenses.asl20 = { spdxId = "Apache-2.0"; shortName = "asl20"; };
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
}
