#!/usr/bin/env python3
"""Drives the VPP simulator with VPP's own Python client (vpp_papi).

Usage: papi_client.py API_DIR SOCKET
Prints one JSON object with what the client saw; exits non-zero on any failure.
"""
import ipaddress
import json
import sys

from vpp_papi import VPPApiClient


def main():
    api_dir, sock = sys.argv[1], sys.argv[2]
    vpp = VPPApiClient(apidir=api_dir, server_address=sock, use_socket=True, read_timeout=5)
    vpp.connect("papi-sim-test")
    out = {}
    v = vpp.api.show_version()
    out["program"] = v.program
    out["version"] = v.version

    s = vpp.api.npol_ipset_create(type=2)  # NPOL_NET
    assert s.retval == 0, s
    out["set_id"] = s.set_id
    members = [{"val": {"prefix": ipaddress.ip_network("10.1.0.0/16")}}]
    r = vpp.api.npol_ipset_add_del_members(set_id=s.set_id, is_add=True, len=1, members=members)
    assert r.retval == 0, r

    rule = {
        "action": 0,  # NPOL_ALLOW
        "filters": [{"type": 3, "value": 6, "should_match": 1}, {"type": 0}, {"type": 0}],
        "num_entries": 2,
        "matches": [
            {"is_src": True, "is_not": False, "type": 3, "data": {"set_id": {"set_id": s.set_id}}},
            {"is_src": False, "is_not": False, "type": 1, "data": {"port_range": {"start": 80, "end": 80}}},
        ],
    }
    rc = vpp.api.npol_rule_create(rule=rule)
    assert rc.retval == 0, rc
    out["rule_id"] = rc.rule_id
    pc = vpp.api.npol_policy_create(num_items=1, rules=[{"is_inbound": True, "rule_id": rc.rule_id}])
    assert pc.retval == 0, pc
    out["policy_id"] = pc.policy_id

    itf = vpp.api.af_packet_create_v3(host_if_name="papi0", use_random_hw_addr=True, mode=1)
    assert itf.retval == 0, itf
    out["sw_if_index"] = itf.sw_if_index
    r = vpp.api.sw_interface_set_flags(sw_if_index=itf.sw_if_index, flags=1)
    assert r.retval == 0, r
    r = vpp.api.sw_interface_tag_add_del(is_add=True, sw_if_index=itf.sw_if_index, tag="papi-tag")
    assert r.retval == 0, r
    r = vpp.api.sw_interface_add_del_address(
        sw_if_index=itf.sw_if_index, is_add=True, prefix=ipaddress.ip_interface("10.1.2.3/24")
    )
    assert r.retval == 0, r
    r = vpp.api.feature_cnat_enable_disable(sw_if_index=itf.sw_if_index, enable_disable=True)
    assert r.retval == 0, r
    r = vpp.api.npol_configure_policies(
        sw_if_index=itf.sw_if_index, num_rx_policies=1, num_tx_policies=0, total_ids=1,
        invert_rx_tx=0, policy_default_rx=1, policy_default_tx=1,
        profile_default_rx=1, profile_default_tx=1, policy_ids=[pc.policy_id],
    )
    assert r.retval == 0, r
    bad = vpp.api.npol_configure_policies(
        sw_if_index=itf.sw_if_index, num_rx_policies=1, num_tx_policies=0, total_ids=1,
        invert_rx_tx=0, policy_default_rx=1, policy_default_tx=1,
        profile_default_rx=1, profile_default_tx=1, policy_ids=[pc.policy_id + 5],
    )
    out["configure_unknown_policy_retval"] = bad.retval

    out["interfaces"] = [
        {"sw_if_index": d.sw_if_index, "name": d.interface_name, "tag": d.tag, "flags": int(d.flags)}
        for d in vpp.api.sw_interface_dump(sw_if_index=0xFFFFFFFF)
    ]
    vpp.disconnect()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
