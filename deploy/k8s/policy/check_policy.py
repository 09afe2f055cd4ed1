#!/usr/bin/env python3
"""Security and operability policy for the rendered deployment manifests.

    check_policy.py k8s RENDERED.yaml [RENDERED.yaml ...]   # output of `kubectl kustomize`
    check_policy.py compose CONFIG.yaml                      # output of `docker-compose config`

Kubernetes, every container of every workload (init containers included):
  non-root (runAsNonRoot and a numeric runAsUser > 0, pod or container level), read-only root
  file system, allowPrivilegeEscalation false, capabilities drop ALL, resources requests and
  limits for cpu and memory, livenessProbe GET /health/live and readinessProbe GET /health/ready
  on port 8080, no :latest image. Plus the deployment contract: cdc-capture runs 1 replica with
  strategy Recreate, file-sink has an autoscaling/v2 HPA (and its Deployment leaves `replicas`
  to it), datahub-local is a StatefulSet with a volume claim template, and every workload has a
  Service with port 8080.
Compose, every service whose image is cdc/<function>: numeric non-root user, read_only, tmpfs,
  cap_drop ALL, no-new-privileges; file-sink scalable (no container_name, no fixed host port);
  secrets passed as *_FILE only (no DATABASE_PASSWORD / DATAHUB_ACCESS_KEY values).

Prints every violation and exits 1 if there is any.
"""
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
SECRET_VARS = {"DATABASE_PASSWORD", "DATAHUB_ACCESS_ID", "DATAHUB_ACCESS_KEY",
               "S3_ACCESS_KEY", "S3_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def pod_spec(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return spec["template"]["spec"]


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_probe(container, kind, path, where, errors):
    probe = container.get(kind)
    if not probe:
        errors.append(f"{where}: no {kind}")
        return
    get = probe.get("httpGet")
    if not get:
        errors.append(f"{where}: {kind} is not an httpGet probe")
        return
    if get.get("path") != path:
        errors.append(f"{where}: {kind} path {get.get('path')!r}, expected {path}")
    if port_number(container, get.get("port")) != 8080:
        errors.append(f"{where}: {kind} port {get.get('port')!r} is not 8080")


def check_k8s(docs):
    errors = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    if not workloads:
        errors.append("no workload found")
    for w in workloads:
        name = f'{w["kind"]}/{w["metadata"]["name"]}'
        ps = pod_spec(w)
        psc = ps.get("securityContext", {})
        if ps.get("hostNetwork") or ps.get("hostPID") or ps.get("hostIPC"):
            errors.append(f"{name}: uses host namespaces")
        containers = ps.get("initContainers", []) + ps.get("containers", [])
        for c in containers:
            where = f'{name} container {c["name"]}'
            sc = c.get("securityContext", {})
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            if non_root is not True:
                errors.append(f"{where}: runAsNonRoot is not true")
            if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
                errors.append(f"{where}: runAsUser {uid!r} is not a numeric non-root uid")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                errors.append(f"{where}: privileged")
            drop = sc.get("capabilities", {}).get("drop", [])
            if "ALL" not in drop:
                errors.append(f"{where}: capabilities.drop does not contain ALL")
            if sc.get("capabilities", {}).get("add"):
                errors.append(f"{where}: adds capabilities {sc['capabilities']['add']}")
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(section, {}):
                        errors.append(f"{where}: no resources.{section}.{r}")
            image = c.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                errors.append(f"{where}: image {image!r} has no pinned tag")
            if c in ps.get("containers", []):
                check_probe(c, "livenessProbe", "/health/live", where, errors)
                check_probe(c, "readinessProbe", "/health/ready", where, errors)

        # Every workload is reachable on 8080 through a Service selecting it.
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        services = [s for s in by_kind.get("Service", {}).values()
                    if s["spec"].get("selector")
                    and all(labels.get(k) == v for k, v in s["spec"]["selector"].items())
                    and any(p.get("port") == 8080 for p in s["spec"].get("ports", []))]
        if not services:
            errors.append(f"{name}: no Service exposes its port 8080")

    capture = by_kind.get("Deployment", {}).get("cdc-capture")
    if not capture:
        errors.append("Deployment/cdc-capture missing")
    else:
        if capture["spec"].get("replicas") != 1:
            errors.append("Deployment/cdc-capture: replicas must be 1")
        if capture["spec"].get("strategy", {}).get("type") != "Recreate":
            errors.append("Deployment/cdc-capture: strategy must be Recreate")
    dl = by_kind.get("StatefulSet", {}).get("datahub-local")
    if not dl or not dl["spec"].get("volumeClaimTemplates"):
        errors.append("StatefulSet/datahub-local with a volumeClaimTemplate missing")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
            if h["apiVersion"] == "autoscaling/v2"
            and h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": "file-sink"}]
    if not hpas:
        errors.append("no autoscaling/v2 HorizontalPodAutoscaler targets Deployment/file-sink")
    for h in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = h["spec"]["scaleTargetRef"]
        target = by_kind.get(ref["kind"], {}).get(ref["name"])
        if target is None:
            errors.append(f"HPA {h['metadata']['name']}: target {ref['kind']}/{ref['name']} missing")
        elif "replicas" in target["spec"]:
            errors.append(f"{ref['kind']}/{ref['name']}: sets replicas although HPA "
                          f"{h['metadata']['name']} owns the count (apply would reset it)")
    for kind in ("Namespace", "ServiceAccount", "NetworkPolicy", "PodDisruptionBudget",
                 "ServiceMonitor", "PrometheusRule", "ConfigMap"):
        if kind not in by_kind:
            errors.append(f"no {kind}")
    for d in docs:
        if d["kind"] == "Secret" and d["metadata"]["name"].startswith("cdc-credentials") \
                and d["metadata"].get("namespace", "").endswith("-dev") is False:
            errors.append(f"Secret {d['metadata']['name']} rendered outside a dev namespace")
    return errors


def check_compose(cfg):
    errors = []
    services = cfg.get("services", {})
    cdc = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("cdc/")
           and not str(s.get("image", "")).startswith("cdc/mariadb")}
    if not cdc:
        errors.append("no cdc/<function> service found")
    for name, s in cdc.items():
        where = f"service {name}"
        user = str(s.get("user", ""))
        uid = user.split(":")[0]
        if not uid.isdigit() or int(uid) == 0:
            errors.append(f"{where}: user {user!r} is not a numeric non-root uid")
        if s.get("read_only") is not True:
            errors.append(f"{where}: read_only is not true")
        if not s.get("tmpfs"):
            errors.append(f"{where}: no tmpfs for /tmp")
        if "ALL" not in s.get("cap_drop", []):
            errors.append(f"{where}: cap_drop does not contain ALL")
        if s.get("cap_add"):
            errors.append(f"{where}: cap_add {s['cap_add']}")
        if not any(o.replace("=", ":") == "no-new-privileges:true" for o in s.get("security_opt", [])):
            errors.append(f"{where}: security_opt lacks no-new-privileges:true")
        if s.get("privileged"):
            errors.append(f"{where}: privileged")
        env = s.get("environment", {}) or {}
        for var in SECRET_VARS & set(env):
            errors.append(f"{where}: {var} given as a value; use {var}_FILE with a secret")
        for var, value in env.items():
            if var.endswith("_FILE") and str(value).startswith("/run/secrets/"):
                secret = str(value).rsplit("/", 1)[-1]
                names = [x if isinstance(x, str) else x.get("source") for x in s.get("secrets", [])]
                if secret not in names:
                    errors.append(f"{where}: {var} points at secret {secret!r} not given to it")
        if str(s.get("image", "")).split(":")[0] != f"cdc/{name}":
            errors.append(f"{where}: image {s.get('image')!r} is not cdc/{name}:<version>")
    fs = services.get("file-sink")
    if not fs:
        errors.append("service file-sink missing")
    else:
        if "container_name" in fs:
            errors.append("file-sink: container_name prevents --scale")
        for p in fs.get("ports", []):
            published = p.get("published") if isinstance(p, dict) else str(p).split(":")[-2:-1]
            if published:
                errors.append(f"file-sink: fixed host port {p} prevents --scale")
    return errors


def main(argv):
    if len(argv) < 3 or argv[1] not in ("k8s", "compose"):
        print(__doc__)
        return 2
    if argv[1] == "k8s":
        docs = []
        for path in argv[2:]:
            with open(path) as f:
                docs = [d for d in yaml.safe_load_all(f) if d]
            errors = check_k8s(docs)
            report(path, errors, f"{sum(d['kind'] in WORKLOADS for d in docs)} workloads")
            if errors:
                return 1
        return 0
    with open(argv[2]) as f:
        errors = check_compose(yaml.safe_load(f))
    report(argv[2], errors, "compose services")
    return 1 if errors else 0


def report(path, errors, what):
    if errors:
        print(f"policy FAILED for {path}:")
        for e in errors:
            print(f"  - {e}")
    else:
        print(f"policy ok: {path} ({what})")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
