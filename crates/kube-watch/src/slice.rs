//! `discovery.k8s.io/v1/EndpointSlice` → [`KubeEndpointSlice`], once, at the edge.
//!
//! A slice without its Service label, or of addressType FQDN, is ignored whole; a bad address
//! or port drops only itself, with a warning naming the slice.

use std::net::IpAddr;

use calico_model::kube::{KubeEndpointSlice, L4Proto, SliceEndpoint, SliceKey, SlicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tracing::{debug, warn};

use crate::service::port_number;
use crate::Ignored;

/// The label naming the Service a slice belongs to (in the slice's namespace).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name` of an EndpointSlice.
pub fn slice_key(meta: &ObjectMeta) -> Result<SliceKey, Ignored> {
    Ok(SliceKey {
        namespace: meta.namespace.clone().ok_or(Ignored::NoNamespace)?,
        name: meta.name.clone().ok_or(Ignored::NoName)?,
    })
}

/// Converts a slice of IP addresses that names its Service.
pub fn convert_slice(slice: EndpointSlice) -> Result<(SliceKey, KubeEndpointSlice), Ignored> {
    let EndpointSlice {
        address_type,
        endpoints,
        metadata,
        ports,
    } = slice;
    let key = slice_key(&metadata)?;
    if address_type != "IPv4" && address_type != "IPv6" {
        return Err(Ignored::NotIp(address_type));
    }
    let service = metadata
        .labels
        .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL))
        .filter(|s| !s.is_empty())
        .ok_or(Ignored::NoServiceLabel)?;
    let ports = ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| convert_port(&key, p))
        .collect();
    let endpoints = endpoints
        .unwrap_or_default()
        .into_iter()
        .map(|e| convert_endpoint(&key, e))
        .collect();
    Ok((
        key,
        KubeEndpointSlice {
            service,
            ports,
            endpoints,
        },
    ))
}

fn convert_port(key: &SliceKey, port: EndpointPort) -> Option<SlicePort> {
    let EndpointPort {
        app_protocol: _,
        name,
        port,
        protocol,
    } = port;
    let name = name.unwrap_or_default();
    let Some(proto) = L4Proto::from_k8s(protocol.as_deref()) else {
        warn!(slice = %key, port = %name, protocol = protocol.as_deref().unwrap_or(""),
            "unsupported EndpointSlice port protocol: port skipped");
        return None;
    };
    let Some(number) = port else {
        // Kubernetes' "all ports" (no Service of ours produces it): nothing to translate to.
        debug!(slice = %key, port = %name, "EndpointSlice port without a number: port skipped");
        return None;
    };
    let Some(number) = port_number(number) else {
        warn!(slice = %key, port = %name, number, "EndpointSlice port out of range: port skipped");
        return None;
    };
    Some(SlicePort {
        name,
        protocol: proto,
        port: number,
    })
}

fn convert_endpoint(key: &SliceKey, endpoint: Endpoint) -> SliceEndpoint {
    let Endpoint {
        addresses,
        conditions,
        deprecated_topology: _,
        hints: _,
        hostname: _,
        node_name,
        target_ref: _,
        zone: _,
    } = endpoint;
    let EndpointConditions {
        ready,
        serving,
        terminating,
    } = conditions.unwrap_or_default();
    let ready = ready.unwrap_or(true);
    let addresses = addresses
        .into_iter()
        .filter_map(|a| match a.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                warn!(slice = %key, address = %a, "invalid endpoint address in EndpointSlice: dropped");
                None
            }
        })
        .collect();
    SliceEndpoint {
        addresses,
        ready,
        serving: serving.unwrap_or(ready),
        terminating: terminating.unwrap_or(false),
        node_name,
    }
}

#[cfg(test)]
#[path = "slice_tests.rs"]
mod tests;
