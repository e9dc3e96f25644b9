//! Kubernetes services on cnat: each frontend (VIP, protocol, port) is one translation whose
//! backends are the service's ready endpoints for that port.
//!
//! Frontends: every ClusterIP; external IPs and LoadBalancer ingress IPs; for NodePort and
//! LoadBalancer services, each of this node's addresses with the node port (a real-IP
//! translation: the address is the node's own). Backends: the ready endpoints of the
//! service's EndpointSlices of the frontend's family, at the slice's port of the service
//! port's name (so named target ports resolve per slice); serving-but-terminating endpoints
//! only when none is ready. `internalTrafficPolicy: Local` keeps this node's endpoints for
//! ClusterIPs, `externalTrafficPolicy: Local` for everything reached from outside. A
//! frontend left with no backend is not translated; a ClusterIP none of whose ports has a
//! backend is routed to an ICMP unreachable ([`DesiredReject`]) so that a new connection is
//! refused at once, as kube-proxy refuses it, instead of leaving by the default route or
//! timing out. A ClusterIP with some ports served cannot be: cnat's translation claims the
//! address exclusively (its FIB entry replaces any route to it) and drops the unserved
//! ports. External, load-balancer and node addresses are never rejected as a whole: they
//! may carry other traffic. Headless and ExternalName services are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use calico_model::kube::{
    KubeEndpointSlice, KubeService, KubeServicePort, KubeState, L4Proto, ServiceKey, ServiceType,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::RouteKey;

/// The annotation that selects Maglev load balancing for a service (as the Calico/VPP agent
/// names it).
pub const MAGLEV_ANNOTATION: &str = "cni.projectcalico.org/vppLBType";

/// A service frontend: written `proto/address/port` (a state-file key is a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct FrontendKey {
    pub proto: L4Proto,
    pub vip: IpAddr,
    pub port: u16,
}

impl fmt::Display for FrontendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.proto, self.vip, self.port)
    }
}

impl From<FrontendKey> for String {
    fn from(k: FrontendKey) -> String {
        k.to_string()
    }
}

impl FromStr for FrontendKey {
    type Err = crate::desired::BadKey;
    fn from_str(s: &str) -> Result<FrontendKey, Self::Err> {
        let bad = || crate::desired::BadKey(s.to_string());
        let mut parts = s.splitn(3, '/');
        let proto = match parts.next() {
            Some("tcp") => L4Proto::Tcp,
            Some("udp") => L4Proto::Udp,
            Some("sctp") => L4Proto::Sctp,
            _ => return Err(bad()),
        };
        let vip = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        Ok(FrontendKey { proto, vip, port })
    }
}

impl TryFrom<String> for FrontendKey {
    type Error = crate::desired::BadKey;
    fn try_from(s: String) -> Result<FrontendKey, Self::Error> {
        s.parse()
    }
}

/// One translation: where a frontend's new connections go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredTranslation {
    /// The frontend is this node's own address (NodePort): cnat's real-IP translation.
    pub real_ip: bool,
    /// (address, port), sorted; never empty.
    pub backends: Vec<(IpAddr, u16)>,
    pub maglev: bool,
    /// `namespace/name`, for logs.
    pub service: String,
}

/// A ClusterIP routed to an ICMP unreachable: no port of its service has a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredReject {
    /// `namespace/name`, for logs.
    pub service: String,
}

/// What the services ask of VPP: cnat translations, and ClusterIPs to reject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceObjects {
    pub translations: BTreeMap<FrontendKey, DesiredTranslation>,
    pub rejects: BTreeMap<RouteKey, DesiredReject>,
}

/// An object owned by one service (two services claiming one is logged, the first keeps it).
trait Owned {
    fn service(&self) -> &str;
}

impl Owned for DesiredTranslation {
    fn service(&self) -> &str {
        &self.service
    }
}

impl Owned for DesiredReject {
    fn service(&self) -> &str {
        &self.service
    }
}

/// Where a service stands, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNote {
    Ignored(&'static str),
    /// Frontends with no backend (not programmed).
    NoBackend(Vec<FrontendKey>),
}

/// The translations of one service, and its ClusterIPs to reject; frontends without a
/// backend are not translated (listed in the note).
pub fn service_objects(
    key: &ServiceKey,
    svc: &KubeService,
    slices: &[&KubeEndpointSlice],
    node: Option<&str>,
    node_ips: &[IpAddr],
) -> (ServiceObjects, Option<ServiceNote>) {
    let mut out = ServiceObjects::default();
    if svc.kind == ServiceType::ExternalName {
        return (out, Some(ServiceNote::Ignored("ExternalName")));
    }
    if svc.headless {
        return (out, Some(ServiceNote::Ignored("headless")));
    }
    let maglev = svc
        .annotations
        .get(MAGLEV_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("maglev"));
    let mut empty = Vec::new();
    for port in &svc.ports {
        let mut add = |vip: IpAddr, p: u16, real_ip: bool, local: bool| {
            let fk = FrontendKey {
                proto: port.protocol,
                vip,
                port: p,
            };
            let backends = backends(
                port,
                slices,
                vip.is_ipv6(),
                local.then_some(node).flatten(),
                local,
            );
            if backends.is_empty() {
                empty.push(fk);
                return;
            }
            out.translations.insert(
                fk,
                DesiredTranslation {
                    real_ip,
                    backends,
                    maglev,
                    service: key.to_string(),
                },
            );
        };
        for vip in &svc.cluster_ips {
            add(*vip, port.port, false, svc.internal_local);
        }
        for vip in svc.external_ips.iter().chain(&svc.lb_ips) {
            add(*vip, port.port, false, svc.external_local);
        }
        if matches!(svc.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
            if let Some(np) = port.node_port {
                for ip in node_ips {
                    add(*ip, np, true, svc.external_local);
                }
            }
        }
    }
    // A ClusterIP none of whose ports is served. (One with a served port keeps only cnat's
    // translation: cnat claims the address exclusively and drops its other ports.)
    for fk in &empty {
        let served = out.translations.keys().any(|t| t.vip == fk.vip);
        if svc.cluster_ips.contains(&fk.vip) && !served {
            out.rejects.insert(
                RouteKey(IpNet::from(fk.vip)),
                DesiredReject {
                    service: key.to_string(),
                },
            );
        }
    }
    let note = (!empty.is_empty()).then_some(ServiceNote::NoBackend(empty));
    (out, note)
}

/// The backends of `port` of the family `v6`: ready endpoints, else serving terminating
/// ones; with `local`, only those on `node` (none when the node is unknown).
fn backends(
    port: &KubeServicePort,
    slices: &[&KubeEndpointSlice],
    v6: bool,
    node: Option<&str>,
    local: bool,
) -> Vec<(IpAddr, u16)> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
    for s in slices {
        let Some(sp) = s
            .ports
            .iter()
            .find(|sp| sp.name == port.name && sp.protocol == port.protocol)
        else {
            continue;
        };
        for e in &s.endpoints {
            if local && (node.is_none() || e.node_name.as_deref() != node) {
                continue;
            }
            for a in e.addresses.iter().filter(|a| a.is_ipv6() == v6) {
                if e.ready {
                    ready.insert((*a, sp.port));
                } else if e.serving && e.terminating {
                    terminating.insert((*a, sp.port));
                }
            }
        }
    }
    let chosen = if ready.is_empty() { terminating } else { ready };
    chosen.into_iter().collect()
}

/// Every service's translations and rejects (an object claimed by two services goes to the
/// first by key, and the clash is logged).
pub fn desired_services(
    state: &KubeState,
    node: Option<&str>,
    node_ips: &[IpAddr],
) -> ServiceObjects {
    // The slices grouped by service once: looking them up per service would cost
    // services × slices.
    let mut by_service: BTreeMap<(&str, &str), Vec<&KubeEndpointSlice>> = BTreeMap::new();
    for (k, s) in &state.slices {
        by_service
            .entry((k.namespace.as_str(), s.service.as_str()))
            .or_default()
            .push(s);
    }
    let mut out = ServiceObjects::default();
    for (key, svc) in &state.services {
        let slices = by_service
            .get(&(key.namespace.as_str(), key.name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (mine, _) = service_objects(key, svc, slices, node, node_ips);
        merge(&mut out.translations, mine.translations);
        merge(&mut out.rejects, mine.rejects);
    }
    out
}

/// Which objects each service (`namespace/name`) holds in the desired tables, so that a
/// change of one service touches only its own.
#[derive(Debug, Clone, Default)]
pub struct ServiceIndex {
    frontends: BTreeMap<String, BTreeSet<FrontendKey>>,
    rejects: BTreeMap<String, BTreeSet<RouteKey>>,
}

impl ServiceIndex {
    pub fn of(objects: &ServiceObjects) -> ServiceIndex {
        ServiceIndex {
            frontends: index(&objects.translations),
            rejects: index(&objects.rejects),
        }
    }
}

fn index<K: Ord + Copy, V: Owned>(table: &BTreeMap<K, V>) -> BTreeMap<String, BTreeSet<K>> {
    let mut idx: BTreeMap<String, BTreeSet<K>> = BTreeMap::new();
    for (k, v) in table {
        idx.entry(v.service().to_string()).or_default().insert(*k);
    }
    idx
}

/// This node's addresses (node ports listen on them).
pub fn node_ips(model: &calico_model::Model) -> Vec<IpAddr> {
    [
        crate::routes::own_ipv4(model),
        crate::routes::own_ipv6(model),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The changes of [`update_services`], one per desired table.
#[derive(Debug, Default)]
pub struct ServiceDiff {
    pub translations: crate::KindDiff<FrontendKey, DesiredTranslation>,
    pub rejects: crate::KindDiff<RouteKey, DesiredReject>,
}

/// Recomputes the objects of `changed` services in `out`, noting the difference in `diff`.
/// Work is proportional to those services and their objects.
pub fn update_services(
    out: &mut ServiceObjects,
    index: &mut ServiceIndex,
    diff: &mut ServiceDiff,
    model: &calico_model::Model,
    changed: &BTreeSet<ServiceKey>,
) {
    let node_ips = node_ips(model);
    for key in changed {
        let name = key.to_string();
        let new = match model.kube.services.get(key) {
            Some(svc) => {
                let slices = slices_of(&model.kube, key);
                service_objects(key, svc, &slices, model.hostname(), &node_ips).0
            }
            None => ServiceObjects::default(),
        };
        replace_owned(
            &mut out.translations,
            &mut index.frontends,
            &mut diff.translations,
            &name,
            new.translations,
        );
        replace_owned(
            &mut out.rejects,
            &mut index.rejects,
            &mut diff.rejects,
            &name,
            new.rejects,
        );
    }
}

/// Replaces service `name`'s objects in `out` by `new`.
fn replace_owned<K, V>(
    out: &mut BTreeMap<K, V>,
    index: &mut BTreeMap<String, BTreeSet<K>>,
    diff: &mut crate::KindDiff<K, V>,
    name: &str,
    new: BTreeMap<K, V>,
) where
    K: Ord + Copy + fmt::Display,
    V: Owned + Clone + PartialEq,
{
    let old = index.remove(name).unwrap_or_default();
    for k in &old {
        if !new.contains_key(k) {
            let was = out.remove(k);
            diff.note(k, was.as_ref(), None);
        }
    }
    let mut mine = BTreeSet::new();
    for (k, v) in new {
        match out.get(&k) {
            Some(have) if have.service() != name => {
                tracing::warn!(object = %k, service = %name, owner = %have.service(),
                    "two services claim one frontend; the first keeps it");
            }
            have => {
                diff.note(&k, have, Some(&v));
                out.insert(k, v);
                mine.insert(k);
            }
        }
    }
    if !mine.is_empty() {
        index.insert(name.to_string(), mine);
    }
}

/// The slices of service `key` (those of its namespace are looked at).
pub fn slices_of<'a>(state: &'a KubeState, key: &ServiceKey) -> Vec<&'a KubeEndpointSlice> {
    let from = calico_model::kube::SliceKey {
        namespace: key.namespace.clone(),
        name: String::new(),
    };
    state
        .slices
        .range(from..)
        .take_while(|(k, _)| k.namespace == key.namespace)
        .filter(|(_, s)| s.service == key.name)
        .map(|(_, s)| s)
        .collect()
}

fn merge<K: Ord + fmt::Display, V: Owned>(out: &mut BTreeMap<K, V>, new: BTreeMap<K, V>) {
    for (k, v) in new {
        match out.get(&k) {
            Some(have) => {
                tracing::warn!(object = %k, service = %v.service(), owner = %have.service(),
                "two services claim one frontend; the first keeps it")
            }
            None => {
                out.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::kube::{KubeServicePort, SliceEndpoint, SliceKey, SlicePort, TargetPort};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn service_translations(
        key: &ServiceKey,
        svc: &KubeService,
        slices: &[&KubeEndpointSlice],
        node: Option<&str>,
        node_ips: &[IpAddr],
    ) -> (
        BTreeMap<FrontendKey, DesiredTranslation>,
        Option<ServiceNote>,
    ) {
        let (o, note) = service_objects(key, svc, slices, node, node_ips);
        (o.translations, note)
    }

    fn reject(vip: &str) -> RouteKey {
        RouteKey(IpNet::from(ip(vip)))
    }

    fn svc(kind: ServiceType) -> KubeService {
        KubeService {
            kind,
            cluster_ips: vec![ip("10.96.0.10"), ip("fd00:96::10")],
            external_ips: vec![ip("192.0.2.10")],
            lb_ips: Vec::new(),
            ports: vec![KubeServicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port: 80,
                target_port: TargetPort::Name("web".into()),
                node_port: Some(30080),
            }],
            external_local: false,
            internal_local: false,
            headless: false,
            annotations: BTreeMap::new(),
        }
    }

    fn ep(addr: &str, node: &str, ready: bool, terminating: bool) -> SliceEndpoint {
        SliceEndpoint {
            addresses: vec![ip(addr)],
            ready,
            serving: ready || terminating,
            terminating,
            node_name: Some(node.into()),
        }
    }

    fn slice(port: u16, endpoints: Vec<SliceEndpoint>) -> KubeEndpointSlice {
        KubeEndpointSlice {
            service: "web".into(),
            ports: vec![SlicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port,
            }],
            endpoints,
        }
    }

    fn key() -> ServiceKey {
        ServiceKey {
            namespace: "shop".into(),
            name: "web".into(),
        }
    }

    fn fk(vip: &str, port: u16) -> FrontendKey {
        FrontendKey {
            proto: L4Proto::Tcp,
            vip: ip(vip),
            port,
        }
    }

    const NODE: &[&str] = &["192.168.0.1"];

    fn node_ips() -> Vec<IpAddr> {
        NODE.iter().map(|s| ip(s)).collect()
    }

    #[test]
    fn cluster_ip_translates_to_ready_endpoints_at_the_named_target_port() {
        let s = slice(
            8080,
            vec![
                ep("10.70.0.2", "n1", true, false),
                ep("10.70.1.2", "n2", true, false),
                ep("10.70.1.3", "n2", false, false),
            ],
        );
        let (t, note) = service_translations(
            &key(),
            &svc(ServiceType::ClusterIp),
            &[&s],
            Some("n1"),
            &node_ips(),
        );
        let c = &t[&fk("10.96.0.10", 80)];
        assert_eq!(
            c.backends,
            vec![(ip("10.70.0.2"), 8080), (ip("10.70.1.2"), 8080)]
        );
        assert!(!c.real_ip);
        assert!(t.contains_key(&fk("192.0.2.10", 80)), "external IPs too");
        assert!(
            !t.contains_key(&fk("192.168.0.1", 30080)),
            "no node port on a ClusterIP service"
        );
        // No IPv6 endpoint: the IPv6 ClusterIP has no backend, and is rejected.
        assert_eq!(
            note,
            Some(ServiceNote::NoBackend(vec![fk("fd00:96::10", 80)]))
        );
        let (o, _) = service_objects(
            &key(),
            &svc(ServiceType::ClusterIp),
            &[&s],
            Some("n1"),
            &node_ips(),
        );
        assert_eq!(
            o.rejects.keys().copied().collect::<Vec<_>>(),
            vec![reject("fd00:96::10")]
        );
    }

    #[test]
    fn cluster_ips_with_no_served_port_are_rejected_and_other_addresses_never_are() {
        // No endpoint at all: both ClusterIPs rejected; the external IP and the node
        // address (node port) are not: they may carry other traffic.
        let (o, note) = service_objects(
            &key(),
            &svc(ServiceType::NodePort),
            &[],
            Some("n1"),
            &node_ips(),
        );
        assert!(o.translations.is_empty());
        assert_eq!(
            o.rejects.keys().copied().collect::<Vec<_>>(),
            vec![reject("10.96.0.10"), reject("fd00:96::10")]
        );
        let Some(ServiceNote::NoBackend(empty)) = note else {
            panic!("{note:?}")
        };
        assert!(empty.contains(&fk("192.0.2.10", 80)) && empty.contains(&fk("192.168.0.1", 30080)));
        // Two ports, one served: not rejected (cnat claims the address for the served one,
        // and drops the other port).
        let s = slice(8080, vec![ep("10.70.0.2", "n1", true, false)]);
        let mut two = svc(ServiceType::ClusterIp);
        two.cluster_ips = vec![ip("10.96.0.10")];
        let mut other = two.ports[0].clone();
        other.name = "metrics".into();
        other.port = 9100;
        two.ports.push(other);
        let (o, _) = service_objects(&key(), &two, &[&s], None, &[]);
        assert!(o.translations.contains_key(&fk("10.96.0.10", 80)));
        assert!(o.rejects.is_empty());
        // Neither served: rejected.
        let (o, _) = service_objects(&key(), &two, &[], None, &[]);
        assert_eq!(o.rejects.len(), 1);
    }

    #[test]
    fn node_ports_are_real_ip_translations_on_the_node_addresses() {
        let s = slice(8080, vec![ep("10.70.0.2", "n1", true, false)]);
        for kind in [ServiceType::NodePort, ServiceType::LoadBalancer] {
            let (t, _) = service_translations(&key(), &svc(kind), &[&s], Some("n1"), &node_ips());
            let n = &t[&fk("192.168.0.1", 30080)];
            assert!(n.real_ip);
            assert_eq!(n.backends, vec![(ip("10.70.0.2"), 8080)]);
        }
    }

    #[test]
    fn terminating_endpoints_serve_only_when_none_is_ready() {
        let s = slice(
            8080,
            vec![
                ep("10.70.0.2", "n1", false, true),
                ep("10.70.0.3", "n1", true, false),
            ],
        );
        let (t, _) = service_translations(&key(), &svc(ServiceType::ClusterIp), &[&s], None, &[]);
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends,
            vec![(ip("10.70.0.3"), 8080)]
        );
        let s = slice(
            8080,
            vec![
                ep("10.70.0.2", "n1", false, true),
                ep("10.70.0.4", "n1", false, false),
            ],
        );
        let (t, _) = service_translations(&key(), &svc(ServiceType::ClusterIp), &[&s], None, &[]);
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends,
            vec![(ip("10.70.0.2"), 8080)]
        );
    }

    #[test]
    fn local_traffic_policies_keep_this_nodes_endpoints() {
        let s = slice(
            8080,
            vec![
                ep("10.70.0.2", "n1", true, false),
                ep("10.70.1.2", "n2", true, false),
            ],
        );
        let mut v = svc(ServiceType::NodePort);
        v.external_local = true;
        let (t, _) = service_translations(&key(), &v, &[&s], Some("n1"), &node_ips());
        assert_eq!(
            t[&fk("192.168.0.1", 30080)].backends,
            vec![(ip("10.70.0.2"), 8080)]
        );
        assert_eq!(t[&fk("192.0.2.10", 80)].backends.len(), 1);
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends.len(),
            2,
            "ClusterIP unaffected"
        );
        // Local with no local endpoint: the node port is not programmed (dropped).
        let (t, _) = service_translations(&key(), &v, &[&s], Some("n3"), &node_ips());
        assert!(!t.contains_key(&fk("192.168.0.1", 30080)));
        let mut v = svc(ServiceType::ClusterIp);
        v.internal_local = true;
        let (t, _) = service_translations(&key(), &v, &[&s], Some("n2"), &node_ips());
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends,
            vec![(ip("10.70.1.2"), 8080)]
        );
    }

    #[test]
    fn named_ports_resolve_per_slice_and_protocols_stay_apart() {
        let a = slice(8080, vec![ep("10.70.0.2", "n1", true, false)]);
        let b = slice(9090, vec![ep("10.70.0.3", "n1", true, false)]);
        let mut udp = slice(53, vec![ep("10.70.0.4", "n1", true, false)]);
        udp.ports[0].protocol = L4Proto::Udp;
        let (t, _) = service_translations(
            &key(),
            &svc(ServiceType::ClusterIp),
            &[&a, &b, &udp],
            None,
            &[],
        );
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends,
            vec![(ip("10.70.0.2"), 8080), (ip("10.70.0.3"), 9090)]
        );
    }

    #[test]
    fn headless_and_external_name_services_are_ignored_and_maglev_is_an_annotation() {
        let s = slice(8080, vec![ep("10.70.0.2", "n1", true, false)]);
        let mut h = svc(ServiceType::ClusterIp);
        h.headless = true;
        h.cluster_ips.clear();
        assert!(service_translations(&key(), &h, &[&s], None, &[])
            .0
            .is_empty());
        assert!(
            service_translations(&key(), &svc(ServiceType::ExternalName), &[&s], None, &[])
                .0
                .is_empty()
        );
        let mut m = svc(ServiceType::ClusterIp);
        m.annotations
            .insert(MAGLEV_ANNOTATION.into(), "Maglev".into());
        assert!(service_translations(&key(), &m, &[&s], None, &[]).0[&fk("10.96.0.10", 80)].maglev);
    }

    #[test]
    fn keys_round_trip_as_strings_and_slices_find_their_service() {
        for k in [fk("10.96.0.10", 80), fk("fd00:96::10", 443)] {
            assert_eq!(k.to_string().parse::<FrontendKey>().unwrap(), k);
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<FrontendKey>(&j).unwrap(), k);
        }
        assert!("icmp/1.2.3.4/1".parse::<FrontendKey>().is_err());
        let mut st = KubeState::default();
        st.services.insert(key(), svc(ServiceType::ClusterIp));
        st.slices.insert(
            SliceKey {
                namespace: "shop".into(),
                name: "web-abc".into(),
            },
            slice(8080, vec![ep("10.70.0.2", "n1", true, false)]),
        );
        st.slices.insert(
            SliceKey {
                namespace: "other".into(),
                name: "web-x".into(),
            },
            slice(8080, vec![ep("10.70.9.9", "n1", true, false)]),
        );
        let t = desired_services(&st, None, &[]).translations;
        assert_eq!(
            t[&fk("10.96.0.10", 80)].backends,
            vec![(ip("10.70.0.2"), 8080)]
        );
    }

    #[test]
    fn the_compiler_follows_service_and_slice_changes_incrementally() {
        use calico_model::Model;
        let mut m = Model {
            kube_synced: true,
            ..Model::default()
        };
        m.kube.services.insert(key(), svc(ServiceType::ClusterIp));
        let sk = SliceKey {
            namespace: "shop".into(),
            name: "web-abc".into(),
        };
        m.kube.slices.insert(
            sk.clone(),
            slice(8080, vec![ep("10.70.0.2", "n1", true, false)]),
        );
        let mut c = crate::Compiler::new(&m);
        assert_eq!(
            c.desired().translations[&fk("10.96.0.10", 80)]
                .backends
                .len(),
            1
        );
        assert!(c.desired().services_synced);
        // A slice change: only that service is recomputed, and the diff names the frontend.
        m.kube.slices.insert(
            sk.clone(),
            slice(
                8080,
                vec![
                    ep("10.70.0.2", "n1", true, false),
                    ep("10.70.0.3", "n1", true, false),
                ],
            ),
        );
        let ch = crate::ChangeSet {
            kube_services: [key()].into(),
            ..Default::default()
        };
        let d = c.update(&m, &ch);
        assert_eq!(
            d.kinds.translations.upserted.len(),
            2,
            "the ClusterIP and the external IP"
        );
        assert_eq!(
            c.desired(),
            crate::Compiler::new(&m).desired(),
            "incremental equals full"
        );
        assert_eq!(
            c.desired()
                .service_rejects
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![reject("fd00:96::10")],
            "no IPv6 endpoint"
        );
        // The last endpoint goes: the IPv4 ClusterIP is rejected too, the external IP not.
        m.kube.slices.insert(sk.clone(), slice(8080, vec![]));
        let d = c.update(&m, &ch);
        assert_eq!(d.kinds.translations.removed.len(), 2);
        assert_eq!(
            d.kinds
                .service_rejects
                .upserted
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![reject("10.96.0.10")]
        );
        assert_eq!(c.desired(), crate::Compiler::new(&m).desired());
        // The service goes: its rejects go.
        m.kube.services.clear();
        let d = c.update(&m, &ch);
        assert_eq!(d.kinds.service_rejects.removed.len(), 2);
        assert!(c.desired().service_rejects.is_empty());
        assert_eq!(c.desired(), crate::Compiler::new(&m).desired());
    }
}
