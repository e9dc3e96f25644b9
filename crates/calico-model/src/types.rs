//! Model value types. Conversion from protobuf lives in the driver crate (`src/felix/convert.rs`);
//! these types never see a protobuf type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Ids

/// Felix's opaque IP set id (e.g. `s:abc…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpSetId(pub String);

/// `ProfileID.name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProfileId(pub String);

/// `PolicyID`: name, namespace (empty for global) and kind (e.g. `NetworkPolicy`,
/// `GlobalNetworkPolicy`, `StagedNetworkPolicy`, ...; may be empty from older Felix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyId {
    pub name: String,
    pub namespace: String,
    pub kind: String,
}

/// `WorkloadEndpointID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadEndpointId {
    pub orchestrator_id: String,
    pub workload_id: String,
    pub endpoint_id: String,
}

/// `HostEndpointID.endpoint_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostEndpointId(pub String);

/// A Felix endpoint: a workload's or a host's. Carried, typed, from the compiler through
/// the reconciler to the status Felix hears.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum EndpointId {
    Workload(WorkloadEndpointId),
    Host(HostEndpointId),
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointId::Workload(id) => id.fmt(f),
            EndpointId::Host(id) => id.fmt(f),
        }
    }
}

impl EndpointId {
    /// A workload endpoint by its three parts (`k8s`, `ns/pod`, `eth0`).
    pub fn workload(orchestrator: &str, workload: &str, endpoint: &str) -> Self {
        EndpointId::Workload(WorkloadEndpointId {
            orchestrator_id: orchestrator.into(),
            workload_id: workload.into(),
            endpoint_id: endpoint.into(),
        })
    }
}

impl From<WorkloadEndpointId> for EndpointId {
    fn from(id: WorkloadEndpointId) -> Self {
        EndpointId::Workload(id)
    }
}

impl From<HostEndpointId> for EndpointId {
    fn from(id: HostEndpointId) -> Self {
        EndpointId::Host(id)
    }
}

/// Reads the tagged form this type serialises to, and the plain string state files written
/// before it existed held (a workload's `orchestrator/workload/endpoint`, where the
/// workload part may hold slashes, or a host endpoint's id, which holds none).
impl<'de> Deserialize<'de> for EndpointId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        enum Tagged {
            Workload(WorkloadEndpointId),
            Host(HostEndpointId),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Tagged(Tagged),
            Legacy(String),
        }
        Ok(match Either::deserialize(d)? {
            Either::Tagged(Tagged::Workload(id)) => EndpointId::Workload(id),
            Either::Tagged(Tagged::Host(id)) => EndpointId::Host(id),
            Either::Legacy(s) => match (s.split_once('/'), s.rsplit_once('/')) {
                (Some((orchestrator, _)), Some((rest, endpoint))) if rest.contains('/') => {
                    EndpointId::Workload(WorkloadEndpointId {
                        orchestrator_id: orchestrator.to_string(),
                        workload_id: rest[orchestrator.len() + 1..].to_string(),
                        endpoint_id: endpoint.to_string(),
                    })
                }
                _ => EndpointId::Host(HostEndpointId(s)),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NamespaceId(pub String);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceAccountId {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceId {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for IpSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}
impl fmt::Display for WorkloadEndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.orchestrator_id, self.workload_id, self.endpoint_id
        )
    }
}
impl fmt::Display for HostEndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// IP sets

/// Felix's `IPSetUpdate.IPSetType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpSetKind {
    /// Members are host addresses (sent as `/32` or `/128` CIDRs or bare addresses).
    Ip,
    /// Members are `ip,proto:port` (named ports, service matches).
    IpAndPort,
    /// Members are CIDRs.
    Net,
}

/// One member. v4 and v6 members can share a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpSetMember {
    /// A CIDR (a host address is a /32 or /128).
    Net(IpNet),
    /// `ip,proto:port`; `proto` is the IP protocol number (6 tcp, 17 udp, 132 sctp).
    IpPort { addr: IpAddr, proto: u8, port: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSet {
    pub kind: IpSetKind,
    pub members: BTreeSet<IpSetMember>,
}

// ---------------------------------------------------------------------------------------------
// Rules, policies, profiles

/// A rule's action as Felix sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
    /// Logs and continues with the next rule; carries no verdict.
    Log,
    /// `next-tier` (Calico's `Pass`).
    Pass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpVersion {
    V4,
    V6,
}

/// An inclusive L4 port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// ICMP type, optionally with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IcmpMatch {
    pub icmp_type: u8,
    pub code: Option<u8>,
}

/// One Calico rule, every match field typed. Empty lists and `None` mean "not set".
/// Protocols are IP protocol numbers (names are resolved at conversion).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Rule {
    pub action: Option<Action>,
    pub ip_version: Option<IpVersion>,
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,

    pub src_net: Vec<IpNet>,
    pub src_ports: Vec<PortRange>,
    pub src_named_port_ip_set_ids: Vec<IpSetId>,
    pub src_ip_set_ids: Vec<IpSetId>,

    pub dst_net: Vec<IpNet>,
    pub dst_ports: Vec<PortRange>,
    pub dst_named_port_ip_set_ids: Vec<IpSetId>,
    pub dst_ip_set_ids: Vec<IpSetId>,
    /// Destination (ip, proto, port) sets from service matches.
    pub dst_ip_port_set_ids: Vec<IpSetId>,

    pub icmp: Option<IcmpMatch>,

    pub not_src_net: Vec<IpNet>,
    pub not_src_ports: Vec<PortRange>,
    pub not_src_named_port_ip_set_ids: Vec<IpSetId>,
    pub not_src_ip_set_ids: Vec<IpSetId>,

    pub not_dst_net: Vec<IpNet>,
    pub not_dst_ports: Vec<PortRange>,
    pub not_dst_named_port_ip_set_ids: Vec<IpSetId>,
    pub not_dst_ip_set_ids: Vec<IpSetId>,

    pub not_icmp: Option<IcmpMatch>,

    /// Felix's rule id (for logs and explanations).
    pub rule_id: String,
    /// True when the rule carried an HTTP match (ignored by this dataplane, as DESIGN says).
    pub has_http_match: bool,
}

impl Rule {
    /// A rule that matches everything with the given action.
    pub fn match_all(action: Action) -> Rule {
        Rule {
            action: Some(action),
            ..Rule::default()
        }
    }
}

/// Why an object was replaced by its fail-closed form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Invalid {
    pub reason: String,
}

/// `Policy`. An invalid policy keeps its place in its tier but its rules are a single deny.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub tier: String,
    pub namespace: String,
    pub inbound_rules: Vec<Rule>,
    pub outbound_rules: Vec<Rule>,
    pub untracked: bool,
    pub pre_dnat: bool,
    pub original_selector: String,
    pub perf_hints: Vec<String>,
    pub invalid: Option<Invalid>,
}

/// `Profile`. An invalid profile becomes deny-all in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub inbound_rules: Vec<Rule>,
    pub outbound_rules: Vec<Rule>,
    pub invalid: Option<Invalid>,
}

// ---------------------------------------------------------------------------------------------
// Endpoints

/// `TierInfo.default_action`: empty means Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TierDefaultAction {
    #[default]
    Deny,
    Pass,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TierInfo {
    pub name: String,
    pub ingress_policies: Vec<PolicyId>,
    pub egress_policies: Vec<PolicyId>,
    pub default_action: TierDefaultAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NatInfo {
    pub ext_ip: IpAddr,
    pub int_ip: IpAddr,
}

/// `WorkloadEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadEndpoint {
    /// `state == "active"`; any other state drops all traffic.
    pub active: bool,
    /// Interface name (the VPP interface is found by this tag or name).
    pub name: String,
    pub mac: Option<MacAddr>,
    pub profile_ids: Vec<ProfileId>,
    pub ipv4_nets: Vec<Ipv4Net>,
    pub ipv6_nets: Vec<Ipv6Net>,
    pub tiers: Vec<TierInfo>,
    pub ipv4_nat: Vec<NatInfo>,
    pub ipv6_nat: Vec<NatInfo>,
    pub allow_spoofed_source_prefixes: Vec<IpNet>,
    pub annotations: BTreeMap<String, String>,
    /// Set when some field could not be converted: the endpoint is then treated as not active
    /// (drops everything) until a valid update arrives.
    pub invalid: Option<Invalid>,
}

/// `HostEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEndpoint {
    /// Interface name; empty or `*` for a wildcard host endpoint.
    pub name: String,
    pub profile_ids: Vec<ProfileId>,
    pub tiers: Vec<TierInfo>,
    pub untracked_tiers: Vec<TierInfo>,
    pub pre_dnat_tiers: Vec<TierInfo>,
    pub forward_tiers: Vec<TierInfo>,
    pub expected_ipv4_addrs: Vec<Ipv4Addr>,
    pub expected_ipv6_addrs: Vec<Ipv6Addr>,
    pub invalid: Option<Invalid>,
}

// ---------------------------------------------------------------------------------------------
// Routes, pools, hosts, tunnels, services

/// `RouteUpdate.types`, a bitmap of `RouteType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RouteTypes(pub u32);

impl RouteTypes {
    pub const REMOTE_WORKLOAD: u32 = 1;
    pub const REMOTE_HOST: u32 = 2;
    pub const LOCAL_WORKLOAD: u32 = 4;
    pub const LOCAL_HOST: u32 = 8;
    pub const REMOTE_TUNNEL: u32 = 16;
    pub const LOCAL_TUNNEL: u32 = 32;
    pub fn contains(&self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum IpPoolType {
    #[default]
    None,
    NoEncap,
    Vxlan,
    Ipip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TunnelType {
    pub ipip: bool,
    pub vxlan: bool,
    pub wireguard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    pub types: RouteTypes,
    pub ip_pool_type: IpPoolType,
    pub dst_node_name: String,
    pub dst_node_ip: Option<IpAddr>,
    pub same_subnet: bool,
    pub nat_outgoing: bool,
    pub local_workload: bool,
    pub tunnel_type: TunnelType,
    pub borrowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPool {
    pub cidr: IpNet,
    pub masquerade: bool,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub allowed_uses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostMetadata {
    pub ipv4_addr: Option<Ipv4Net>,
    pub ipv6_addr: Option<Ipv6Net>,
    pub asnumber: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Encapsulation {
    pub ipip_enabled: bool,
    pub vxlan_enabled: bool,
    pub vxlan_enabled_v6: bool,
    pub no_encap_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vtep {
    pub mac: Option<MacAddr>,
    pub ipv4_addr: Option<Ipv4Addr>,
    pub parent_device_ip: Option<Ipv4Addr>,
    pub mac_v6: Option<MacAddr>,
    pub ipv6_addr: Option<Ipv6Addr>,
    pub parent_device_ipv6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WireguardEndpoint {
    pub public_key: String,
    pub interface_addr: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobalBgpConfig {
    pub service_cluster_cidrs: Vec<IpNet>,
    pub service_external_cidrs: Vec<IpNet>,
    pub service_loadbalancer_cidrs: Vec<IpNet>,
    pub local_workload_peering_ip_v4: Option<Ipv4Addr>,
    pub local_workload_peering_ip_v6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// IP protocol number.
    pub protocol: u8,
    pub port: u16,
    pub node_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Service {
    pub service_type: String,
    pub cluster_ips: Vec<IpAddr>,
    pub loadbalancer_ip: Option<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub loadbalancer_ingress_ips: Vec<IpAddr>,
}

// ---------------------------------------------------------------------------------------------
// Behaviour on the value types

/// Policy kinds Felix sends for staged (audit-only) policies.
const STAGED_KINDS: [&str; 3] = [
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
];

impl PolicyId {
    /// True for a staged policy, which appears in tier lists but must never be enforced.
    /// Current Felix marks it by `kind`; older releases (empty kind) prefixed the name with
    /// `staged:` (possibly after a `namespace/` part).
    pub fn is_staged(&self) -> bool {
        if STAGED_KINDS.contains(&self.kind.as_str()) {
            return true;
        }
        let bare = self.name.rsplit('/').next().unwrap_or(&self.name);
        bare.starts_with("staged:")
    }
}

/// Why an IP set member string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad IP set member {member:?}: {reason}")]
pub struct MemberParseError {
    pub member: String,
    pub reason: &'static str,
}

/// IP protocol number of a named-port member's protocol (`tcp`, `udp`, `sctp`).
fn member_proto(name: &str) -> Option<u8> {
    if name.eq_ignore_ascii_case("tcp") {
        Some(6)
    } else if name.eq_ignore_ascii_case("udp") {
        Some(17)
    } else if name.eq_ignore_ascii_case("sctp") {
        Some(132)
    } else {
        None
    }
}

fn member_proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

impl std::str::FromStr for IpSetMember {
    type Err = MemberParseError;

    /// Felix's member syntax, whatever the set's type: `addr`, `cidr` or `addr,proto:port`.
    /// A bare address becomes a host prefix; host bits of a CIDR are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| MemberParseError {
            member: s.to_string(),
            reason,
        };
        if let Some((addr, rest)) = s.split_once(',') {
            let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
            let (proto, port) = rest.split_once(':').ok_or(err("expected proto:port"))?;
            let proto = member_proto(proto).ok_or(err("unknown protocol"))?;
            let port: u16 = port.parse().map_err(|_| err("bad port"))?;
            return Ok(IpSetMember::IpPort { addr, proto, port });
        }
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| err("bad CIDR"))?;
            return Ok(IpSetMember::Net(net.trunc()));
        }
        let addr: IpAddr = s.parse().map_err(|_| err("bad address"))?;
        Ok(IpSetMember::Net(IpNet::from(addr)))
    }
}

impl fmt::Display for IpSetMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpSetMember::Net(n) => write!(f, "{n}"),
            IpSetMember::IpPort { addr, proto, port } => match member_proto_name(*proto) {
                Some(name) => write!(f, "{addr},{name}:{port}"),
                None => write!(f, "{addr},{proto}:{port}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_policy_is_recognised_by_kind_and_legacy_name() {
        let id = |name: &str, kind: &str| PolicyId {
            name: name.into(),
            namespace: "default".into(),
            kind: kind.into(),
        };
        assert!(id("p", "StagedNetworkPolicy").is_staged());
        assert!(id("p", "StagedGlobalNetworkPolicy").is_staged());
        assert!(id("p", "StagedKubernetesNetworkPolicy").is_staged());
        assert!(id("staged:p", "").is_staged());
        assert!(id("default/staged:knp.default.p", "").is_staged());
        assert!(!id("p", "NetworkPolicy").is_staged());
        assert!(!id("knp.default.p", "").is_staged());
    }

    #[test]
    fn members_parse_in_every_felix_form() {
        let m: IpSetMember = "10.0.0.1".parse().unwrap();
        assert_eq!(m.to_string(), "10.0.0.1/32");
        let m: IpSetMember = "10.1.2.3/16".parse().unwrap();
        assert_eq!(m.to_string(), "10.1.0.0/16");
        let m: IpSetMember = "fd00::1,tcp:8080".parse().unwrap();
        assert_eq!(
            m,
            IpSetMember::IpPort {
                addr: "fd00::1".parse().unwrap(),
                proto: 6,
                port: 8080
            }
        );
        assert_eq!(m.to_string(), "fd00::1,tcp:8080");
        assert!("10.0.0.1,icmp:1".parse::<IpSetMember>().is_err());
        assert!("10.0.0.1,tcp:99999".parse::<IpSetMember>().is_err());
        assert!("nonsense".parse::<IpSetMember>().is_err());
    }

    #[test]
    fn endpoint_ids_round_trip_and_read_the_legacy_strings() {
        let wl = EndpointId::Workload(WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: "ns/pod".into(),
            endpoint_id: "eth0".into(),
        });
        let host = EndpointId::Host(HostEndpointId("node1-eth0".into()));
        for id in [&wl, &host] {
            let json = serde_json::to_string(id).unwrap();
            assert_eq!(&serde_json::from_str::<EndpointId>(&json).unwrap(), id);
            // What state files held before the type existed: its display string.
            let legacy = serde_json::to_string(&id.to_string()).unwrap();
            assert_eq!(&serde_json::from_str::<EndpointId>(&legacy).unwrap(), id);
        }
        assert_eq!(wl.to_string(), "k8s/ns/pod/eth0");
    }
}
