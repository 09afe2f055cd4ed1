#!/usr/bin/env python3
"""Validate custom resources against the vendored CRD schemas (deploy/k8s/crds).

    validate_crs.py CRD_DIR RENDERED.yaml [RENDERED.yaml ...]

kubernetes-validate skips custom resources, so every document whose apiVersion group has a
CRD in CRD_DIR is validated here with jsonschema against that CRD's openAPIV3Schema for its
version. Object schemas that list `properties` are closed (unknown fields are errors), as the
API server does with a structural schema under strict field validation; `metadata` is left to
the API server, except that a name is required. A document of a vendored group whose kind or
version has no schema is an error, and so is a file with no custom resource at all.
"""
import copy
import glob
import os
import sys

import jsonschema
import yaml


def close(schema):
    """Copy of an OpenAPI v3 schema with every object that lists properties closed."""
    s = copy.deepcopy(schema)

    def walk(node, top=False):
        if not isinstance(node, dict):
            return
        props = node.get("properties")
        if isinstance(props, dict):
            for name, sub in props.items():
                if top and name == "metadata":
                    continue
                walk(sub)
            if "additionalProperties" not in node and \
                    not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
        if isinstance(node.get("items"), dict):
            walk(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub)

    walk(s, top=True)
    return s


def load_crds(crd_dir):
    schemas = {}
    groups = set()
    for path in sorted(glob.glob(os.path.join(crd_dir, "*.yaml"))):
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                groups.add(group)
                for v in crd["spec"]["versions"]:
                    schemas[(f"{group}/{v['name']}", kind)] = close(v["schema"]["openAPIV3Schema"])
    return schemas, groups


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    schemas, groups = load_crds(argv[1])
    if not schemas:
        print(f"no CustomResourceDefinition found in {argv[1]}")
        return 1
    failed = False
    total = 0
    for path in argv[2:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        checked = 0
        for d in docs:
            group = d.get("apiVersion", "").split("/")[0]
            if group not in groups:
                continue
            what = f"{d['kind']}/{d.get('metadata', {}).get('name')}"
            schema = schemas.get((d["apiVersion"], d["kind"]))
            if schema is None:
                print(f"FAIL {path}: {what}: no vendored schema for {d['apiVersion']} {d['kind']}")
                failed = True
                continue
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(d))
            if not d.get("metadata", {}).get("name"):
                errors.append("metadata.name is missing")
            for e in errors:
                loc = "/".join(str(p) for p in getattr(e, "absolute_path", [])) or "(root)"
                print(f"FAIL {path}: {what}: {loc}: {getattr(e, 'message', e)}")
            failed |= bool(errors)
            checked += 1
            if not errors:
                print(f"ok   {path}: {what} ({d['apiVersion']})")
        total += checked
        if checked == 0:
            print(f"FAIL {path}: no custom resource of {sorted(groups)} found")
            failed = True
    if not failed:
        print(f"{total} custom resources valid against {len(schemas)} vendored schemas")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
