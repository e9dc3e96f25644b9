//! `v1/Service` → [`KubeService`], once, at the edge.
//!
//! A bad value drops only itself (an IP, a port), with a warning naming the Service; the rest of
//! the Service is kept. Every spec field is listed, so a field added upstream is a build error
//! here rather than silently ignored.

use std::net::IpAddr;

use calico_model::kube::{
    KubeService, KubeServicePort, L4Proto, ServiceKey, ServiceType, TargetPort,
};
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tracing::warn;

use crate::Ignored;

/// `namespace/name` of a Service.
pub fn service_key(meta: &ObjectMeta) -> Result<ServiceKey, Ignored> {
    Ok(ServiceKey {
        namespace: meta.namespace.clone().ok_or(Ignored::NoNamespace)?,
        name: meta.name.clone().ok_or(Ignored::NoName)?,
    })
}

/// Converts a Service; fails only when it has no name or namespace.
pub fn convert_service(svc: Service) -> Result<(ServiceKey, KubeService), Ignored> {
    let Service {
        metadata,
        spec,
        status,
    } = svc;
    let key = service_key(&metadata)?;
    let ServiceSpec {
        allocate_load_balancer_node_ports: _,
        cluster_ip,
        cluster_ips,
        external_ips,
        // A DNS alias: the type says it all.
        external_name: _,
        external_traffic_policy,
        health_check_node_port: _,
        internal_traffic_policy,
        ip_families: _,
        ip_family_policy: _,
        load_balancer_class: _,
        // Deprecated request; what the load balancer got is in status.
        load_balancer_ip: _,
        load_balancer_source_ranges: _,
        ports,
        // Already applied by the EndpointSlice controller (it marks such endpoints ready).
        publish_not_ready_addresses: _,
        selector: _,
        session_affinity: _,
        session_affinity_config: _,
        traffic_distribution: _,
        type_,
    } = spec.unwrap_or_default();

    let kind = service_type(&key, type_.as_deref());
    let raw_cluster_ips = match (cluster_ips, cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips,
        (_, Some(ip)) => vec![ip],
        _ => Vec::new(),
    };
    let headless = raw_cluster_ips.iter().any(|ip| ip == "None");
    let cluster_ips = if headless {
        Vec::new()
    } else {
        parse_ips(&key, "clusterIPs", raw_cluster_ips)
    };
    let external_ips = parse_ips(&key, "externalIPs", external_ips.unwrap_or_default());
    let lb_ips = parse_ips(&key, "status.loadBalancer.ingress", ingress_ips(status));
    let ports = ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| convert_port(&key, p))
        .collect();

    let svc = KubeService {
        kind,
        cluster_ips,
        external_ips,
        lb_ips,
        ports,
        external_local: external_traffic_policy.as_deref() == Some("Local"),
        internal_local: internal_traffic_policy.as_deref() == Some("Local"),
        headless,
        annotations: metadata.annotations.unwrap_or_default(),
    };
    Ok((key, svc))
}

fn service_type(key: &ServiceKey, type_: Option<&str>) -> ServiceType {
    match type_ {
        None | Some("ClusterIP") => ServiceType::ClusterIp,
        Some("NodePort") => ServiceType::NodePort,
        Some("LoadBalancer") => ServiceType::LoadBalancer,
        Some("ExternalName") => ServiceType::ExternalName,
        Some(other) => {
            warn!(service = %key, r#type = other, "unknown Service type: treated as ClusterIP");
            ServiceType::ClusterIp
        }
    }
}

fn ingress_ips(status: Option<ServiceStatus>) -> Vec<String> {
    let Some(ServiceStatus {
        conditions: _,
        load_balancer,
    }) = status
    else {
        return Vec::new();
    };
    let Some(LoadBalancerStatus { ingress }) = load_balancer else {
        return Vec::new();
    };
    ingress
        .unwrap_or_default()
        .into_iter()
        .filter_map(
            |LoadBalancerIngress {
                 // A hostname-only ingress (some cloud load balancers) gives no address.
                 hostname: _,
                 ip,
                 ip_mode: _,
                 ports: _,
             }| ip,
        )
        .collect()
}

/// Parses addresses, dropping (with a warning) each one that is not an IP. Empty strings are
/// "not allocated yet" and dropped quietly.
fn parse_ips(key: &ServiceKey, field: &'static str, raw: Vec<String>) -> Vec<IpAddr> {
    raw.into_iter()
        .filter(|ip| !ip.is_empty())
        .filter_map(|ip| match ip.parse::<IpAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                warn!(service = %key, field, ip = %ip, "invalid IP address in Service: dropped");
                None
            }
        })
        .collect()
}

fn convert_port(key: &ServiceKey, port: ServicePort) -> Option<KubeServicePort> {
    let ServicePort {
        app_protocol: _,
        name,
        node_port,
        port,
        protocol,
        target_port,
    } = port;
    let name = name.unwrap_or_default();
    let Some(proto) = L4Proto::from_k8s(protocol.as_deref()) else {
        warn!(service = %key, port = %name, protocol = protocol.as_deref().unwrap_or(""),
            "unsupported Service port protocol: port skipped");
        return None;
    };
    let Some(number) = port_number(port) else {
        warn!(service = %key, port = %name, number = port, "Service port out of range: port skipped");
        return None;
    };
    let target_port = match target_port {
        None => TargetPort::Number(number),
        Some(IntOrString::Int(n)) => match port_number(n) {
            Some(n) => TargetPort::Number(n),
            None => {
                warn!(service = %key, port = %name, target_port = n,
                    "Service targetPort out of range: port skipped");
                return None;
            }
        },
        Some(IntOrString::String(s)) => TargetPort::Name(s),
    };
    let node_port = match node_port {
        None | Some(0) => None,
        Some(n) => {
            let valid = port_number(n);
            if valid.is_none() {
                warn!(service = %key, port = %name, node_port = n,
                    "Service nodePort out of range: no NodePort for this port");
            }
            valid
        }
    };
    Some(KubeServicePort {
        name,
        protocol: proto,
        port: number,
        target_port,
        node_port,
    })
}

/// A TCP/UDP/SCTP port number: 1..=65535.
pub(crate) fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|&p| p != 0)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
