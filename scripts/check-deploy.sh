#!/usr/bin/env bash
# Offline checks of the deployment files: deploy/ (Prometheus, Alertmanager, docker-compose,
# Kubernetes), nix/ and flake.nix. Installs what it needs (Debian: prometheus,
# prometheus-alertmanager, docker-compose, nix-bin; PyPI: kubernetes-validate, jsonschema,
# pyyaml), runs every check, prints what failed and exits non-zero if anything did.
#
#   scripts/check-deploy.sh            # everything
#   CHECK_DEPLOY_NO_INSTALL=1 ...      # do not install, fail on a missing tool instead
#
# The function binaries are built (cargo build, debug) to run their own --check-config on the
# environment each deployment gives them. Nothing needs a cluster, a registry or a Docker engine.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive

WORK=$(mktemp -d /tmp/check-deploy.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FUNCTIONS=$(find functions -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
NIX=(nix --extra-experimental-features nix-command --extra-experimental-features flakes)
PY=python3
POLICY=deploy/k8s/policy

passed=0
failed=()

# step NAME COMMAND...: runs the command, shows its output indented when it fails (and its last
# line when it passes).
step() {
  local name=$1; shift
  local log="$WORK/step.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s%s\n' "$name" "$(tail -n1 "$log" | sed 's/^ */  — /;s/^  — $//' | cut -c1-110)"
  else
    failed+=("$name")
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      | /' "$log" | tail -n 60
  fi
}

# expect_failure NAME COMMAND...: a negative control; passes when the command fails.
expect_failure() {
  local name=$1; shift
  if "$@" >"$WORK/neg.log" 2>&1; then
    failed+=("$name")
    printf 'FAIL  %s (the check accepted a deliberately broken input)\n' "$name"
  else
    passed=$((passed + 1))
    printf 'ok    %s (broken input rejected)\n' "$name"
  fi
}

# ---------------------------------------------------------------------------------------------
echo "== tools"
need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v nix-instantiate >/dev/null || need_apt+=(nix-bin)
if ((${#need_apt[@]})); then
  if [[ -n "${CHECK_DEPLOY_NO_INSTALL:-}" ]]; then
    echo "missing Debian packages: ${need_apt[*]}"; exit 1
  fi
  echo "installing ${need_apt[*]}"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } >"$WORK/apt.log" 2>&1 \
    || { echo "apt-get install failed:"; tail -20 "$WORK/apt.log"; exit 1; }
fi
if ! command -v kubectl >/dev/null; then
  # Debian's kubernetes-client conflicts with the kubectl these machines come with.
  echo "kubectl is missing (install Kubernetes' kubectl package; not Debian's kubernetes-client)"
  exit 1
fi
if ! command -v kubernetes-validate >/dev/null || ! command -v cfn-lint >/dev/null || ! $PY -c 'import jsonschema, yaml' 2>/dev/null; then
  if [[ -n "${CHECK_DEPLOY_NO_INSTALL:-}" ]]; then
    echo "missing Python packages (kubernetes-validate, cfn-lint, jsonschema, pyyaml)"; exit 1
  fi
  echo "installing kubernetes-validate cfn-lint jsonschema pyyaml (pip)"
  $PY -m pip install -q kubernetes-validate cfn-lint jsonschema pyyaml >"$WORK/pip.log" 2>&1 \
    || { echo "pip install failed:"; tail -20 "$WORK/pip.log"; exit 1; }
  hash -r
fi
echo "promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'), amtool $(amtool --version 2>&1 | head -1 | awk '{print $3}')," \
     "docker-compose $(docker-compose version --short 2>/dev/null), kubectl $(kubectl version --client -o json 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')," \
     "$(nix-instantiate --version), kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1)"

# ---------------------------------------------------------------------------------------------
echo "== Prometheus and Alertmanager"
step "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
step "promtool test rules deploy/prometheus/alerts_test.yml" promtool test rules deploy/prometheus/alerts_test.yml
step "promtool check config deploy/prometheus/prometheus.yml" promtool check config deploy/prometheus/prometheus.yml
step "amtool check-config deploy/alertmanager/alertmanager.yml" amtool check-config deploy/alertmanager/alertmanager.yml

alert_names() {
  $PY - "$1" <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
names = sorted(r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r)
want = sorted(["HighDataLatency", "HighCheckpointFailureRate", "HighCPUUsage", "HighBackpressure",
               "DeadLetterQueueGrowing"])
if names != want:
    sys.exit(f"alerts {names}, expected the guide's five {want}")
tested = yaml.safe_load(open(sys.argv[1].replace("alerts.yml", "alerts_test.yml")))
for name in want:
    cases = [t for test in tested["tests"] for t in test.get("alert_rule_test", []) if t["alertname"] == name]
    if not any(c.get("exp_alerts") for c in cases) or not any(not c.get("exp_alerts") for c in cases):
        sys.exit(f"{name}: alerts_test.yml must show it both firing and not firing")
print("the five alerts, each tested firing and not firing")
EOF
}
step "alerts.yml has the guide's five alerts, each unit-tested both ways" alert_names deploy/prometheus/alerts.yml

am_routes() {
  local cfg=deploy/alertmanager/alertmanager.yml out
  for pair in critical:critical warning:warning info:default; do
    out=$(amtool config routes test --config.file="$cfg" "severity=${pair%%:*}" 2>/dev/null)
    [[ "$out" == "${pair#*:}" ]] || { echo "severity=${pair%%:*} routed to '$out', expected ${pair#*:}"; return 1; }
  done
  echo "critical→critical, warning→warning, other→default"
}
step "alertmanager routes by severity" am_routes

rule_sync() {
  $PY - <<'EOF'
import sys, yaml
alerts = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
rule = yaml.safe_load(open("deploy/k8s/base/monitoring/prometheusrule.yaml"))
if rule["spec"]["groups"] != alerts["groups"]:
    sys.exit("deploy/k8s/base/monitoring/prometheusrule.yaml spec.groups differs from deploy/prometheus/alerts.yml groups")
print("PrometheusRule groups == alerts.yml groups")
EOF
}
step "PrometheusRule carries exactly alerts.yml" rule_sync

# ---------------------------------------------------------------------------------------------
echo "== docker-compose"
COMPOSE=deploy/compose/docker-compose.yml
step "docker-compose config -q (default services)" docker-compose -f $COMPOSE config -q
step "docker-compose config -q (.env.example)" docker-compose -f $COMPOSE --env-file deploy/compose/.env.example config -q
for profile in object-storage monitoring all-in-one; do
  step "docker-compose config -q (--profile $profile)" docker-compose -f $COMPOSE --profile $profile config -q
done
docker-compose -f $COMPOSE --profile object-storage --profile monitoring --profile all-in-one config \
  >"$WORK/compose.yaml" 2>"$WORK/compose.err" || cat "$WORK/compose.err"
step "compose policy (non-root, read-only, cap_drop ALL, no-new-privileges, *_FILE secrets, scalable file-sink)" \
  $PY $POLICY/check_policy.py compose "$WORK/compose.yaml"

env_example() {
  $PY - <<'EOF'
import re, sys
compose = open("deploy/compose/docker-compose.yml").read()
used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
example = {l.split("=", 1)[0] for l in open("deploy/compose/.env.example")
           if re.match(r"^[A-Z0-9_]+=", l)}
missing, unused = sorted(used - example), sorted(example - used)
if missing or unused:
    sys.exit(f"missing from .env.example: {missing}; in .env.example but unused: {unused}")
print(f"{len(used)} variables, all in .env.example")
EOF
}
step ".env.example lists every variable docker-compose.yml reads" env_example

# ---------------------------------------------------------------------------------------------
echo "== Kubernetes"
RENDERS=()
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir=${dir%/}; name=$(basename "$dir")
  step "kubectl kustomize $dir" kubectl kustomize "$dir" -o "$WORK/k8s-$name.yaml"
  [[ -s "$WORK/k8s-$name.yaml" ]] && RENDERS+=("$WORK/k8s-$name.yaml")
done
((${#RENDERS[@]} >= 3)) || { failed+=("render base and at least two overlays"); echo "FAIL  fewer than 3 renders"; }

split_builtin() {  # RENDER OUT: built-in kinds only (kubernetes-validate skips custom resources)
  $PY - "$1" "$2" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = [d for d in docs if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].split("/")[0].endswith(".k8s.io")]
yaml.safe_dump_all(keep, open(sys.argv[2], "w"), sort_keys=False)
EOF
}
k8s_validate() {  # FILE VERSION
  kubernetes-validate --strict --quiet -k "$2" "$1" && echo "valid against Kubernetes $2 (strict)"
}
for r in "${RENDERS[@]}"; do
  name=$(basename "$r" .yaml)
  split_builtin "$r" "$WORK/$name-builtin.yaml"
  for v in 1.25 1.37; do
    step "kubernetes-validate --strict -k $v $name" k8s_validate "$WORK/$name-builtin.yaml" $v
  done
  step "custom resources of $name against deploy/k8s/crds (jsonschema)" $PY $POLICY/validate_crs.py deploy/k8s/crds "$r"
  step "pod policy $name (non-root, read-only fs, drop ALL, resources, probes)" $PY $POLICY/check_policy.py k8s "$r"
done
crds_valid() { kubernetes-validate --strict --quiet -k 1.37 deploy/k8s/crds/*.yaml && echo "$(ls deploy/k8s/crds/*.yaml | wc -l) CRDs valid (strict)"; }
step "vendored CRDs are valid CustomResourceDefinitions" crds_valid

# ---------------------------------------------------------------------------------------------
echo "== functions accept the configuration the deployments give them"
build_functions() {
  local args=()
  for f in $FUNCTIONS; do args+=(-p "$f"); done
  cargo build -q --locked "${args[@]}" && echo "built: $(echo $FUNCTIONS)"
}
step "cargo build the function binaries" build_functions
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
step "compose environments pass <function> --check-config" \
  $PY $POLICY/check_function_env.py "$BIN" "$WORK/env" compose "$WORK/compose.yaml"
for r in "${RENDERS[@]}"; do
  step "$(basename "$r" .yaml) environments + application.yml pass <function> --check-config" \
    $PY $POLICY/check_function_env.py "$BIN" "$WORK/env" k8s "$r"
done

echo "== docker-compose for real (local Docker engine, scratch images from the debug binaries)"
skipped=()
if docker info >/dev/null 2>&1; then
  step "compose smoke test: non-root, read-only, secrets, /health/live, file-sink x2" \
    env BIN_DIR="$BIN" deploy/compose/smoke-test.sh
else
  skipped+=("compose smoke test (no Docker engine answering)")
  echo "SKIP  compose smoke test: no Docker engine answering"
fi

# ---------------------------------------------------------------------------------------------
echo "== Lambda (deploy/lambda)"
step "cfn-lint on the SAM template" cfn-lint deploy/lambda/template.yaml
# Every function that has a Lambda mode is deployed by the template, from its zip.
lambda_functions() {
  local f missing=0 n=0
  for f in $FUNCTIONS; do
    grep -rqs "LambdaEnv::detect" "functions/$f/src" || continue
    n=$((n + 1))
    grep -q "CodeUri: ../../target/lambda/$f/bootstrap.zip" deploy/lambda/template.yaml || { echo "$f has a Lambda mode but no function in template.yaml"; missing=1; }
    grep -qw "$f" deploy/lambda/build.sh || { echo "$f is not built by deploy/lambda/build.sh"; missing=1; }
  done
  ((missing == 0)) && echo "$n Lambda-mode functions, each in template.yaml and build.sh"
}
step "every Lambda-mode function is packaged and deployed" lambda_functions

# ---------------------------------------------------------------------------------------------
echo "== Nix"
nix_parse() {
  local n=0 f
  while IFS= read -r f; do nix-instantiate --parse "$f" >/dev/null || { echo "parse error: $f"; return 1; }; n=$((n + 1)); done \
    < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' | sort)
  ((n > 0)) && echo "$n files parse"
}
step "nix-instantiate --parse on every .nix file" nix_parse

# A copy without target/: a flake inside a git work tree only sees tracked files.
FLAKE="$WORK/flake"
mkdir -p "$FLAKE"
cp -r flake.nix nix Cargo.toml Cargo.lock functions shared "$FLAKE"/
[[ -f flake.lock ]] && cp flake.lock "$FLAKE"/
STUB=(--no-write-lock-file --override-input nixpkgs "path:$ROOT/nix/stubs/nixpkgs")
flake_check() { "${NIX[@]}" flake check --no-build "${STUB[@]}" "path:$FLAKE" && echo "flake check passed"; }
step "nix flake check --no-build (stub nixpkgs)" flake_check
flake_show() {
  "${NIX[@]}" flake show "${STUB[@]}" "path:$FLAKE" >"$WORK/show.txt" 2>&1 || { cat "$WORK/show.txt"; return 1; }
  echo "$(grep -c "package '" "$WORK/show.txt") packages and $(grep -c "development environment" "$WORK/show.txt") dev shells listed"
}
step "nix flake show (stub nixpkgs)" flake_show

flake_outputs() {
  local names expected f
  names=$("${NIX[@]}" eval --json "${STUB[@]}" "path:$FLAKE#packages.x86_64-linux" --apply builtins.attrNames 2>"$WORK/eval.err") \
    || { cat "$WORK/eval.err"; return 1; }
  for f in $FUNCTIONS; do
    for attr in "$f" "$f-image"; do
      grep -q "\"$attr\"" <<<"$names" || { echo "packages.x86_64-linux.$attr missing"; return 1; }
    done
  done
  # Every package evaluates to a derivation (the stub builders assert the image contract).
  "${NIX[@]}" eval --json "${STUB[@]}" "path:$FLAKE#packages.x86_64-linux" \
    --apply 'ps: builtins.mapAttrs (n: p: p.drvPath) ps' >"$WORK/drvs.json" 2>"$WORK/eval.err" \
    || { cat "$WORK/eval.err"; return 1; }
  "${NIX[@]}" eval --raw "${STUB[@]}" "path:$FLAKE#devShells.x86_64-linux.default.drvPath" >/dev/null 2>"$WORK/eval.err" \
    || { cat "$WORK/eval.err"; return 1; }
  echo "package and image for each of: $(echo $FUNCTIONS); $($PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/drvs.json") drvPaths evaluate"
}
step "flake has <function> and <function>-image for every functions/ directory" flake_outputs

# ---------------------------------------------------------------------------------------------
echo "== negative controls (each check must reject a broken input)"
NEG="$WORK/neg"; mkdir -p "$NEG"
cp deploy/prometheus/alerts.yml deploy/prometheus/alerts_test.yml "$NEG"/
sed -i 's/flink_latency_p99 > 60000/flink_latency_p99 > 90000/' "$NEG/alerts.yml"
expect_failure "promtool test rules on a wrong latency threshold" promtool test rules "$NEG/alerts_test.yml"
base="$WORK/k8s-base.yaml"
if [[ -s "$base" ]]; then
  sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$base" >"$NEG/rw.yaml"
  expect_failure "pod policy on a writable root file system" $PY $POLICY/check_policy.py k8s "$NEG/rw.yaml"
  sed '/readinessProbe:/,/failureThreshold: 3/d' "$base" >"$NEG/noprobe.yaml"
  expect_failure "pod policy without readiness probes" $PY $POLICY/check_policy.py k8s "$NEG/noprobe.yaml"
  sed 's/^    interval: 30s$/    intervl: 30s/; s/      for: 5m/      fore: 5m/' "$base" >"$NEG/cr.yaml"
  expect_failure "CR validation of an unknown field" $PY $POLICY/validate_crs.py deploy/k8s/crds "$NEG/cr.yaml"
  split_builtin "$base" "$NEG/b.yaml"; sed -i 's/allowPrivilegeEscalation/allowPrivilegeEscalaton/' "$NEG/b.yaml"
  expect_failure "kubernetes-validate --strict on a misspelt field" k8s_validate "$NEG/b.yaml" 1.37
  sed 's/format: json/format: xml/' "$base" >"$NEG/cfg.yaml"
  expect_failure "--check-config on an invalid application.yml" $PY $POLICY/check_function_env.py "$BIN" "$NEG/env" k8s "$NEG/cfg.yaml"
fi
$PY - "$WORK/compose.yaml" "$NEG/compose.yaml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
c["services"]["cdc-capture"].pop("cap_drop", None)
c["services"]["file-sink"]["container_name"] = "file-sink"
yaml.safe_dump(c, open(sys.argv[2], "w"))
EOF
expect_failure "compose policy without cap_drop and with a fixed container_name" $PY $POLICY/check_policy.py compose "$NEG/compose.yaml"
cp -r "$FLAKE" "$NEG/flake"
sed -i 's/User = "${uid}:${uid}";/User = "0:0";/' "$NEG/flake/nix/image.nix"
expect_failure "stub flake check of an image running as root" "${NIX[@]}" flake check --no-build "${STUB[@]}" "path:$NEG/flake"
sed 's/FunctionName: !Ref TransformFunction/FunctionName: !Ref TransfromFunction/' deploy/lambda/template.yaml >"$NEG/template.yaml"
expect_failure "cfn-lint on a template with a dangling !Ref" cfn-lint "$NEG/template.yaml"

# ---------------------------------------------------------------------------------------------
echo
if ((${#failed[@]})); then
  echo "FAILED checks:"
  printf '  - %s\n' "${failed[@]}"
fi
if ((${#skipped[@]})); then
  echo "skipped:"
  printf '  - %s\n' "${skipped[@]}"
fi
echo "check-deploy: ${passed} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
((${#failed[@]} == 0))
