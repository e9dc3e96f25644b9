//! Kubernetes Services and EndpointSlices as the driver uses them, converted once at the edge
//! from the API server's objects (the driver watches them itself: Felix's `ServiceUpdate`
//! carries no endpoints). Pure values: no kube, no k8s-openapi types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `namespace/name` of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `namespace/name` of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SliceKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SliceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
}

impl L4Proto {
    /// From Kubernetes' `protocol` (`TCP` when unset).
    pub fn from_k8s(p: Option<&str>) -> Option<L4Proto> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(L4Proto::Tcp),
            "UDP" => Some(L4Proto::Udp),
            "SCTP" => Some(L4Proto::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Sctp => 132,
        }
    }
}

impl fmt::Display for L4Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        })
    }
}

/// A Service port's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TargetPort {
    Number(u16),
    /// A container port name, resolved per EndpointSlice (the slice's port of that name).
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeServicePort {
    /// The port's name (empty for a lone unnamed port): EndpointSlice ports carry it.
    pub name: String,
    pub protocol: L4Proto,
    pub port: u16,
    pub target_port: TargetPort,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    /// A DNS alias: nothing to program.
    ExternalName,
}

/// A Service, as the driver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeService {
    pub kind: ServiceType,
    /// `spec.clusterIPs` (without `None`: a headless service has none).
    pub cluster_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub lb_ips: Vec<IpAddr>,
    pub ports: Vec<KubeServicePort>,
    /// `spec.externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `spec.internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `spec.clusterIP: None`.
    pub headless: bool,
    pub annotations: BTreeMap<String, String>,
}

/// One port of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlicePort {
    pub name: String,
    pub protocol: L4Proto,
    pub port: u16,
}

/// One endpoint (a pod's addresses) of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceEndpoint {
    pub addresses: Vec<IpAddr>,
    /// `conditions.ready` (unset: ready).
    pub ready: bool,
    /// `conditions.serving` (unset: as `ready`).
    pub serving: bool,
    /// `conditions.terminating` (unset: false).
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// An EndpointSlice, as the driver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeEndpointSlice {
    /// The `kubernetes.io/service-name` label: the Service it belongs to (same namespace).
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// What the API server holds, once both initial lists are in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeState {
    pub services: BTreeMap<ServiceKey, KubeService>,
    pub slices: BTreeMap<SliceKey, KubeEndpointSlice>,
}

/// One change from the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeUpdate {
    /// A complete list (the first, or a relist after the watch broke): replaces everything.
    Synced(KubeState),
    Service(ServiceKey, Option<KubeService>),
    Slice(SliceKey, Option<KubeEndpointSlice>),
}
