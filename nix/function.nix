# One function: its binary alone, so an image's closure holds nothing of the other functions.
{ pkgs, name, workspace }:
pkgs.runCommand name
  {
    meta = workspace.meta // { mainProgram = name; };
    passthru = { inherit workspace; };
  }
  ''
    install -Dm755 ${workspace}/bin/${name} $out/bin/${name}
  ''
