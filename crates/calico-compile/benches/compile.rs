//! Compile benchmark: a node with 1,000 endpoints, 500 policies in 5 tiers and 100 IP sets
//! holding 50,000 members; full compile time and object counts, then incremental updates.
//! Run with `cargo bench -p calico-compile`. Prints numbers; asserts nothing about time.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use calico_compile::{compile, ChangeSet, Compiler};
use calico_model::*;
use ipnet::{IpNet, Ipv4Net};

const ENDPOINTS: usize = 1000;
const NAMESPACES: usize = 50;
const TIERS: usize = 5;
const POLICIES_PER_TIER: usize = 100;
const SETS: usize = 100;
const MEMBERS_PER_SET: usize = 500;
const PORT_SETS: usize = 10;

fn pid(i: usize) -> PolicyId {
    PolicyId {
        name: format!("policy-{i}"),
        namespace: String::new(),
        kind: "GlobalNetworkPolicy".into(),
    }
}

fn set_id(i: usize) -> IpSetId {
    IpSetId(format!("s:set-{i}"))
}

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000u32 + i as u32)
}

fn host(i: usize) -> IpNet {
    IpNet::V4(Ipv4Net::new(addr(i), 32).unwrap())
}

fn policy(i: usize) -> Policy {
    let s = |k: usize| set_id((i * 7 + k) % (SETS - PORT_SETS));
    let port_set = set_id(SETS - PORT_SETS + i % PORT_SETS);
    let mut from_app = Rule::match_all(Action::Allow);
    from_app.protocol = Some(6);
    from_app.src_ip_set_ids = vec![s(0)];
    from_app.dst_ports = vec![
        PortRange {
            first: 80,
            last: 80,
        },
        PortRange {
            first: 8000,
            last: 8100,
        },
    ];
    let mut both = Rule::match_all(Action::Allow);
    both.src_ip_set_ids = vec![s(1), s(2)];
    let mut named = Rule::match_all(Action::Allow);
    named.protocol = Some(6);
    named.dst_named_port_ip_set_ids = vec![port_set];
    let mut deny_net = Rule::match_all(Action::Deny);
    deny_net.src_net = vec![
        "192.168.0.0/16".parse().unwrap(),
        "fd00:99::/64".parse().unwrap(),
    ];
    deny_net.not_src_ip_set_ids = vec![s(3)];
    let mut pass = Rule::match_all(Action::Pass);
    pass.dst_net = vec!["10.96.0.0/12".parse().unwrap()];
    Policy {
        tier: format!("tier-{}", i / POLICIES_PER_TIER),
        inbound_rules: vec![
            from_app.clone(),
            both.clone(),
            deny_net.clone(),
            pass.clone(),
        ],
        outbound_rules: vec![named, deny_net, pass],
        ..Policy::default()
    }
}

fn tiers_for(ns: usize) -> Vec<TierInfo> {
    (0..TIERS)
        .map(|t| {
            let base = t * POLICIES_PER_TIER;
            // A namespace's own two policies and the tier's global one.
            let own = [base + (ns * 2) % 99, base + (ns * 2 + 1) % 99, base + 99];
            TierInfo {
                name: format!("tier-{t}"),
                ingress_policies: own.iter().map(|i| pid(*i)).collect(),
                egress_policies: own[1..].iter().map(|i| pid(*i)).collect(),
                default_action: if t == 0 {
                    TierDefaultAction::Pass
                } else {
                    TierDefaultAction::Deny
                },
            }
        })
        .collect()
}

fn endpoint(i: usize) -> (WorkloadEndpointId, WorkloadEndpoint) {
    let ns = i % NAMESPACES;
    (
        WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: format!("ns-{ns}/pod-{i}"),
            endpoint_id: "eth0".into(),
        },
        WorkloadEndpoint {
            active: true,
            name: format!("cali{i:011}"),
            mac: Some(MacAddr([2, 0, 0, 0, (i >> 8) as u8, i as u8])),
            profile_ids: vec![
                ProfileId(format!("kns.ns-{ns}")),
                ProfileId("ksa.default".into()),
            ],
            ipv4_nets: vec![Ipv4Net::new(addr(i), 32).unwrap()],
            ipv6_nets: vec![],
            tiers: tiers_for(ns),
            ipv4_nat: vec![],
            ipv6_nat: vec![],
            allow_spoofed_source_prefixes: vec![],
            annotations: BTreeMap::new(),
            invalid: None,
        },
    )
}

fn model() -> Model {
    let mut m = Model::default();
    for s in 0..SETS {
        let members = (0..MEMBERS_PER_SET).map(|k| {
            // Neighbouring sets overlap by half, so the derived intersections are not empty.
            let a = (s * MEMBERS_PER_SET / 2 + k) % 60_000;
            if s >= SETS - PORT_SETS {
                IpSetMember::IpPort {
                    addr: IpAddr::V4(addr(a)),
                    proto: 6,
                    port: 8080 + (k % 3) as u16,
                }
            } else {
                IpSetMember::Net(host(a))
            }
        });
        let kind = if s >= SETS - PORT_SETS {
            IpSetKind::IpAndPort
        } else {
            IpSetKind::Ip
        };
        m.ipsets.insert(
            set_id(s),
            IpSet {
                kind,
                members: members.collect(),
            },
        );
    }
    for i in 0..TIERS * POLICIES_PER_TIER {
        m.policies.insert(pid(i), policy(i));
    }
    for ns in 0..NAMESPACES {
        m.profiles.insert(
            ProfileId(format!("kns.ns-{ns}")),
            Profile {
                inbound_rules: vec![Rule::match_all(Action::Allow)],
                outbound_rules: vec![Rule::match_all(Action::Allow)],
                invalid: None,
            },
        );
    }
    m.profiles
        .insert(ProfileId("ksa.default".into()), Profile::default());
    for i in 0..ENDPOINTS {
        let (id, ep) = endpoint(i);
        m.workload_endpoints.insert(id, ep);
    }
    m
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn per_op(total: Duration, n: u32) -> String {
    format!("{:.1} µs", total.as_secs_f64() * 1e6 / f64::from(n))
}

fn main() {
    let m = model();
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let c = compile(&m);
            let d = t.elapsed();
            std::hint::black_box(c);
            d
        })
        .collect();
    let c = compile(&m);
    let members: usize = c.desired.ipsets.values().map(|s| s.members.len()).sum();
    println!(
        "model: {ENDPOINTS} endpoints, {} policies in {TIERS} tiers, {SETS} IP sets, {} members",
        m.policies.len(),
        m.ipsets.values().map(|s| s.members.len()).sum::<usize>()
    );
    println!(
        "full compile: median {:.1} ms (of 5; min {:.1} ms)",
        median(runs.clone()).as_secs_f64() * 1e3,
        runs.iter().min().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "objects: {} ipsets ({} derived) with {members} members, {} rules, {} policies, {} interfaces",
        c.desired.ipsets.len(),
        c.desired.ipsets.keys().filter(|k| k.0.starts_with("d:")).count(),
        c.desired.rules.len(),
        c.desired.policies.len(),
        c.desired.interfaces.len()
    );

    let mut compiler = Compiler::new(&m);
    let mut model = m.clone();

    // One pod joins and leaves an IP set (member delta), alternating.
    let id = set_id(3);
    let member = IpSetMember::Net(host(59_999));
    let n = 1000;
    let t = Instant::now();
    let mut changed = 0;
    for k in 0..n {
        let mut ch = ChangeSet::default();
        ch.ipsets.insert(id.clone());
        let set = model.ipsets.get_mut(&id).unwrap();
        let delta = [member].into_iter().collect();
        if k % 2 == 0 {
            set.members.insert(member);
            ch.ipset_members
                .insert(id.clone(), (delta, Default::default()));
        } else {
            set.members.remove(&member);
            ch.ipset_members
                .insert(id.clone(), (Default::default(), delta));
        }
        changed += compiler.update(&model, &ch).len();
    }
    println!("incremental, IP set member add/remove (set used by derived sets too): {} per update, {} changes per update",
        per_op(t.elapsed(), n), changed / n as usize);

    // A new pod in an existing namespace, then removed.
    let (pod_id, pod) = endpoint(ENDPOINTS + 1);
    let t = Instant::now();
    let mut changed = 0;
    for k in 0..n {
        let mut ch = ChangeSet::default();
        ch.workload_endpoints.insert(pod_id.clone());
        if k % 2 == 0 {
            model.workload_endpoints.insert(pod_id.clone(), pod.clone());
        } else {
            model.workload_endpoints.remove(&pod_id);
        }
        changed += compiler.update(&model, &ch).len();
    }
    println!(
        "incremental, pod added/removed: {} per update, {} changes per update",
        per_op(t.elapsed(), n),
        changed / n as usize
    );

    // One policy's rules change (used by the tier policies of one namespace).
    let p = pid(2 * POLICIES_PER_TIER + 10);
    let original = model.policies[&p].clone();
    let mut edited = original.clone();
    edited.inbound_rules[0].dst_ports.push(PortRange {
        first: 9090,
        last: 9090,
    });
    let n = 200;
    let t = Instant::now();
    let mut changed = 0;
    for k in 0..n {
        let mut ch = ChangeSet::default();
        ch.policies.insert(p.clone());
        model.policies.insert(
            p.clone(),
            if k % 2 == 0 {
                edited.clone()
            } else {
                original.clone()
            },
        );
        changed += compiler.update(&model, &ch).len();
    }
    println!(
        "incremental, one policy edited: {} per update, {} changes per update",
        per_op(t.elapsed(), n),
        changed / n as usize
    );
    assert_eq!(
        compiler.desired(),
        &compile(&model).desired,
        "incremental result equals a full compile"
    );
    big_set_member_deltas();
}

/// A member delta on a 100,000-member set that only one rule uses (no derived set): the
/// delta passes through the compiler without copying or comparing the set.
fn big_set_member_deltas() {
    const BIG: usize = 100_000;
    let mut m = Model::default();
    let big = IpSetId("s:big".into());
    m.ipsets.insert(
        big.clone(),
        IpSet {
            kind: IpSetKind::Ip,
            members: (0..BIG)
                .map(|k| IpSetMember::Net(host_wide(k as u32)))
                .collect(),
        },
    );
    let mut allow = Rule::match_all(Action::Allow);
    allow.src_ip_set_ids = vec![big.clone()];
    let p = pid(0);
    m.policies.insert(
        p.clone(),
        Policy {
            tier: "tier-0".into(),
            inbound_rules: vec![allow],
            ..Policy::default()
        },
    );
    let (id, mut ep) = endpoint(0);
    ep.tiers = vec![TierInfo {
        name: "tier-0".into(),
        ingress_policies: vec![p],
        egress_policies: vec![],
        default_action: TierDefaultAction::Deny,
    }];
    m.workload_endpoints.insert(id, ep);
    let mut compiler = Compiler::new(&m);
    let member = IpSetMember::Net(host_wide(BIG as u32 + 7));
    let n = 1000;
    let t = Instant::now();
    let mut changed = 0;
    for k in 0..n {
        let mut ch = ChangeSet::default();
        ch.ipsets.insert(big.clone());
        let set = m.ipsets.get_mut(&big).unwrap();
        let delta = [member].into_iter().collect();
        if k % 2 == 0 {
            set.members.insert(member);
            ch.ipset_members
                .insert(big.clone(), (delta, Default::default()));
        } else {
            set.members.remove(&member);
            ch.ipset_members
                .insert(big.clone(), (Default::default(), delta));
        }
        changed += compiler.update(&m, &ch).len();
    }
    println!(
        "incremental, member add/remove on a {BIG}-member set (no derived set): {} per update, {} changes per update",
        per_op(t.elapsed(), n),
        changed / n as usize
    );
    assert_eq!(compiler.desired(), &compile(&m).desired);
}

/// Distinct /32 host routes for any index (10.0.0.0/8).
fn host_wide(k: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (k & 0x00ff_ffff)), 32).unwrap())
}
