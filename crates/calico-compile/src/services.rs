//! Kubernetes services on cnat: each frontend (VIP, protocol, port) is one translation whose
//! backends are the service's ready endpoints for that port.
//!
//! Frontends: every ClusterIP; external IPs and LoadBalancer ingress IPs; for NodePort and
//! LoadBalancer services, each of this node's addresses with the node port (a real-IP
//! translation: the address is the node's own). Backends: the ready endpoints of the
//! service's EndpointSlices of the frontend's family, at the slice's port of the service
//! port's name (so named target ports resolve per slice); serving-but-terminating endpoints
//! only when none is ready. `internalTrafficPolicy: Local` keeps this node's endpoints for
//! ClusterIPs, `externalTrafficPolicy: Local` for everything reached from outside (and a
//! frontend left with no backend is not programmed: its traffic is not translated and dies
//! in VPP). Headless and ExternalName services are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use calico_model::kube::{
    KubeEndpointSlice, KubeService, KubeServicePort, KubeState, L4Proto, ServiceKey, ServiceType,
};
use serde::{Deserialize, Serialize};

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

/// Where a service stands, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNote {
    Ignored(&'static str),
    /// Frontends with no backend (not programmed).
    NoBackend(Vec<FrontendKey>),
}

/// The translations of one service; frontends without a backend are left out (listed in
/// the note).
pub fn service_translations(
    key: &ServiceKey,
    svc: &KubeService,
    slices: &[&KubeEndpointSlice],
    node: Option<&str>,
    node_ips: &[IpAddr],
) -> (
    BTreeMap<FrontendKey, DesiredTranslation>,
    Option<ServiceNote>,
) {
    let mut out = BTreeMap::new();
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
            out.insert(
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

/// Every service's translations (a frontend claimed by two services goes to the first by
/// key, and the clash is logged).
pub fn desired_translations(
    state: &KubeState,
    node: Option<&str>,
    node_ips: &[IpAddr],
) -> BTreeMap<FrontendKey, DesiredTranslation> {
    // The slices grouped by service once: looking them up per service would cost
    // services × slices.
    let mut by_service: BTreeMap<(&str, &str), Vec<&KubeEndpointSlice>> = BTreeMap::new();
    for (k, s) in &state.slices {
        by_service
            .entry((k.namespace.as_str(), s.service.as_str()))
            .or_default()
            .push(s);
    }
    let mut out = BTreeMap::new();
    for (key, svc) in &state.services {
        let slices = by_service
            .get(&(key.namespace.as_str(), key.name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (t, _) = service_translations(key, svc, slices, node, node_ips);
        merge(&mut out, t);
    }
    out
}

/// Which frontends each service (`namespace/name`) holds in a translation table, so that a
/// change of one service touches only its own frontends.
#[derive(Debug, Clone, Default)]
pub struct FrontendIndex(BTreeMap<String, BTreeSet<FrontendKey>>);

impl FrontendIndex {
    pub fn of(table: &BTreeMap<FrontendKey, DesiredTranslation>) -> FrontendIndex {
        let mut idx = FrontendIndex::default();
        for (k, t) in table {
            idx.0.entry(t.service.clone()).or_default().insert(*k);
        }
        idx
    }
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

/// Recomputes the translations of `changed` services in `out`, noting the difference in
/// `diff`. Work is proportional to those services and their frontends.
pub fn update_translations(
    out: &mut BTreeMap<FrontendKey, DesiredTranslation>,
    index: &mut FrontendIndex,
    diff: &mut crate::KindDiff<FrontendKey, DesiredTranslation>,
    model: &calico_model::Model,
    changed: &BTreeSet<ServiceKey>,
) {
    let node_ips = node_ips(model);
    for key in changed {
        let name = key.to_string();
        let old = index.0.remove(&name).unwrap_or_default();
        let new = match model.kube.services.get(key) {
            Some(svc) => {
                let slices = slices_of(&model.kube, key);
                service_translations(key, svc, &slices, model.hostname(), &node_ips).0
            }
            None => BTreeMap::new(),
        };
        for k in &old {
            if !new.contains_key(k) {
                let was = out.remove(k);
                diff.note(k, was.as_ref(), None);
            }
        }
        let mut mine = BTreeSet::new();
        for (k, t) in new {
            match out.get(&k) {
                Some(have) if have.service != name => {
                    tracing::warn!(frontend = %k, service = %name, owner = %have.service,
                        "two services claim one frontend; the first keeps it");
                }
                have => {
                    diff.note(&k, have, Some(&t));
                    out.insert(k, t);
                    mine.insert(k);
                }
            }
        }
        if !mine.is_empty() {
            index.0.insert(name, mine);
        }
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

fn merge(
    out: &mut BTreeMap<FrontendKey, DesiredTranslation>,
    t: BTreeMap<FrontendKey, DesiredTranslation>,
) {
    for (k, v) in t {
        match out.get(&k) {
            Some(have) => {
                tracing::warn!(frontend = %k, service = %v.service, owner = %have.service,
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
        // No IPv6 endpoint: the IPv6 ClusterIP has no backend.
        assert_eq!(
            note,
            Some(ServiceNote::NoBackend(vec![fk("fd00:96::10", 80)]))
        );
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
        let t = desired_translations(&st, None, &[]);
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
            d.translations.upserted.len(),
            2,
            "the ClusterIP and the external IP"
        );
        assert_eq!(
            c.desired(),
            crate::Compiler::new(&m).desired(),
            "incremental equals full"
        );
        // The service goes: its frontends go.
        m.kube.services.clear();
        let d = c.update(&m, &ch);
        assert_eq!(d.translations.removed.len(), 2);
        assert_eq!(c.desired(), crate::Compiler::new(&m).desired());
    }
}
