#!/usr/bin/env python3
"""Validates every YAML document of the given manifest files against its schema.

Kubernetes kinds: the OpenAPI schemas bundled with kubernetes-validate (PyPI), strict (an
unknown field is an error, as with `kubectl apply --validate=strict`). A document marked with
the line `# validate: patch` is a patch (`kubectl patch --patch-file`): the
same schema without `required`. Calico kinds (projectcalico.org/v3 or crd.projectcalico.org/v1):
the openAPIV3Schema of the upstream CRD in --crd-dir, made strict the same way (unknown fields
rejected unless the CRD preserves them) and its metadata held to Kubernetes' ObjectMeta.

A document of a kind no schema covers is a failure, never a skip. Prints one line per document
(`OK` or `FAIL`), then `N documents: V valid, I invalid`; exits 1 when any is invalid.
"""

import argparse
import copy
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate.utils as kv
import yaml
import referencing.jsonschema
from referencing import Registry, Resource

PATCH_MARKER = "# validate: patch"
CALICO_API_VERSIONS = ("projectcalico.org/v3", "crd.projectcalico.org/v1")
K8S_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
OBJECT_META = K8S_DEFS_ID + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
INLINE_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def split_documents(text):
    """Splits on `---` lines (what the Rust tests do); yields (raw text, parsed) per document."""
    for raw in re.split(r"^---[ \t]*$", text, flags=re.M):
        doc = yaml.safe_load(raw)
        if doc is not None:
            yield raw, doc


def without_required(schema):
    """A copy of a JSON schema with every `required` list removed (a patch may omit fields)."""
    if isinstance(schema, dict):
        return {
            k: without_required(v)
            for k, v in schema.items()
            if not (k == "required" and isinstance(v, list))
        }
    if isinstance(schema, list):
        return [without_required(v) for v in schema]
    return schema


def go_pattern(pattern):
    """Kubernetes evaluates patterns with Go's RE2, which accepts `^(?i)...`; Python wants
    inline flags at the start."""
    flags = "".join(INLINE_FLAGS.findall(pattern))
    if not flags:
        return pattern
    return "(?%s)%s" % ("".join(sorted(set(flags))), INLINE_FLAGS.sub("", pattern))


def structural(schema):
    """Turns a CRD's structural OpenAPI v3 schema into a JSON schema with the API server's
    semantics: unknown fields rejected (strict field validation) unless preserved,
    int-or-string, nullable, and Go regular expressions."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: structural(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = structural(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [structural(s) for s in value]
        elif key == "pattern":
            out[key] = go_pattern(value)
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string") is True and not (
        {"type", "anyOf", "oneOf"} & out.keys()
    ):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "additionalProperties" not in out
        and out.get("x-kubernetes-preserve-unknown-fields") is not True
    ):
        out["additionalProperties"] = False
    return out


def load_calico_crds(crd_dir):
    crds = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        kind = crd["spec"]["names"]["kind"]
        versions = [v for v in crd["spec"]["versions"] if v.get("served", True)]
        if len(versions) != 1:
            raise SystemExit("%s: expected one served version" % path)
        crds[kind] = (path.name, versions[0]["schema"]["openAPIV3Schema"])
    if not crds:
        raise SystemExit("no CustomResourceDefinition in %s" % crd_dir)
    return crds


class Validators:
    def __init__(self, k8s_version, crd_dir):
        if k8s_version not in kv.all_versions():
            raise SystemExit(
                "kubernetes-validate has no schemas for Kubernetes %s (it has %s)"
                % (k8s_version, ", ".join(kv.all_versions()))
            )
        self.k8s_version = k8s_version
        self.schema_dir = "kubernetes-json-schema/v%s-local-strict" % k8s_version
        self.defs = kv.schema_contents(self.schema_dir + "/_definitions.json", k8s_version)
        self.calico = load_calico_crds(crd_dir) if crd_dir else {}

    def _validator(self, schema, defs):
        # The document's schema is used directly; only the definitions it refers to (by their
        # $id) need to be in the registry.
        draft = referencing.jsonschema.DRAFT202012
        registry = Resource.from_contents(defs, default_specification=draft) @ Registry()
        return jsonschema.Draft202012Validator(schema, registry=registry)

    def for_document(self, doc, patch):
        """(description of the schema, validator), or (None, why) when no schema covers it."""
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return None, "no apiVersion/kind"
        if "projectcalico.org/" in api_version:
            if api_version not in CALICO_API_VERSIONS:
                return None, "unknown Calico apiVersion %s" % api_version
            if kind not in self.calico:
                return None, "no upstream CRD for Calico kind %s" % kind
            crd_file, crd_schema = self.calico[kind]
            schema = structural(crd_schema)
            schema["properties"]["metadata"] = {"$ref": OBJECT_META}
            schema["properties"]["apiVersion"] = {"enum": list(CALICO_API_VERSIONS)}
            schema["properties"]["kind"] = {"const": kind}
            defs = self.defs
            if patch:
                schema, defs = without_required(schema), without_required(defs)
            return "CRD %s" % crd_file, self._validator(schema, defs)
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = "%s-%s.json" % (kind.lower(), group_version)
        try:
            schema = kv.schema_contents("%s/%s" % (self.schema_dir, name), self.k8s_version)
        except FileNotFoundError:
            return None, "no Kubernetes %s schema for %s %s" % (
                self.k8s_version, api_version, kind)
        defs = self.defs
        if patch:
            schema, defs = without_required(schema), without_required(defs)
        return "Kubernetes %s %s" % (self.k8s_version, name), self._validator(schema, defs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", default="1.32.0")
    parser.add_argument("--crd-dir", required=True, help="upstream Calico CRDs")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    validators = Validators(args.kubernetes_version, args.crd_dir)

    valid = invalid = 0
    for filename in args.files:
        text = Path(filename).read_text()
        for index, (raw, doc) in enumerate(split_documents(text)):
            where = "%s#%d" % (filename, index)
            name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
            what = "%s/%s" % (doc.get("kind") if isinstance(doc, dict) else "?", name)
            patch = PATCH_MARKER in raw
            problems = []
            if not isinstance(doc, dict):
                problems.append("not a mapping")
                source = None
            else:
                source, validator = validators.for_document(doc, patch)
                if source is None:
                    problems.append(validator)
                else:
                    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                        path = ".".join(str(p) for p in e.absolute_path) or "(document)"
                        problems.append("%s: %s" % (path, e.message))
                if not name:
                    problems.append("metadata.name: missing")
            if problems:
                invalid += 1
                for p in problems:
                    print("FAIL %s %s: %s" % (where, what, p))
            else:
                valid += 1
                print("OK %s %s (%s%s)" % (where, what, source, ", as a patch" if patch else ""))
    print("%d documents: %d valid, %d invalid" % (valid + invalid, valid, invalid))
    return 0 if invalid == 0 and valid > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
