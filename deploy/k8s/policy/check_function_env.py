#!/usr/bin/env python3
"""Run each function's own configuration check on the settings a deployment gives it.

    check_function_env.py BIN_DIR WORK_DIR compose COMPOSE_CONFIG.yaml
    check_function_env.py BIN_DIR WORK_DIR k8s RENDERED.yaml

For every compose service with an image cdc/<function>, and every Kubernetes workload whose
container image ends in /<function> or is cdc/<function>, runs `BIN_DIR/<function>
--check-config` with exactly that environment (nothing inherited but PATH), so misspelt
variables in files, invalid values and missing required settings fail here as they would at
start-up. To run outside a container:
  - secret files (/run/secrets/...) are replaced by files with placeholder values;
  - CONFIG_FILE pointing into a ConfigMap is replaced by the rendered ConfigMap's file;
  - a local OUTPUT_PATH is replaced by a fresh temporary directory (sinks probe it for writing).
"""
import os
import subprocess
import sys
import tempfile

import yaml


def run(bin_dir, fn, env, where):
    binary = os.path.join(bin_dir, fn)
    if not os.access(binary, os.X_OK):
        print(f"FAIL {where}: no binary {binary}")
        return False
    env = {k: str(v) for k, v in env.items() if v is not None}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    p = subprocess.run([binary, "--check-config"], env=env, capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        print(f"FAIL {where}: {fn} --check-config exited {p.returncode}")
        for line in (p.stderr or p.stdout).strip().splitlines():
            print(f"     {line}")
        return False
    print(f"ok   {where}: {fn} accepts its configuration")
    return True


def placeholder(work, path, content="placeholder-value"):
    local = os.path.join(work, "files", path.lstrip("/"))
    os.makedirs(os.path.dirname(local), exist_ok=True)
    if not os.path.exists(local):
        with open(local, "w") as f:
            f.write(content + "\n")
    return local


def localise(env, work, files=None):
    files = files or {}
    out = {}
    for k, v in env.items():
        v = "" if v is None else str(v)
        if k == "CONFIG_FILE":
            if v not in files:
                raise SystemExit(f"CONFIG_FILE {v} is not a file of a mounted ConfigMap")
            v = files[v]
        elif k.endswith("_FILE") and v.startswith("/"):
            v = placeholder(work, v)
        elif k == "OUTPUT_PATH" and v.startswith("/"):
            v = tempfile.mkdtemp(prefix="output-", dir=work)
        out[k] = v
    return out


def compose(bin_dir, work, path):
    with open(path) as f:
        cfg = yaml.safe_load(f)
    ok, n = True, 0
    for name, svc in cfg.get("services", {}).items():
        image = str(svc.get("image", ""))
        if not image.startswith("cdc/") or image.startswith("cdc/mariadb"):
            continue
        fn = image.split("/", 1)[1].split(":")[0]
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        ok &= run(bin_dir, fn, localise(env, work), f"compose service {name}")
        n += 1
    return ok and n > 0


def k8s(bin_dir, work, path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    ok, n = True, 0
    for w in docs:
        if w["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            fn = c["image"].rsplit("/", 1)[-1].split(":")[0]
            # Files of ConfigMap volumes, by their path in the container.
            files = {}
            for m in c.get("volumeMounts", []):
                cm = volumes.get(m["name"], {}).get("configMap")
                if cm:
                    for key, text in configmaps.get(cm["name"], {}).items():
                        local = os.path.join(work, "configmaps", cm["name"], key)
                        os.makedirs(os.path.dirname(local), exist_ok=True)
                        with open(local, "w") as f:
                            f.write(text)
                        files[os.path.join(m["mountPath"], key)] = local
            env = {}
            for e in c.get("env", []):
                if "value" in e:
                    env[e["name"]] = e["value"]
                elif "valueFrom" in e:
                    env[e["name"]] = "placeholder-value"
            where = f"{w['kind']}/{w['metadata']['name']} ({os.path.basename(path)})"
            ok &= run(bin_dir, fn, localise(env, work, files), where)
            n += 1
    return ok and n > 0


def main(argv):
    if len(argv) != 5 or argv[3] not in ("compose", "k8s"):
        print(__doc__)
        return 2
    bin_dir, work, mode, path = argv[1:]
    os.makedirs(work, exist_ok=True)
    ok = (compose if mode == "compose" else k8s)(bin_dir, work, path)
    if ok:
        print(f"every function of {os.path.basename(path)} accepts its configuration")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
