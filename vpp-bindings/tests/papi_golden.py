#!/usr/bin/env python3
"""Encodes messages with VPP's own Python client (vpp_papi) for the golden tests.

Usage: papi_golden.py API_DIR < cases.json > results.json

cases.json is a list of {"msg": NAME, "fields": {...}, "header": {...}}: fields in the shape
vpp_papi takes, with two conveniences for JSON: lists of ints stand for u8 arrays (bytes),
and count fields of variable arrays may be left out (they are set to the array's length).
Each result is {"hex": ...} or {"error": ...}.
"""
import glob
import json
import os
import sys

from vpp_papi.vpp_papi import VPPApiJSONFiles

STRUCTS = {}
UNIONS = {}
ALIASES = {}
MSGDEFS = {}


def field_parts(fd):
    """(type, name, extra positional elements) of a JSON field definition."""
    pos = [x for x in fd if not isinstance(x, dict)]
    return pos[0], pos[1], pos[2:]


def prep_value(ftype, v):
    if ftype in UNIONS:
        members = {field_parts(fd)[1]: field_parts(fd)[0] for fd in UNIONS[ftype]}
        return {k: prep_value(members[k], x) for k, x in v.items()}
    if ftype in STRUCTS:
        return prep_struct(STRUCTS[ftype], v)
    if ftype in ALIASES:
        a = ALIASES[ftype]
        if "length" in a:
            if a["type"] == "u8":
                return bytes(v)
            return [prep_value(a["type"], x) for x in v]
        return prep_value(a["type"], v)
    return v


def prep_list(ftype, v):
    if ftype == "u8":
        return bytes(v)
    return [prep_value(ftype, x) for x in v]


def prep_struct(fields, data):
    out = dict(data)
    for fd in fields:
        if not isinstance(fd, list):
            continue
        ftype, fname, extra = field_parts(fd)
        if fname not in data:
            continue
        v = data[fname]
        if len(extra) == 2:
            out[extra[1]] = len(v)
            out[fname] = prep_list(ftype, v)
        elif len(extra) == 1 and ftype != "string":
            out[fname] = prep_list(ftype, v)
        elif not extra:
            out[fname] = prep_value(ftype, v)
    return out


def load(api_dir):
    messages = {}
    files = sorted(glob.glob(os.path.join(api_dir, "**", "*.api.json"), recursive=True))
    for path in files:
        with open(path) as f:
            raw = json.load(f)
        for t in raw.get("types", []):
            STRUCTS["vl_api_" + t[0] + "_t"] = t[1:]
        for t in raw.get("unions", []):
            UNIONS["vl_api_" + t[0] + "_t"] = t[1:]
        for k, v in raw.get("aliases", {}).items():
            ALIASES["vl_api_" + k + "_t"] = v
        for m in raw.get("messages", []):
            MSGDEFS[m[0]] = m[1:]
        # vpp_papi's own loader builds the serializers (VPPType/VPPMessage) from the JSON.
        m, _ = VPPApiJSONFiles._process_json(raw)
        messages.update(m)
    return messages


def main():
    api_dir = sys.argv[1]
    messages = load(api_dir)
    cases = json.load(sys.stdin)
    results = []
    for case in cases:
        name = case["msg"]
        try:
            args = prep_struct(MSGDEFS[name], case["fields"])
            # Header values go only to the leading header fields: control_ping_reply, for
            # one, has a client_index in its body.
            header = case.get("header", {})
            for fd in MSGDEFS[name]:
                if not isinstance(fd, list):
                    continue
                fname = field_parts(fd)[1]
                if fname not in ("_vl_msg_id", "client_index", "context"):
                    break
                if fname in header:
                    args[fname] = header[fname]
            results.append({"hex": bytes(messages[name].pack(args)).hex()})
        except Exception as e:  # report per case; the Rust test names the failure
            results.append({"error": "%s: %r" % (type(e).__name__, e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
