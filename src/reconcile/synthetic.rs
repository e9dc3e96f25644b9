//! Synthetic desired states of a chosen size, for benchmarks and end-to-end tests of the
//! reconciler without going through Felix and the compiler.
//!
//! The shape is a plausible cluster: endpoints spread over namespaces (ten per namespace),
//! each namespace selected by its policies, each policy with one rule per direction over its
//! own IP set. Never used by the driver itself.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use calico_compile::{DesiredInterface, DesiredState, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
use calico_model::MacAddr;

/// Endpoints per namespace.
pub const ENDPOINTS_PER_NAMESPACE: usize = 10;

/// The interface name (and VPP tag) of endpoint `j`.
pub fn interface_name(j: usize) -> String {
    format!("cali{j:08x}")
}

/// The address of endpoint `j` (10.0.0.0/8).
pub fn endpoint_address(j: usize) -> IpAddr {
    let j = j as u32 + 1;
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (j & 0x00ff_ffff)))
}

fn endpoint_mac(j: usize) -> MacAddr {
    let b = (j as u32).to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

fn namespaces(endpoints: usize) -> usize {
    endpoints.div_ceil(ENDPOINTS_PER_NAMESPACE).max(1)
}

/// The policy keys namespace `ns` uses.
fn namespace_policies(ns: usize, policies: usize, nss: usize) -> Vec<PolicyKey> {
    (0..policies)
        .filter(|p| p % nss == ns)
        .map(|p| PolicyKey(format!("pol-{p}")))
        .collect()
}

/// The set a pod of namespace `ns` joins (the first set its namespace's policies use).
fn namespace_set(ns: usize, policies: usize) -> Option<IpSetKey> {
    (ns < policies).then(|| IpSetKey(format!("set-{ns}")))
}

/// `endpoints` endpoints, `policies` policies (two rules each), `members` IP set members
/// spread over one set per policy, plus one small named-port (IP_AND_PORT) set.
pub fn synthetic(endpoints: usize, policies: usize, members: usize) -> DesiredState {
    let mut d = DesiredState::default();
    d.acls.extend(calico_compile::guard::guard_acls());
    let per_set = members.checked_div(policies).unwrap_or(0);
    let mut named = npol::IpSet::new(npol::IpSetType::IpAndPort);
    for k in 0..8u16 {
        named.members.insert(npol::IpSetMember::IpAndPort {
            addr: endpoint_address(k as usize),
            proto: 6,
            port: 8080 + k,
        });
    }
    d.ipsets
        .insert(IpSetKey("named-port".into()), Arc::new(named));
    for p in 0..policies {
        let mut set = npol::IpSet::new(npol::IpSetType::Ip);
        for m in 0..per_set {
            let n = (p * per_set + m) as u32;
            set.members
                .insert(npol::IpSetMember::Ip(IpAddr::V4(Ipv4Addr::from(
                    0xac10_0000u32.wrapping_add(n),
                ))));
        }
        let set_key = IpSetKey(format!("set-{p}"));
        d.ipsets.insert(set_key.clone(), Arc::new(set));
        let entry = |is_src, data| npol::Entry {
            is_src,
            is_not: false,
            data,
        };
        let inbound = RuleKey(format!("rule-{p}-in"));
        let outbound = RuleKey(format!("rule-{p}-out"));
        d.rules.insert(
            inbound.clone(),
            npol::Rule {
                action: npol::RuleAction::Allow,
                filters: [npol::Filter::NONE; 3],
                entries: vec![
                    entry(true, npol::EntryData::IpSet(set_key.clone())),
                    entry(false, npol::EntryData::PortRange { start: 80, end: 80 }),
                ],
            },
        );
        d.rules.insert(
            outbound.clone(),
            npol::Rule {
                action: npol::RuleAction::Allow,
                filters: [npol::Filter::NONE; 3],
                entries: vec![
                    entry(false, npol::EntryData::IpSet(set_key)),
                    entry(
                        false,
                        npol::EntryData::PortIpSet(IpSetKey("named-port".into())),
                    ),
                ],
            },
        );
        d.policies.insert(
            PolicyKey(format!("pol-{p}")),
            npol::Policy {
                inbound: vec![inbound],
                outbound: vec![outbound],
            },
        );
    }
    let nss = namespaces(endpoints);
    for j in 0..endpoints {
        insert_endpoint(&mut d, j, policies, nss);
    }
    d
}

fn insert_endpoint(d: &mut DesiredState, j: usize, policies: usize, nss: usize) {
    let ns = j / ENDPOINTS_PER_NAMESPACE % nss;
    let pols = namespace_policies(ns, policies, nss);
    let name = interface_name(j);
    d.interfaces.insert(
        InterfaceKey(name.clone()),
        DesiredInterface {
            endpoint: calico_model::EndpointId::workload("k8s", &format!("ns{ns}/pod{j}"), "eth0"),
            interface_name: name,
            neighbours: vec![(endpoint_address(j), endpoint_mac(j))],
            config: npol::InterfaceConfig {
                rx_policies: pols.clone(),
                tx_policies: pols,
                profiles: Vec::new(),
                invert_rx_tx: false,
                policy_default_rx: npol::PolicyDefault::Deny,
                policy_default_tx: npol::PolicyDefault::Deny,
                profile_default_rx: npol::PolicyDefault::Deny,
                profile_default_tx: npol::PolicyDefault::Deny,
            },
            guard: calico_compile::InterfaceGuard::workload(),
        },
    );
}

/// What a new pod in an existing namespace changes: its endpoint, and its address joins its
/// namespace's set. `j` must be a new index (`>= endpoints` of the original state) whose
/// namespace already exists (`existing_endpoints` sizes the namespace count).
pub fn add_pod(d: &mut DesiredState, j: usize, existing_endpoints: usize, policies: usize) {
    let nss = namespaces(existing_endpoints);
    let ns = j / ENDPOINTS_PER_NAMESPACE % nss;
    if let Some(set) = namespace_set(ns, policies).and_then(|k| d.ipsets.get_mut(&k)) {
        Arc::make_mut(set)
            .members
            .insert(npol::IpSetMember::Ip(endpoint_address(j)));
    }
    insert_endpoint(d, j, policies, nss);
}
