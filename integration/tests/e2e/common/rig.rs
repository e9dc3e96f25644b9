//! A VPP simulator with one tagged, up tap (or TUN) per pod, a state directory, and the checks that
//! hold the simulator to the compiler: structural equality of everything programmed (ids
//! resolved to content, so nothing trusts the driver's own record) and verdict equality with
//! Calico's reference evaluation.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_compile::{
    compile, reference, AclAction, AclFamily, CalicoDirection, DesiredState, InterfaceKey,
};
use calico_model::{Model, WorkloadEndpointId};
use calico_vpp_driver::felix::script;
use calico_vpp_driver::reconcile::{PersistedState, StateStore};
use npol::{Direction, EntryData, Packet, Verdict};
use vpp_sim::{SimState, Simulator};

use super::driver::Driver;

/// A simulator on a socket in a temporary directory, and the driver's state directory.
pub struct Rig {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    // Last: the simulator's tasks run here, so it must outlive `sim`.
    pub rt: tokio::runtime::Runtime,
}

impl Rig {
    pub fn new() -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sim = rt
            .block_on(Simulator::start(dir.path().join("api.sock")))
            .unwrap();
        Rig { sim, dir, rt }
    }

    pub fn socket(&self) -> &Path {
        self.sim.socket_path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The driver as Felix starts it, programming this simulator.
    pub fn driver(&self) -> Driver {
        self.driver_with(&[])
    }

    /// [`Rig::driver`] with more settings (admin socket, metrics port, ...).
    pub fn driver_with(&self, extra: &[(&str, &str)]) -> Driver {
        let sock = self.socket().to_str().unwrap().to_string();
        let state = self.state_dir().to_str().unwrap().to_string();
        let mut env = vec![
            ("CALICO_VPP_DATAPLANE", "vpp"),
            ("CALICO_VPP_API_SOCKET", sock.as_str()),
            ("CALICO_VPP_STATE_DIR", state.as_str()),
        ];
        env.extend_from_slice(extra);
        Driver::spawn(&env)
    }

    /// An up Ethernet tap tagged `tag` for each of `tags` (what a CNI plugin would make).
    pub fn add_tagged_taps<'a>(&self, tags: impl IntoIterator<Item = &'a str>) {
        for tag in tags {
            self.sim.with_state_mut(|s| {
                let idx = s.create_tap(u32::MAX, None, None, tag).unwrap();
                s.set_flags(idx, true);
                s.set_link(idx, true);
            });
        }
    }

    /// Creates an up Ethernet tap tagged with pod `i`'s interface name (what the CNI side
    /// does).
    pub fn add_pod_tap(&self, i: usize) -> u32 {
        self.add_pod_interface(i, false)
    }

    /// Creates an up TUN tap (point-to-point, Calico/VPP's CNI default) for pod `i`.
    pub fn add_pod_tun(&self, i: usize) -> u32 {
        self.add_pod_interface(i, true)
    }

    fn add_pod_interface(&self, i: usize, tun: bool) -> u32 {
        let tag = script::pod_iface(i);
        self.sim.with_state_mut(|s| {
            let idx = if tun {
                s.create_tun(u32::MAX, None, &tag)
            } else {
                s.create_tap(u32::MAX, None, None, &tag)
            }
            .unwrap();
            s.set_flags(idx, true);
            s.set_link(idx, true);
            idx
        })
    }

    pub fn add_pod_taps(&self, pods: usize) -> Vec<u32> {
        (0..pods).map(|i| self.add_pod_tap(i)).collect()
    }

    pub fn add_pod_tuns(&self, pods: usize) -> Vec<u32> {
        (0..pods).map(|i| self.add_pod_tun(i)).collect()
    }

    /// The reconciler's state file, if written.
    pub fn persisted(&self) -> Option<PersistedState> {
        persisted(&self.state_dir())
    }
}

/// The reconciler's state file in `state_dir`, if written.
pub fn persisted(state_dir: &Path) -> Option<PersistedState> {
    StateStore::in_dir(state_dir).load().unwrap()
}

/// The sw_if_index whose tag is `tag`.
pub fn by_tag(s: &SimState, tag: &str) -> Option<u32> {
    s.interfaces
        .iter()
        .find(|(_, i)| i.tag == tag)
        .map(|(idx, _)| idx)
}

/// An ipset by content; `None` for a dangling reference.
type RSet = Option<npol::IpSet>;
type RRule = Option<npol::Rule<RSet>>;
type RPolicy = Option<npol::Policy<RRule>>;

fn map_rule<S, T>(r: &npol::Rule<S>, f: &impl Fn(&S) -> T) -> npol::Rule<T> {
    npol::Rule {
        action: r.action,
        filters: r.filters,
        entries: r
            .entries
            .iter()
            .map(|e| npol::Entry {
                is_src: e.is_src,
                is_not: e.is_not,
                data: match &e.data {
                    EntryData::Cidr(c) => EntryData::Cidr(*c),
                    EntryData::PortRange { start, end } => EntryData::PortRange {
                        start: *start,
                        end: *end,
                    },
                    EntryData::PortIpSet(s) => EntryData::PortIpSet(f(s)),
                    EntryData::IpSet(s) => EntryData::IpSet(f(s)),
                },
            })
            .collect(),
    }
}

fn map_policy<R, T>(p: &npol::Policy<R>, f: &impl Fn(&R) -> T) -> npol::Policy<T> {
    npol::Policy {
        inbound: p.inbound.iter().map(f).collect(),
        outbound: p.outbound.iter().map(f).collect(),
    }
}

fn map_config<P, T>(
    c: &npol::InterfaceConfig<P>,
    f: &impl Fn(&P) -> T,
) -> npol::InterfaceConfig<T> {
    npol::InterfaceConfig {
        rx_policies: c.rx_policies.iter().map(f).collect(),
        tx_policies: c.tx_policies.iter().map(f).collect(),
        profiles: c.profiles.iter().map(f).collect(),
        invert_rx_tx: c.invert_rx_tx,
        policy_default_rx: c.policy_default_rx,
        policy_default_tx: c.policy_default_tx,
        profile_default_rx: c.profile_default_rx,
        profile_default_tx: c.profile_default_tx,
    }
}

/// An ACL by content: (permit, v6, proto, ranges) per rule.
type RAcl = Option<(String, Vec<(bool, bool, u8, (u16, u16), (u16, u16))>)>;

fn desired_config(
    d: &DesiredState,
    c: &npol::InterfaceConfig<calico_compile::PolicyKey>,
) -> npol::InterfaceConfig<RPolicy> {
    let set = |k: &calico_compile::IpSetKey| d.ipsets.get(k).map(|s| (**s).clone());
    let rule = |k: &calico_compile::RuleKey| d.rules.get(k).map(|r| map_rule(r, &set));
    let policy = |k: &calico_compile::PolicyKey| d.policies.get(k).map(|p| map_policy(p, &rule));
    map_config(c, &policy)
}

fn sim_config(s: &SimState, c: &npol::InterfaceConfig<u32>) -> npol::InterfaceConfig<RPolicy> {
    let set = |k: &u32| s.npol.ipsets.get(*k).cloned();
    let rule = |k: &u32| s.npol.rules.get(*k).map(|r| map_rule(r, &set));
    let policy = |k: &u32| s.npol.policies.get(*k).map(|p| map_policy(p, &rule));
    map_config(c, &policy)
}

fn desired_acl(d: &DesiredState, k: &calico_compile::AclKey) -> RAcl {
    d.acls.get(k).map(|a| {
        (
            a.tag.clone(),
            a.rules
                .iter()
                .map(|r| {
                    (
                        r.action == AclAction::Permit,
                        r.family == AclFamily::V6,
                        r.proto,
                        r.sport_or_icmp_type,
                        r.dport_or_icmp_code,
                    )
                })
                .collect(),
        )
    })
}

fn sim_acls(s: &SimState, list: Option<&Vec<u32>>) -> Vec<RAcl> {
    list.into_iter()
        .flatten()
        .map(|id| {
            s.acl.acls.get(*id).map(|a| {
                (
                    a.tag.clone(),
                    a.rules
                        .iter()
                        .map(|r| {
                            (
                                r.action != 0,
                                r.src.addr().is_ipv6(),
                                r.proto,
                                r.sport_or_type,
                                r.dport_or_code,
                            )
                        })
                        .collect(),
                )
            })
        })
        .collect()
}

/// Whether the simulator holds exactly what `desired` asks for: every bound interface's
/// npol configuration resolved through ids to content equals the desired one resolved
/// through keys, its guard ACLs, cnat and static neighbours are there (none are needed, or
/// checked, on a point-to-point interface), and VPP holds no npol object or ACL more than
/// the desired state has. `Err` says what differs.
pub fn sim_matches(s: &SimState, desired: &DesiredState) -> Result<(), String> {
    let mut bound = 0;
    for (key, want) in &desired.interfaces {
        let Some(idx) = by_tag(s, &want.interface_name) else {
            continue;
        };
        bound += 1;
        let Some(cfg) = s.npol.interfaces.get(&idx) else {
            return Err(format!("{key}: no npol configuration on sw_if_index {idx}"));
        };
        let got = sim_config(s, cfg);
        let exp = desired_config(desired, &want.config);
        if got != exp {
            return Err(format!(
                "{key}: npol configuration differs\n  vpp:     {got:?}\n  desired: {exp:?}"
            ));
        }
        if !s.interface(idx).is_some_and(|i| i.cnat) {
            return Err(format!("{key}: cnat not enabled on {idx}"));
        }
        let p2p = s.interface(idx).is_some_and(|i| i.kind.is_p2p());
        for (ip, mac) in want.neighbours.iter().filter(|_| !p2p) {
            match s.neighbors.get(&(idx, *ip)) {
                Some(n) if n.mac_bytes == mac.0 => {}
                other => return Err(format!("{key}: neighbour {ip} is {other:?}, want {mac}")),
            }
        }
        let acl_in = sim_acls(s, s.acl.input.get(&idx));
        let acl_out = sim_acls(s, s.acl.output.get(&idx));
        let want_in = vec![desired_acl(desired, &want.guard.input)];
        let want_out = vec![desired_acl(desired, &want.guard.output)];
        if acl_in != want_in || acl_out != want_out {
            return Err(format!(
                "{key}: guard ACLs differ: input {acl_in:?} output {acl_out:?}, want {want_in:?} {want_out:?}"
            ));
        }
    }
    // Every object by content, referenced or not (a multiset: ids and keys left out).
    fn sorted<T: std::fmt::Debug>(it: impl Iterator<Item = T>) -> Vec<String> {
        let mut v: Vec<String> = it.map(|x| format!("{x:?}")).collect();
        v.sort();
        v
    }
    let dset = |k: &calico_compile::IpSetKey| desired.ipsets.get(k).cloned();
    let sset = |k: &u32| s.npol.ipsets.get(*k).cloned();
    let drule = |k: &calico_compile::RuleKey| desired.rules.get(k).map(|r| map_rule(r, &dset));
    let srule = |k: &u32| s.npol.rules.get(*k).map(|r| map_rule(r, &sset));
    let pairs = [
        (
            "ipsets",
            sorted(s.npol.ipsets.iter().map(|(_, v)| v)),
            sorted(desired.ipsets.values()),
        ),
        (
            "rules",
            sorted(s.npol.rules.iter().map(|(_, r)| map_rule(r, &sset))),
            sorted(desired.rules.values().map(|r| map_rule(r, &dset))),
        ),
        (
            "policies",
            sorted(s.npol.policies.iter().map(|(_, p)| map_policy(p, &srule))),
            sorted(desired.policies.values().map(|p| map_policy(p, &drule))),
        ),
    ];
    for (what, got, want) in pairs {
        if got != want {
            let short = |x: &String| x.chars().take(300).collect::<String>();
            let missing: Vec<_> = want
                .iter()
                .filter(|w| !got.contains(w))
                .take(2)
                .map(short)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|g| !want.contains(g))
                .take(2)
                .map(short)
                .collect();
            return Err(format!(
                "{what} differ by content: VPP {} vs desired {}; missing {missing:?}, extra {extra:?}",
                got.len(),
                want.len()
            ));
        }
    }
    let counts = [
        ("ipsets", s.npol.ipsets.len(), desired.ipsets.len()),
        ("rules", s.npol.rules.len(), desired.rules.len()),
        ("policies", s.npol.policies.len(), desired.policies.len()),
        ("acls", s.acl.acls.len(), desired.acls.len()),
        ("configured interfaces", s.npol.interfaces.len(), bound),
    ];
    for (what, got, want) in counts {
        if got != want {
            return Err(format!("VPP holds {got} {what}, desired {want}"));
        }
    }
    Ok(())
}

/// Felix's endpoint id of pod `i` in the scripted cluster.
pub fn pod_id(i: usize, namespaces: usize) -> WorkloadEndpointId {
    let p = script::workload_id(i, namespaces);
    WorkloadEndpointId {
        orchestrator_id: p.orchestrator_id,
        workload_id: p.workload_id,
        endpoint_id: p.endpoint_id,
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Sample TCP and UDP packets for pod `i`'s ingress (to it) and egress (from it): peers in
/// its namespace, in other namespaces, outside the pool; named port, open and closed ports.
pub fn sample_packets(model: &Model, i: usize, dir: CalicoDirection) -> Vec<Packet> {
    let me = ip(&script::pod_ip(i));
    let mut peers: Vec<IpAddr> = model
        .workload_endpoints
        .values()
        .filter_map(|ep| ep.ipv4_nets.first().map(|n| IpAddr::V4(n.addr())))
        .filter(|a| *a != me)
        .take(6)
        .collect();
    peers.extend([
        ip("10.66.0.1"),
        ip("10.66.0.7"),
        ip("8.8.8.8"),
        ip("192.168.0.1"),
    ]);
    let mut out = Vec::new();
    for peer in peers {
        for dport in [22u16, 80, 1000, 2000, 8080, 8443] {
            for proto in [6u8, 17] {
                out.push(match dir {
                    CalicoDirection::Ingress => Packet::l4(proto, peer, 40000, me, dport),
                    CalicoDirection::Egress => Packet::l4(proto, me, 40000, peer, dport),
                });
            }
        }
    }
    out
}

/// For every pod of the model that has a tap, every direction and sample packet: the
/// simulator's verdict on the tap equals Calico's reference verdict. Returns how many
/// (packet, direction, pod) triples were checked and how many of them were allowed.
pub fn verdicts_match_reference(sim: &Simulator, model: &Model) -> (usize, usize) {
    let desired = compile(model).desired;
    let (mut checked, mut allowed) = (0, 0);
    for (id, ep) in &model.workload_endpoints {
        let Some(idx) = sim.with_state(|s| by_tag(s, &ep.name)) else {
            continue;
        };
        let i: usize = id
            .workload_id
            .rsplit("pod-")
            .next()
            .and_then(|n| n.parse().ok())
            .expect("scripted pod id");
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            let vdir = match dir {
                CalicoDirection::Ingress => Direction::Tx,
                CalicoDirection::Egress => Direction::Rx,
            };
            for pkt in sample_packets(model, i, dir) {
                let want = reference::evaluate(model, id, dir, &pkt);
                let got = sim.evaluate(idx, vdir, &pkt);
                let compiled = calico_compile::evaluate_compiled(
                    &desired,
                    &InterfaceKey(ep.name.clone()),
                    dir,
                    &pkt,
                )
                .map(|e| e.verdict);
                assert_eq!(
                    got, want.verdict,
                    "{} {dir:?} {pkt:?}: VPP says {got:?}, Calico says {:?} ({:?}); compiled {compiled:?}",
                    id.workload_id, want.verdict, want.decided_by
                );
                checked += 1;
                if got == Verdict::Allow {
                    allowed += 1;
                }
            }
        }
    }
    (checked, allowed)
}

/// Every id the state file maps a key to, for "nothing was recreated" checks.
pub fn ids_of(p: &PersistedState) -> BTreeSet<String> {
    let r = &p.realized;
    let mut out = BTreeSet::new();
    out.extend(r.ipsets.iter().map(|(k, v)| format!("ipset {k}={}", v.id)));
    out.extend(
        r.kinds
            .rules
            .iter()
            .map(|(k, v)| format!("rule {k}={}", v.id)),
    );
    out.extend(
        r.kinds
            .policies
            .iter()
            .map(|(k, v)| format!("policy {k}={}", v.id)),
    );
    out.extend(
        r.kinds
            .acls
            .iter()
            .map(|(k, v)| format!("acl {k}={}", v.id)),
    );
    out.extend(
        r.interfaces
            .iter()
            .map(|(k, v)| format!("interface {k}={}", v.sw_if_index)),
    );
    out
}

/// Operations that hand a real VPP back as it was before a driver ran against it: each of
/// `interfaces` opened (npol allow-all, no ACLs, cnat off), then every object the driver's
/// state file in `state_dir` lists deleted, users before what they use.
pub fn release_ops(
    interfaces: impl IntoIterator<Item = calico_vpp_driver::dataplane::SwIfIndex>,
    state_dir: &Path,
) -> Vec<calico_vpp_driver::dataplane::Op> {
    use calico_vpp_driver::dataplane::Op;
    let mut ops = Vec::new();
    for sw_if_index in interfaces {
        ops.push(Op::ConfigurePolicies {
            sw_if_index,
            config: npol::InterfaceConfig {
                rx_policies: vec![],
                tx_policies: vec![],
                profiles: vec![],
                invert_rx_tx: false,
                policy_default_rx: npol::PolicyDefault::Allow,
                policy_default_tx: npol::PolicyDefault::Allow,
                profile_default_rx: npol::PolicyDefault::Allow,
                profile_default_tx: npol::PolicyDefault::Allow,
            },
        });
        ops.push(Op::AclInterfaceSet {
            sw_if_index,
            input: vec![],
            output: vec![],
        });
        ops.push(Op::CnatFeature {
            sw_if_index,
            enable: false,
        });
    }
    if let Some(p) = persisted(state_dir) {
        let r = &p.realized;
        let orphans = &r.orphans;
        ops.extend(
            r.kinds
                .policies
                .values()
                .map(|v| Op::PolicyDelete { id: v.id }),
        );
        ops.extend(r.kinds.rules.values().map(|v| Op::RuleDelete { id: v.id }));
        ops.extend(
            r.ipsets
                .values()
                .map(|v| v.id)
                .chain(orphans.ipsets.iter().copied())
                .map(|set| Op::IpSetDelete { set }),
        );
        ops.extend(r.kinds.acls.values().map(|v| Op::AclDelete { index: v.id }));
    }
    ops
}
