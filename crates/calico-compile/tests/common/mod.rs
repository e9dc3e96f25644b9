//! Builders for models and packets, and the check that the reference and the npol
//! evaluation of the compiled objects agree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_compile::{compile, evaluate_compiled, reference, CalicoDirection, InterfaceKey};
use calico_model::*;
use npol::{Packet, Verdict};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn pid(name: &str) -> PolicyId {
    PolicyId {
        name: name.into(),
        namespace: String::new(),
        kind: "GlobalNetworkPolicy".into(),
    }
}

pub fn staged(name: &str) -> PolicyId {
    PolicyId {
        name: name.into(),
        namespace: String::new(),
        kind: "StagedGlobalNetworkPolicy".into(),
    }
}

pub fn wid(name: &str) -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("ns/{name}"),
        endpoint_id: "eth0".into(),
    }
}

pub fn rule(action: Action) -> Rule {
    Rule::match_all(action)
}

pub fn policy(inbound: Vec<Rule>, outbound: Vec<Rule>) -> Policy {
    Policy {
        tier: "default".into(),
        inbound_rules: inbound,
        outbound_rules: outbound,
        ..Policy::default()
    }
}

pub fn tier(name: &str, ingress: &[PolicyId], egress: &[PolicyId]) -> TierInfo {
    TierInfo {
        name: name.into(),
        ingress_policies: ingress.to_vec(),
        egress_policies: egress.to_vec(),
        default_action: TierDefaultAction::Deny,
    }
}

pub fn workload(
    name: &str,
    addrs: &[&str],
    tiers: Vec<TierInfo>,
    profiles: &[&str],
) -> WorkloadEndpoint {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in addrs {
        match ip(a) {
            IpAddr::V4(a) => v4.push(ipnet::Ipv4Net::new(a, 32).unwrap()),
            IpAddr::V6(a) => v6.push(ipnet::Ipv6Net::new(a, 128).unwrap()),
        }
    }
    WorkloadEndpoint {
        active: true,
        name: format!("cali{name}"),
        mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        profile_ids: profiles.iter().map(|p| ProfileId(p.to_string())).collect(),
        ipv4_nets: v4,
        ipv6_nets: v6,
        tiers,
        ipv4_nat: vec![],
        ipv6_nat: vec![],
        allow_spoofed_source_prefixes: vec![],
        annotations: BTreeMap::new(),
        invalid: None,
    }
}

pub fn allow_all_profile() -> Profile {
    Profile {
        inbound_rules: vec![rule(Action::Allow)],
        outbound_rules: vec![rule(Action::Allow)],
        invalid: None,
    }
}

pub fn net_set(members: &[&str]) -> IpSet {
    IpSet {
        kind: IpSetKind::Net,
        members: members
            .iter()
            .map(|m| IpSetMember::Net(m.parse().unwrap()))
            .collect(),
    }
}

pub fn tcp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::tcp(ip(src), 40000, ip(dst), dport)
}

/// The verdict for `pkt` on workload `ep`, asserting that the reference and npol's
/// evaluation of the compiled objects agree.
pub fn verdict(
    model: &Model,
    ep: &WorkloadEndpointId,
    dir: CalicoDirection,
    pkt: &Packet,
) -> Verdict {
    let want = reference::evaluate(model, ep, dir, pkt);
    let compiled = compile(model);
    let iface = InterfaceKey(model.workload_endpoints[ep].name.clone());
    let got = evaluate_compiled(&compiled.desired, &iface, dir, pkt).expect("interface compiled");
    assert_eq!(
        got.verdict, want.verdict,
        "reference decided by {:?}; npol trace {:?}",
        want.decided_by, got.trace
    );
    want.verdict
}
